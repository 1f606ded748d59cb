"""A seeded generator of random valid scenarios for the standing oracle (``tests/test_random_oracle.py``).

Small on purpose: a few instance types and batch sizes per scenario, so that one plan solves in well under a
second, while still covering 1-8 workloads, both markets, budgets, quotas, offline deadlines and both billings.
"""

from __future__ import annotations

import random
from typing import Any

from solver.data.scenario import scenario_from_dict
from solver.specs import Scenario

INSTANCES = ("g4dn.xlarge", "g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6e.xlarge", "g5.12xlarge", "g6.12xlarge")
MODELS = ("llama-3.1-8b", "mistral-7b", "opt-6.7b", "opt-1.3b")
REGIONS = ("us-east-1", "us-west-2")


def random_scenario_dict(seed: int) -> dict[str, Any]:
    """Return the scenario mapping for ``seed`` (same seed, same scenario)."""
    rng = random.Random(seed)
    n_w = rng.randint(1, 8)
    instances = rng.sample(INSTANCES, rng.randint(1, 4))
    workloads = []
    for i in range(n_w):
        w: dict[str, Any] = {
            "name": f"w{i}",
            "model": rng.choice(MODELS),
            "input_tokens": rng.choice([128, 512, 1024, 1536]),
            "output_tokens": rng.choice([32, 128, 256, 512]),
        }
        if w["model"].startswith("opt"):  # a 2,048-token context window
            w["input_tokens"] = min(w["input_tokens"], 1024)
        if rng.random() < 0.35:
            w["requests"] = rng.choice([50, 217, 1000, 5000, 40_000, 300_000])
            w["deadline_h"] = rng.choice([0.5, 1, 2.5, 4, 8])
        else:
            w["rate_rps"] = round(rng.choice([0.3, 1, 2.5, 7, 20, 55]) * rng.uniform(0.5, 1.5), 3)
            if rng.random() < 0.6:
                w["slo"] = {"ttft_ms": rng.choice([500, 1000, 3000]), "tpot_ms": rng.choice([50, 100, 200])}
        workloads.append(w)
    limits: dict[str, Any] = {}
    if rng.random() < 0.4:
        limits["budget_usd_per_hour"] = rng.choice([5, 15, 50, 200])
    if rng.random() < 0.2:
        limits["budget_usd"] = rng.choice([20, 100, 1000])
    if rng.random() < 0.3:
        limits["max_instances"] = {rng.choice(instances): rng.randint(0, 3)}
    if rng.random() < 0.2:
        limits["max_instances_per_family"] = {rng.choice(["g5", "g6", "g4dn"]): rng.randint(1, 4)}
    if rng.random() < 0.2:
        limits["max_instances_per_region"] = {rng.choice(REGIONS): rng.randint(1, 5)}
    if rng.random() < 0.2:
        limits["max_total_instances"] = rng.randint(2, 12)
    if rng.random() < 0.1:
        limits["min_instances"] = {rng.choice(instances): 1}
    return {
        "catalog": "aws",
        "regions": rng.sample(REGIONS, rng.randint(1, 2)),
        "markets": rng.choice([["on_demand"], ["on_demand", "spot"], ["spot"]]),
        "instances": instances,
        "billing": rng.choice(["per_second", "per_hour"]),
        "workloads": workloads,
        "limits": limits,
        "search": {"batch_sizes": sorted(rng.sample([1, 4, 8, 16, 32, 64, 128], 3))},
    }


def random_scenario(seed: int) -> Scenario:
    """Return the validated scenario for ``seed``."""
    return scenario_from_dict(random_scenario_dict(seed))
