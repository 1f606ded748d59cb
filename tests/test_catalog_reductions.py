"""Oracles for the reductions that make whole-catalog plans fast (``formulations/README.md``, "Exact presolve").

- step 0, the cheapest offer of each machine (:func:`solver.planning.candidates.cheapest_offers`), per region
  class under region quotas;
- step 2b, the price/capacity front across instance types (``presolve._pareto_winners``);
- the mixed predictions of pooled rows made once per distinct (model, prompt, output, configuration).

Each is checked against the whole model (every offer enumerated, no dominance at all) on the random scenarios of
the standing oracle, with and without size distributions (shared pools), and on hand-made tables.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from random_scenarios import random_scenario_dict

from solver.data.scenario import scenario_from_dict
from solver.errors import InfeasibleError
from solver.planning import candidates as cand_mod
from solver.planning.candidates import (
    candidate_set,
    cheapest_offers,
    offers,
    shared_candidates,
)
from solver.planning.classes import expand
from solver.planning.evaluate import evaluate
from solver.planning.planner import plan, solve_candidates
from solver.planning.presolve import (
    OFFER_WEIGHT,
    _pareto_winners,
    offer_region_classes,
    offers_interchangeable,
    types_interchangeable,
)
from solver.specs import SolveOptions

OPTS = SolveOptions(time_limit_s=60, tie_break=False)
SIZES = [
    {"input_tokens": 64, "output_tokens": 64, "share": 0.5},
    {"input_tokens": 512, "output_tokens": 128, "share": 0.3},
    {"input_tokens": 1024, "output_tokens": 256, "share": 0.2},
]


def _with_sizes(d: dict, seed: int) -> dict:
    """Give every other online workload of the scenario a three-bucket size distribution."""
    for i, w in enumerate(d["workloads"]):
        if w.get("rate_rps") is not None and (i + seed) % 2 == 0:
            w.pop("input_tokens", None)
            w.pop("output_tokens", None)
            w["sizes"] = SIZES
    return d


def _whole_model(sc) -> float | None:
    """Optimum of the whole model: every offer's candidates, no dominance, pools formed from the full table."""
    classes = expand(sc)
    cs = candidate_set(classes.scenario)
    frame = cs.frame
    if classes.shares:
        pooled = shared_candidates(frame, classes.scenario, classes.groups())
        if not pooled.empty:
            frame = pd.concat([frame.assign(pool=-1), pooled], ignore_index=True)
    try:
        return solve_candidates(frame, classes.scenario, OPTS, reduce=False).objective
    except InfeasibleError:
        return None


def _planned(sc) -> float | None:
    try:
        p = plan(sc, OPTS)
    except InfeasibleError:
        return None
    assert evaluate(p, sc).ok
    return p.objective


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("sizes", [False, True], ids=["plain", "sizes"])
def test_reduced_plan_has_the_whole_models_optimum(seed, sizes, monkeypatch):
    """plan() (cheapest offers, cross-type front, pools) against the whole model, POOLS_PER_CLASS not binding."""
    monkeypatch.setattr(cand_mod, "POOLS_PER_CLASS", 10_000)
    d = random_scenario_dict(seed)
    if sizes:
        d = _with_sizes(d, seed)
    sc = scenario_from_dict(d)
    whole, reduced = _whole_model(sc), _planned(sc)
    assert (whole is None) == (reduced is None), (whole, reduced)
    if whole is not None and reduced is not None:
        assert math.isclose(whole, reduced, rel_tol=1e-6, abs_tol=1e-9), (seed, whole, reduced)


def test_the_random_scenarios_exercise_both_reductions():
    """Some seeds allow the reductions, others set a limit that forbids them (the oracle covers both)."""
    flags = [
        (
            offers_interchangeable(scenario_from_dict(random_scenario_dict(s))),
            types_interchangeable(scenario_from_dict(random_scenario_dict(s))),
        )
        for s in range(40)
    ]
    assert any(a and b for a, b in flags) and any(not a for a, _ in flags) and any(a and not b for a, b in flags)


