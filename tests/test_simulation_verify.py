"""Verification of plans by simulation, percentile SLOs, and the re-solve that makes a failing plan meet them."""

from __future__ import annotations

import json

import pytest

from solver.apps.simulate import simulate
from solver.data.scenario import scenario_from_dict
from solver.errors import InputError
from solver.planning.planner import plan, reduced_candidates, solve_candidates
from solver.simulation.verify import VERIFY_SEED, verify_plan
from tests.cli_helpers import run

TIGHT = {
    "catalog": "aws",
    "regions": ["us-east-1"],
    "instances": ["g6e.xlarge", "g5.xlarge", "g6.xlarge"],
    "workloads": [
        {
            "name": "chat",
            "model": "llama-3.1-8b",
            "input_tokens": 512,
            "output_tokens": 256,
            "rate_rps": 23.5,
            "slo": {"ttft_ms": 1500, "ttft_percentile": 99, "tpot_ms": 100},
        }
    ],
    "search": {"batch_sizes": [8, 16, 32, 64, 128], "utilisation_cap": 1.0},
}


def test_tight_p99_plan_fails_verification_and_the_verified_plan_meets_it_with_another_seed() -> None:
    scenario = scenario_from_dict(TIGHT)
    raw = plan(scenario)
    assert not raw.verification
    first = simulate(scenario, raw, seed=VERIFY_SEED)
    (chat,) = first.workloads
    ttft = next(a for a in chat.attainment if a["slo"] == "ttft_ms")
    assert ttft["statistic"] == "p99" and not ttft["met"]
    verified = plan(scenario, verify=True)  # capacity curves up front, then simulated (and re-solved if need be)
    assert verified.verification["met"] is True
    assert "capacity curves" in verified.message
    assert verified.cost_usd_per_hour > raw.cost_usd_per_hour
    again = simulate(scenario, verified, seed=VERIFY_SEED + 12_345)
    assert again.met, again.attainment_frame().to_string()


def test_the_re_solve_loop_alone_makes_a_mean_rate_plan_meet_its_p99() -> None:
    """Without capacity curves (the mean-model table), the re-solve loop lowers the failing rates until met."""
    scenario = scenario_from_dict(TIGHT)
    red = reduced_candidates(scenario)
    known = {"candidate_info": red.info, "removed": red.removed, "enumerated": red.enumerated}
    raw = solve_candidates(red.table, scenario, reduce=False, **known)
    verified = verify_plan(raw, scenario, red.table, lambda f: solve_candidates(f, scenario, reduce=False, **known))
    assert verified.verification["met"] is True
    assert verified.verification["rounds"] >= 1
    assert "lowered" in verified.message and "re-solved" in verified.message
    assert verified.cost_usd_per_hour > raw.cost_usd_per_hour
    again = simulate(scenario, verified, seed=VERIFY_SEED + 12_345)
    assert again.met, again.attainment_frame().to_string()


def test_verified_plan_of_a_met_scenario_is_unchanged() -> None:
    # 66 % of the planned capacity (2 x 10.6 req/s on the one instance type): the simulator runs prefill as separate
    # passes, so for vLLM's mixed prefill it sustains less than the model (about 8 req/s per replica here,
    # docs/accuracy.md); with the small types allowed the optimum fills them to capacity, and they fail
    loose = {**TIGHT["workloads"][0], "rate_rps": 14, "slo": {"ttft_ms": 2000}}
    scenario = scenario_from_dict({**TIGHT, "instances": ["g6e.xlarge"], "workloads": [loose]})
    raw, verified = plan(scenario), plan(scenario, verify=True)
    assert verified.verification["met"] and verified.verification["rounds"] == 0
    assert [r.count for r in verified.fleet] == [r.count for r in raw.fleet]


@pytest.mark.parametrize(
    "scenario",
    [
        None,
        "instances/scenarios/llama70b_tp.yaml",
        "instances/scenarios/mixed_spot.yaml",
        "instances/scenarios/offline_batch.yaml",
        "instances/scenarios/chat_distribution.yaml",
        "instances/scenarios/moe_chat_summarise.yaml",
        "instances/scenarios/default.yaml",
    ],
)
def test_cli_plan_is_verified_and_shows_p50_p99(scenario: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", *([scenario] if scenario else [])]
    code, out, _ = run([*args, "--json"], capsys)
    assert code in (0, None)
    payload = json.loads(out)
    ver = payload["verification"]
    assert ver["met"] is True
    assert "unverified" not in ver  # every class simulated, shared replicas included
    for w in ver["workloads"].values():
        for a in w["attainment"]:
            assert a["p50"] <= a["p99"]
    code, out, _ = run(args, capsys)
    assert "simulated attainment" in out and "verified by simulation" in out
    code, out, _ = run([*args, "--no-verify", "--json"], capsys)
    assert "verification" not in json.loads(out)


@pytest.mark.parametrize(
    ("slo", "arrival", "message"),
    [
        ({"ttft_percentile": 90}, None, "ttft_percentile needs ttft_ms"),
        ({"ttft_ms": 100, "ttft_percentile": 100}, None, "ttft_percentile"),
        ({"e2e_percentile": 50}, None, "e2e_percentile needs e2e_s"),
        ({}, {"process": "poisson", "cv": 2}, "cv applies to process: gamma"),
        ({}, {"process": "gamma", "cv": 0}, "cv"),
    ],
)
def test_percentile_and_arrival_fields_are_validated(slo: dict, arrival: dict | None, message: str) -> None:
    w = {**TIGHT["workloads"][0], "slo": slo}
    if arrival is not None:
        w["arrival"] = arrival
    with pytest.raises(InputError, match=message):
        scenario_from_dict({**TIGHT, "workloads": [w]})


def test_bursty_arrivals_need_more_capacity_than_poisson() -> None:
    base = scenario_from_dict(TIGHT)
    bursty = scenario_from_dict(
        {**TIGHT, "workloads": [{**TIGHT["workloads"][0], "arrival": {"process": "gamma", "cv": 3}}]}
    )
    p = plan(base, verify=True)
    p99 = {}
    for name, sc in (("poisson", base), ("bursty", bursty)):
        (w,) = simulate(sc, p, seed=5).workloads
        p99[name] = w.stats["ttft_ms"]["p99"]
    assert p99["bursty"] > p99["poisson"]


def test_a_lowered_rate_keeps_a_confidence_margin_on_the_percentile() -> None:
    """``meets_with_margin``: the percentile at its one-sided 95 % upper bound, q + 1.645 sqrt(q (1 - q) / n)."""
    import numpy as np
    import pandas as pd

    from solver.simulation.results import attainment
    from solver.simulation.verify import meets_with_margin
    from solver.specs import SLO

    reqs = pd.DataFrame({"ttft_ms": np.arange(1, 1001, dtype=float), "tpot_ms": 50.0, "e2e_s": 1.0})
    p99 = SLO(ttft_ms=991, ttft_percentile=99)  # the sample's p99 is 990; its upper bound p99.52 is 996
    assert all(a["met"] for a in attainment(reqs, p99))
    assert not meets_with_margin(reqs, p99)
    assert meets_with_margin(reqs, SLO(ttft_ms=996, ttft_percentile=99))
    assert meets_with_margin(reqs, SLO(ttft_ms=500.5))  # a mean SLO: the mean, no margin
    assert not meets_with_margin(reqs, SLO(ttft_ms=500.4))
    assert not meets_with_margin(reqs.iloc[:0], SLO(ttft_ms=1000))  # no request finished: not met
