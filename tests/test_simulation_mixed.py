"""Shared (pooled) fleet rows in simulation: mixed traffic, per-class attainment, and the re-solve on a pool."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from solver.data.scenario import load_scenario, scenario_from_dict
from solver.planning.candidates import candidate_set, shared_candidates
from solver.planning.classes import expand
from solver.planning.plan import FleetRow, Plan
from solver.planning.planner import plan, solve_candidates
from solver.simulation.fleet import simulate
from solver.simulation.mixed import components
from solver.simulation.verify import verify_plan

SLO = {"ttft_ms": 1000, "ttft_percentile": 99, "tpot_ms": 100}
POOLED = {
    "catalog": "aws",
    "regions": ["us-east-1"],
    "markets": ["on_demand"],
    "instances": ["g6e.xlarge", "g6.xlarge", "g5.xlarge"],
    "workloads": [
        {
            "name": "chat",
            "model": "llama-3.1-8b",
            "rate_rps": 6.0,
            "slo": SLO,
            "sizes": [
                {"input_tokens": [1, 128], "output_tokens": [1, 256], "share": 0.7},
                {"input_tokens": [129, 512], "output_tokens": [65, 256], "share": 0.3},
            ],
        },
        {
            "name": "api",
            "model": "llama-3.1-8b",
            "input_tokens": 512,
            "output_tokens": 128,
            "rate_rps": 2.0,
            "slo": SLO,
        },
    ],
    "search": {"batch_sizes": [8, 16, 32, 64, 128], "utilisation_cap": 0.9},
}


def _row(split: tuple[tuple[str, float], ...], pool: int = 0) -> FleetRow:
    return FleetRow(
        workload="+".join(dict.fromkeys(n.split("#")[0] for n, _ in split)), instance_type="g6e.xlarge",
        market="on_demand", region="us-east-1", count=1, tp=1, batch_size=32, offload_fraction=0.0,
        usd_per_hour=1.0, ttft_ms=0.0, tpot_ms=0.0, tps=0.0, utilisation=0.0, pool=pool, split=split,
    )  # fmt: skip


def _plan(*rows: FleetRow) -> Plan:
    return Plan(rows, "optimal", 1.0, 1.0, 1.0, 0.0, "test", 0.0)


TWO = {
    **POOLED,
    "workloads": [
        {"name": "short", "model": "llama-3.1-8b", "input_tokens": 64, "output_tokens": 64, "rate_rps": 2.0},
        {"name": "long", "model": "llama-3.1-8b", "input_tokens": 6000, "output_tokens": 64, "rate_rps": 1.0},
    ],
}


def test_a_short_request_queued_behind_long_prefills_waits_for_them() -> None:
    sc = scenario_from_dict(TWO)
    alone = simulate(sc, _plan(_row((("short", 2.0),), pool=-1)), seed=3)
    mixed = simulate(sc, _plan(_row((("short", 2.0), ("long", 1.0)))), seed=3)
    (short_alone,) = alone.workloads
    by = {w.workload: w for w in mixed.workloads}
    assert set(by) == {"short", "long"}  # one result per class, on the one shared replica
    assert by["short"].replicas == by["long"].replicas == 1
    assert by["short"].by_row == [{"row": 0, "pool": 0, "requests": len(by["short"].requests), "met": True}]
    # each class arrives at its own rate with its own lengths
    span = mixed.duration_s - mixed.warmup_s
    assert len(by["short"].requests) / span == pytest.approx(2.0, rel=0.1)
    assert len(by["long"].requests) / span == pytest.approx(1.0, rel=0.15)
    assert set(by["long"].requests["input_tokens"]) == {6000}
    # the interference: the same short requests wait behind 6,000-token prefills
    for stat in ("mean", "p99"):
        assert by["short"].stats["ttft_ms"][stat] > 1.5 * short_alone.stats["ttft_ms"][stat]


def test_a_class_split_over_its_own_row_and_a_pool_is_one_component() -> None:
    sc = scenario_from_dict(TWO)
    own = dataclasses.replace(_row((("short", 1.5),), pool=-1), workload="short")
    p = _plan(own, _row((("short", 0.5), ("long", 1.0))))
    (comp,) = components(p, sc)
    assert comp.classes == ("short", "long") and comp.rows == (0, 1)
    res = {w.workload: w for w in simulate(sc, p, seed=1).workloads}
    rows = {b["row"]: b["requests"] for b in res["short"].by_row}
    assert rows[0] / (rows[0] + rows[1]) == pytest.approx(0.75, abs=0.05)  # the plan's split, 1.5 : 0.5
    assert [b["row"] for b in res["long"].by_row] == [1]


def test_every_class_of_the_chat_distribution_example_is_simulated() -> None:
    sc = load_scenario("instances/scenarios/chat_distribution.yaml")
    verified = plan(sc, verify=True)
    classes = {w.name for w in expand(sc).scenario.workloads}
    assert set(verified.verification["workloads"]) == classes
    assert "unverified" not in verified.verification
    assert any(r.pool >= 0 for r in verified.fleet)  # the example does share replicas
    assert verified.verification["met"] is True


TIGHT_POOLED = {
    **POOLED,
    "workloads": [{**w, "rate_rps": 3 * w["rate_rps"]} for w in POOLED["workloads"]],
    "search": {**POOLED["search"], "utilisation_cap": 1.0},
}
"""Three times the rates at utilisation cap 1.0: the mean-model plan's pool misses its p99 TTFT in simulation."""


def test_a_failing_pool_is_lowered_and_the_re_solved_plan_meets_with_another_seed() -> None:
    cl = expand(scenario_from_dict(TIGHT_POOLED))
    sc = cl.scenario
    cs = candidate_set(sc)
    frame = pd.concat([cs.frame.assign(pool=-1), shared_candidates(cs.frame, sc, cl.groups())], ignore_index=True)
    raw = solve_candidates(frame, sc, candidate_info=cs)  # the mean-model table: no capacity curve
    first = simulate(sc, raw)
    failing = {w.workload for w in first.workloads if not w.met}
    pooled = [r for r in raw.fleet if r.pool >= 0]
    assert pooled and failing & {n for r in pooled for n, _ in r.split}, "the example must start with a pool failing"
    verified = verify_plan(raw, sc, frame, lambda f: solve_candidates(f, sc, candidate_info=cs))
    assert f"pool {pooled[0].instance_type} b{pooled[0].batch_size}" in verified.message
    assert verified.verification["met"] is True
    again = simulate(sc, verified, seed=4_242)
    assert again.met, again.attainment_frame().to_string()