def _two_types_three_regions(limits: dict | None = None):
    """g5.xlarge and g6.xlarge in three regions, both markets, one small online workload."""
    return scenario_from_dict(
        {
            "regions": ["us-east-1", "us-west-2", "eu-west-1"],
            "markets": ["on_demand", "spot"],
            "instances": ["g5.xlarge", "g6.xlarge"],
            "workloads": [
                {"name": "a", "model": "llama-3.1-8b", "rate_rps": 1, "input_tokens": 256, "output_tokens": 64}
            ],
            "limits": limits or {},
        }
    )


def test_cheapest_offers_keeps_one_offer_per_machine_and_counts_the_rest():
    sc = _two_types_three_regions()
    off = offers(sc)
    kept = cheapest_offers(off, sc)
    assert kept[OFFER_WEIGHT].sum() == len(off)
    assert sorted(kept["instance_type"]) == ["g5.xlarge", "g6.xlarge"]
    for _, row in kept.iterrows():
        same = off[off["instance_type"] == row["instance_type"]]
        assert row["usd_per_hour"] == same["usd_per_hour"].min()
    spot_capped = sc.model_copy(update={"limits": sc.limits.model_copy(update={"max_spot_share": 0.5})})
    assert len(cheapest_offers(off, spot_capped)) == len(off)


def test_a_region_quota_keeps_the_cheapest_offer_per_region_class():
    """Under (17) alone: per machine, the cheapest offer in the quota's region and the cheapest of the others."""
    sc = _two_types_three_regions({"max_instances_per_region": {"us-west-2": 3}})
    assert offer_region_classes(sc) == frozenset({"us-west-2"}) and not offers_interchangeable(sc)
    off = offers(sc)
    kept = cheapest_offers(off, sc)
    assert kept[OFFER_WEIGHT].sum() == len(off)
    for t in ("g5.xlarge", "g6.xlarge"):
        mine = kept[kept["instance_type"] == t]
        inside, outside = mine[mine["region"] == "us-west-2"], mine[mine["region"] != "us-west-2"]
        assert len(inside) == 1 and len(outside) == 1, mine
        same = off[off["instance_type"] == t]
        assert inside["usd_per_hour"].iat[0] == same[same["region"] == "us-west-2"]["usd_per_hour"].min()
        assert outside["usd_per_hour"].iat[0] == same[same["region"] != "us-west-2"]["usd_per_hour"].min()
    spot = sc.model_copy(update={"limits": sc.limits.model_copy(update={"max_spot_instances": 2})})
    assert offer_region_classes(spot) is None and len(cheapest_offers(off, spot)) == len(off)


@pytest.mark.parametrize("seed", range(12))
def test_region_quota_plans_have_the_whole_models_optimum(seed):
    """The random scenarios over three regions with a quota on one: step 0 per region class against every offer."""
    d = random_scenario_dict(1000 + seed)
    d["regions"] = ["us-east-1", "us-west-2", "eu-west-1"]
    d["markets"] = ["on_demand", "spot"]
    d["limits"]["max_instances_per_region"] = {["us-east-1", "us-west-2", "eu-west-1"][seed % 3]: 1 + seed % 4}
    sc = scenario_from_dict(d)
    assert offer_region_classes(sc) is not None
    whole, reduced = _whole_model(sc), _planned(sc)
    assert (whole is None) == (reduced is None), (whole, reduced)
    if whole is not None and reduced is not None:
        assert math.isclose(whole, reduced, rel_tol=1e-6, abs_tol=1e-9), (seed, whole, reduced)


