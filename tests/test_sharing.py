"""Shared replicas and size distributions (formulations/README.md, "Shared replicas", rows (20)-(22)).

Mélange's problem (arXiv 2404.14527) is posed to infersave as a hand-made candidate table with Mélange's own
capacities (``tests/melange_ilp.py``); its ILP, restated from the paper, is solved alongside.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.data.scenario import scenario_from_dict
from solver.errors import InfeasibleError, InputError
from solver.planning.classes import expand
from solver.planning.evaluate import evaluate
from solver.planning.plan import Plan
from solver.planning.planner import plan, solve_candidates
from solver.specs import Limits
from tests.melange_ilp import (
    EXAMPLE_ANSWER,
    EXAMPLE_ANSWER_COST,
    example_problem,
    grid_problem,
    hand_table,
    melange_ilp,
    scenario_for,
)

TOL = 1e-6


def _solve(rates, tputs, costs, sizes, sharing=True, limits=None):
    scenario = scenario_for(rates, sizes)
    if limits is not None:
        scenario = scenario.model_copy(update={"limits": limits})
    table = hand_table(rates, tputs, costs, sharing=sharing)
    result = solve_candidates(table, scenario)
    check = evaluate(result, scenario, performance=table)
    assert check.ok, str(check)
    return result


# ---------------------------------------------------------------- Mélange's published example
def test_melange_restatement_reproduces_the_published_answer():
    rates, tputs, costs, _sizes = example_problem()
    res = melange_ilp(rates, tputs, costs, slice_factor=1, time_limit_s=30)
    assert res.status == "optimal"
    assert res.counts == EXAMPLE_ANSWER
    assert res.cost == pytest.approx(EXAMPLE_ANSWER_COST)


@pytest.mark.parametrize("slice_factor", [1, 2, 4, 8, 16])
def test_example_optimum_is_never_dearer_than_melange(slice_factor):
    rates, tputs, costs, sizes = example_problem()
    ours = _solve(rates, tputs, costs, sizes)
    theirs = melange_ilp(rates, tputs, costs, slice_factor, time_limit_s=30)
    assert ours.status == "optimal"
    assert ours.cost_usd_per_hour <= theirs.cost + TOL
    # no sharing: every bucket on its own GPUs, dearer here (the structural point)
    alone = _solve(rates, tputs, costs, sizes, sharing=False)
    assert ours.cost_usd_per_hour < alone.cost_usd_per_hour


def test_published_answer_is_feasible_in_our_model():
    rates, tputs, costs, sizes = example_problem()
    fixed = Limits(max_instances=dict(EXAMPLE_ANSWER), min_instances=dict(EXAMPLE_ANSWER))
    result = _solve(rates, tputs, costs, sizes, limits=fixed)
    counts = {}
    for row in result.fleet:
        counts[row.instance_type] = counts.get(row.instance_type, 0) + row.count
    assert counts == EXAMPLE_ANSWER
    assert result.cost_usd_per_hour == pytest.approx(EXAMPLE_ANSWER_COST)


# ---------------------------------------------------------------- the 6×6 grid, four GPU types, 100 req/s
@pytest.fixture(scope="module")
def grid():
    return grid_problem()


@pytest.mark.parametrize("slice_factor", [1, 4, 8])
def test_grid_is_never_dearer_than_melange(grid, slice_factor):
    rates, tputs, costs, sizes = grid
    ours = _solve(rates, tputs, costs, sizes)
    theirs = melange_ilp(rates, tputs, costs, slice_factor, time_limit_s=120)
    assert theirs.status in ("optimal", "time_limit") and math.isfinite(theirs.cost)
    assert ours.cost_usd_per_hour <= theirs.cost + TOL


@pytest.mark.slow
def test_grid_with_random_distributions_is_never_dearer_than_melange(grid):
    _rates, tputs, costs, sizes = grid
    rng = np.random.default_rng(14)
    for _ in range(3):
        shares = rng.dirichlet(np.full(len(sizes), 0.5))
        rates = list(100.0 * shares)
        ours = _solve(rates, tputs, costs, sizes)
        theirs = melange_ilp(rates, tputs, costs, 4, time_limit_s=120)
        assert ours.cost_usd_per_hour <= theirs.cost + TOL


# ---------------------------------------------------------------- properties on hand-made tables
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k_n=st.integers(1, 6),
    g_n=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_sharing_never_raises_cost_and_is_never_dearer_than_melange(k_n, g_n, seed):
    rng = np.random.default_rng(seed)
    costs = {f"g{j}": float(rng.uniform(0.5, 5.0)) for j in range(g_n)}
    tputs = {g: [float(x) if rng.random() > 0.2 else 0.0 for x in rng.uniform(0.2, 20.0, k_n)] for g in costs}
    for k in range(k_n):  # every bucket fits somewhere
        if all(tputs[g][k] == 0 for g in costs):
            tputs["g0"][k] = 1.0
    rates = [float(x) for x in rng.uniform(0.1, 15.0, k_n)]
    sizes = [(100, 100)] * k_n
    shared = _solve(rates, tputs, costs, sizes)
    alone = _solve(rates, tputs, costs, sizes, sharing=False)
    assert shared.cost_usd_per_hour <= alone.cost_usd_per_hour + TOL
    theirs = melange_ilp(rates, tputs, costs, 1, time_limit_s=30)
    assert shared.cost_usd_per_hour <= theirs.cost + TOL


# ---------------------------------------------------------------- real scenarios: distributions on the AWS catalog
def _scenario(workloads, sharing=True):
    return scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "instances": ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6e.xlarge", "g5.12xlarge", "p4d.24xlarge"],
            "workloads": workloads,
            "search": {"batch_sizes": [1, 4, 16, 64], "sharing": sharing},
        }
    )


bucket = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(16, 3000),
        "output_tokens": st.integers(8, 600),
        "share": st.floats(0.05, 1.0),
    }
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    buckets=st.lists(bucket, min_size=1, max_size=4),
    rate=st.floats(0.5, 30.0),
    tpot=st.sampled_from([60.0, 100.0, 200.0]),
    second=st.booleans(),
    dedicated=st.booleans(),
)
def test_sharing_never_raises_a_scenarios_cost_and_every_plan_checks(buckets, rate, tpot, second, dedicated):
    total = sum(b["share"] for b in buckets)
    sizes = [{**b, "share": b["share"] / total} for b in buckets]
    sizes[-1]["share"] = 1.0 - sum(b["share"] for b in sizes[:-1])
    workloads = [
        {"name": "chat", "model": "llama-3.1-8b", "rate_rps": rate, "slo": {"tpot_ms": tpot}, "sizes": sizes},
    ]
    if second:
        workloads.append(
            {
                "name": "api",
                "model": "llama-3.1-8b",
                "input_tokens": 400,
                "output_tokens": 100,
                "rate_rps": 2.0,
                "slo": {"tpot_ms": tpot},
                "dedicated": dedicated,
            }
        )
    plans = {}
    for sharing in (True, False):
        scenario = _scenario(workloads, sharing)
        try:
            plans[sharing] = plan(scenario)
        except InfeasibleError as exc:  # infeasible with sharing must be infeasible without it too
            plans[sharing] = exc
            continue
        check = evaluate(plans[sharing], scenario)
        assert check.ok, str(check)
    if isinstance(plans[False], Plan):
        assert isinstance(plans[True], Plan), "sharing made a feasible scenario infeasible"
        assert plans[True].total_cost_usd <= plans[False].total_cost_usd * (1 + 1e-9) + TOL
    if isinstance(plans[True], Plan) and second and dedicated:
        for row in plans[True].fleet:
            served = {k.split("#")[0] for k, _v in row.split}
            assert not ({"api", "chat"} <= served), "a dedicated workload shared replicas"


def test_split_adds_up_and_survives_json():
    sizes = [
        {"input_tokens": [1, 128], "output_tokens": [1, 128], "share": 0.5},
        {"input_tokens": [129, 1024], "output_tokens": [1, 256], "share": 0.3},
        {"input_tokens": [1025, 4096], "output_tokens": [1, 512], "share": 0.2},
    ]
    scenario = _scenario(
        [{"name": "chat", "model": "llama-3.1-8b", "rate_rps": 1.0, "slo": {"tpot_ms": 100}, "sizes": sizes}]
    )
    result = plan(scenario)
    assert any(r.pool >= 0 for r in result.fleet), "three buckets of one model on one catalog share nothing"
    routed: dict[str, float] = {}
    for row in result.fleet:
        for k, v in row.split:
            routed[k] = routed.get(k, 0.0) + v
    classes = expand(scenario).scenario
    for w in classes.workloads:
        assert routed[w.name] == pytest.approx(w.rate_rps, rel=1e-9)
    frame = result.to_frame()
    assert {"pool", "split"} <= set(frame.columns)
    again = Plan.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.fleet[0].split == result.fleet[0].split
    assert evaluate(again, scenario).ok
    # the evaluator catches a pool loaded beyond (20)
    row = next(r for r in result.fleet if r.pool >= 0)
    heavy = tuple((k, v * 10) for k, v in row.split)
    bad = dataclasses.replace(
        result, fleet=tuple(dataclasses.replace(r, split=heavy) if r is row else r for r in result.fleet)
    )
    assert any(v.check.startswith("sharing.capacity") for v in evaluate(bad, scenario).violations)


# ---------------------------------------------------------------- size distributions: schema and traces
def test_trace_is_bucketed_with_log_edges(tmp_path):
    trace = tmp_path / "trace.csv"
    rows = ["input_tokens,output_tokens,arrival_s"] + [f"{i},{o},0" for i, o in [(3, 5), (4, 6), (100, 7), (1000, 300)]]
    trace.write_text("\n".join(rows) + "\n")
    scenario = scenario_from_dict(
        {"workloads": [{"name": "t", "model": "llama-3.1-8b", "rate_rps": 4.0, "trace": "trace.csv"}]},
        base_dir=tmp_path,
    )
    sizes = scenario.workloads[0].sizes
    assert sizes is not None
    assert sum(b.share for b in sizes) == pytest.approx(1.0)
    # (3,5) and (4,6) share the cell (2,4] x (4,8]; its sized lengths are the longest seen, not the edges
    assert [(b.sized_input, b.sized_output, b.share) for b in sizes] == [(4, 6, 0.5), (100, 7, 0.25), (1000, 300, 0.25)]
    classes = expand(scenario)
    assert [w.rate_rps for w in classes.scenario.workloads] == pytest.approx([2.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("workload", "field"),
    [
        ({"sizes": [{"input_tokens": 10, "output_tokens": 10, "share": 0.4}]}, "sizes"),
        ({"sizes": [{"input_tokens": [50, 10], "output_tokens": 10, "share": 1.0}]}, "input_tokens"),
        ({"trace": "missing.csv"}, "workloads.0"),
        ({"bucket_edges": {"input_tokens": [8]}, "input_tokens": 5, "output_tokens": 5}, "workloads.0"),
    ],
)
def test_bad_distributions_are_one_line_errors(workload, field):
    with pytest.raises(InputError) as err:
        scenario_from_dict({"workloads": [{"name": "w", "model": "llama-3.1-8b", "rate_rps": 1.0, **workload}]})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_example_distribution_is_the_documented_generator():
    from pathlib import Path

    from solver.data.scenario import load_scenario
    from solver.data.traffic import lognormal_histogram

    path = Path(__file__).resolve().parents[1] / "instances" / "scenarios" / "chat_distribution.yaml"
    chat = load_scenario(path).workloads[0]
    expected = lognormal_histogram(69.5, 214.5, 1.0, [32, 128, 512, 2048], [64, 256, 1024])
    assert chat.sizes is not None
    got = [([*b.input_tokens], [*b.output_tokens], b.share) for b in chat.sizes]  # type: ignore[misc]
    assert got == [(b["input_tokens"], b["output_tokens"], b["share"]) for b in expected]
