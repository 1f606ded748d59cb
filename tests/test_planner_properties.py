"""Planner properties on real candidates (performance model + AWS catalog): monotone in SLOs and demand,
every returned plan passes the exact evaluator, extra offload grid points never change the optimum."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.errors import InfeasibleError
from solver.evaluate import evaluate
from solver.planner import build_candidates, plan
from solver.scenario import load_scenario, scenario_from_dict
from solver.specs import SolveOptions

OPTS = SolveOptions(backend="auto", time_limit_s=30)
INSTANCES = ["g5.xlarge", "g6.xlarge", "g6e.xlarge", "g5.12xlarge", "g4dn.xlarge", "p3.8xlarge"]


def make(tpot_ms=None, ttft_ms=None, rate=5.0, requests=20000, deadline_h=4.0, grid=(), billing="per_second"):
    slo = {k: v for k, v in (("tpot_ms", tpot_ms), ("ttft_ms", ttft_ms)) if v is not None}
    return scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "markets": ["on_demand", "spot"],
            "instances": INSTANCES,
            "billing": billing,
            "workloads": [
                {
                    "name": "chat",
                    "model": "llama-3.1-8b",
                    "input_tokens": 512,
                    "output_tokens": 128,
                    "rate_rps": rate,
                    "slo": slo,
                },
                {
                    "name": "batch",
                    "model": "llama-3.1-8b",
                    "input_tokens": 1024,
                    "output_tokens": 128,
                    "requests": requests,
                    "deadline_h": deadline_h,
                },
            ],
            "search": {"batch_sizes": [1, 4, 16, 64], "offload_grid": list(grid)},
        }
    )


def cost(scen):
    try:
        p = plan(scen, OPTS)
    except InfeasibleError:
        return math.inf, None
    report = evaluate(p, scen)
    assert report.ok, str(report)
    return p.objective, p


@settings(deadline=None, max_examples=12)
@given(
    tpot=st.lists(st.sampled_from([20.0, 40.0, 60.0, 100.0, None]), min_size=2, max_size=2),
    ttft=st.sampled_from([500.0, 2000.0, None]),
)
def test_tighter_slo_never_lowers_cost(tpot, ttft):
    loose, tight = sorted(tpot, key=lambda v: -(v or 1e9))
    c_loose, _ = cost(make(tpot_ms=loose, ttft_ms=ttft))
    c_tight, _ = cost(make(tpot_ms=tight, ttft_ms=ttft))
    assert c_tight >= c_loose * (1 - 1e-9)


@settings(deadline=None, max_examples=12)
@given(
    rates=st.lists(st.sampled_from([0.5, 3.0, 12.0, 40.0]), min_size=2, max_size=2),
    requests=st.lists(st.sampled_from([1000, 50000, 400000]), min_size=2, max_size=2),
    billing=st.sampled_from(["per_second", "per_hour"]),
)
def test_more_demand_never_lowers_cost(rates, requests, billing):
    lo_r, hi_r = sorted(rates)
    lo_n, hi_n = sorted(requests)
    c_lo, _ = cost(make(tpot_ms=80.0, rate=lo_r, requests=lo_n, billing=billing))
    c_hi, _ = cost(make(tpot_ms=80.0, rate=hi_r, requests=hi_n, billing=billing))
    assert c_hi >= c_lo * (1 - 1e-9)


def test_offload_grid_points_never_change_the_optimum():
    base, _ = cost(make(tpot_ms=100.0))
    gridded, _ = cost(make(tpot_ms=100.0, grid=(0.1, 0.25, 0.5, 0.9)))
    assert gridded == pytest.approx(base, rel=1e-9)
    cands = build_candidates(make(tpot_ms=100.0, grid=(0.1, 0.25, 0.5, 0.9)))
    assert (cands["offload_fraction"] > 0).any()  # the grid did add candidates


def test_default_scenario_plan_passes_evaluate_and_broken_plans_are_caught():
    scen = load_scenario()
    p = plan(scen, OPTS)
    assert p.status == "optimal" and p.fleet
    assert evaluate(p, scen).ok
    online = next(r for r in p.fleet if r.kind == "online")
    others = [r for r in p.fleet if r is not online]
    fewer = dataclasses.replace(p, fleet=(dataclasses.replace(online, count=online.count - 1), *others))
    assert any(v.check.startswith("demand.online") for v in evaluate(fewer, scen).violations)
    bigger = dataclasses.replace(p, fleet=(dataclasses.replace(online, batch_size=online.batch_size * 8), *others))
    assert not evaluate(bigger, scen).ok
    offline = next(r for r in p.fleet if r.kind == "offline")
    rest = [r for r in p.fleet if r is not offline]
    halved = dataclasses.replace(offline, instance_hours=offline.instance_hours / 2)
    short = dataclasses.replace(p, fleet=(*rest, halved))
    assert any(v.check.startswith("demand.offline_work") for v in evaluate(short, scen).violations)
    moved = dataclasses.replace(p, fleet=(dataclasses.replace(online, instance_type="g4dn.xlarge"), *others))
    assert not evaluate(moved, scen).ok


def test_plan_is_a_value_and_scenario_untouched():
    scen = load_scenario()
    before = scen.model_dump()
    p = plan(scen, OPTS)
    assert scen.model_dump() == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.status = "x"  # type: ignore[misc]
    data = p.to_dict()
    assert set(data["fleet"][0]) >= {
        "workload",
        "instance_type",
        "market",
        "region",
        "count",
        "tp",
        "batch_size",
        "offload_fraction",
        "usd_per_hour",
        "ttft_ms",
        "tpot_ms",
        "tps",
        "utilisation",
    }