def test_counts_and_messages_are_those_of_every_offer():
    """Enumerated candidates and an infeasibility's removal counts count every offer, as before the reduction."""
    d = {
        "regions": ["us-east-1", "us-west-2"],
        "markets": ["on_demand", "spot"],
        "instances": ["g5.xlarge", "g6.xlarge", "g5.12xlarge"],
        "workloads": [
            {
                "name": "a",
                "model": "llama-3.1-8b",
                "rate_rps": 2,
                "input_tokens": 256,
                "output_tokens": 64,
                "slo": {"tpot_ms": 60},
            }
        ],
    }
    sc = scenario_from_dict(d)
    full = candidate_set(sc)
    assert plan(sc, OPTS).candidates == len(full.frame)
    d["workloads"][0]["slo"] = {"ttft_ms": 1}
    sc = scenario_from_dict(d)
    with pytest.raises(InfeasibleError) as reduced:
        plan(sc, OPTS)
    every = candidate_set(sc)
    with pytest.raises(InfeasibleError) as whole:
        solve_candidates(every.frame, sc, OPTS, candidate_info=every)
    assert str(reduced.value) == str(whole.value)
    assert str(len(every.frame)) in str(whole.value) or "slo.ttft_ms" in str(whole.value)


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(50):
        m = int(rng.integers(1, 40))
        frame = pd.DataFrame(
            {
                "workload": rng.choice(["a", "b"], m),
                "usd_per_hour": rng.choice([1.0, 2.0, 3.0, 4.0], m),
                "rate_rps": rng.choice([0.5, 1.0, 1.5, 2.0], m),
                "replicas": rng.choice([1, 2], m),
                "instance_type": rng.choice(["x", "y"], m),
                "region": "r",
                "market": "on_demand",
                "tp": 1,
                "batch_size": rng.choice([1, 2], m),
                "offload_fraction": 0.0,
            }
        )
        kept = _pareto_winners(frame, np.arange(m))
        cap = frame["rate_rps"].to_numpy() * frame["replicas"].to_numpy()
        price, wl = frame["usd_per_hour"].to_numpy(), frame["workload"].to_numpy()
        for c in range(m):  # every dropped row has a kept dominator
            if c in kept:
                continue
            assert any(wl[d] == wl[c] and price[d] <= price[c] and cap[d] >= cap[c] for d in kept)
        for c in kept:  # no kept row is dominated by another kept one
            assert not any(
                d != c
                and wl[d] == wl[c]
                and price[d] <= price[c]
                and cap[d] >= cap[c]
                and (price[d] < price[c] or cap[d] > cap[c])
                for d in kept
            )


def test_mixed_predictions_equal_one_call_per_class_and_prompt(monkeypatch):
    """Pooled rows predicted in shared calls carry the numbers of predicting each class's rows on their own."""
    d = {
        "regions": ["us-east-1"],
        "instances": ["g5.xlarge", "g6e.xlarge", "g5.12xlarge"],
        "workloads": [
            {"name": "a", "model": "llama-3.1-8b", "rate_rps": 4, "sizes": SIZES},
            {
                "name": "b",
                "model": "llama-3.1-8b",
                "rate_rps": 2,
                "sizes": [dict(SIZES[0], share=0.6), dict(SIZES[1], share=0.4)],
            },
        ],
        "search": {"batch_sizes": [4, 16, 64]},
    }
    classes = expand(scenario_from_dict(d))
    sc = classes.scenario
    frame = candidate_set(sc).frame
    got = shared_candidates(frame, sc, classes.groups())
    assert not got.empty
    calls = []
    real = cand_mod.predict_workload

    def one_by_one(rows, w, scenario, **kw):
        calls.append(len(rows))
        return pd.concat([real(rows.iloc[[i]], w, scenario, **kw) for i in range(len(rows))], ignore_index=True)

    monkeypatch.setattr(cand_mod, "predict_workload", one_by_one)
    want = shared_candidates(frame, sc, classes.groups())
    assert calls  # the shared calls were replaced by one prediction per row
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
