"""Structural tests of each constraint family on a two-candidate instance."""

import ast
import pathlib

import numpy as np
import pytest
from planner_tables import scenario, table

from formulations.assemble import build
from formulations.bigm import count_upper_bound
from solver.planner import solve_candidates
from solver.specs import SolveOptions

OPTS = SolveOptions(backend="auto", time_limit_s=20)


def two():
    return table(
        {"instance_type": "a.x", "family": "a", "usd_per_hour": 1.0, "rate_rps": 2.0},
        {"instance_type": "b.x", "family": "b", "usd_per_hour": 3.0, "rate_rps": 8.0, "region": "r2"},
    )


def block(fm, name):
    return fm.lm.blocks[name]


def test_selection_link_rows_use_big_m_from_data():
    s = scenario()
    fm = build(two(), s)
    assert fm.n.size == fm.y.size == 2 and fm.n.integer and fm.y.integer
    u = count_upper_bound(two(), s)
    # U_c = ceil(rate / (0.8 r_c rho_c)): 10/1.6 -> 7, 10/6.4 -> 2
    assert list(u) == [7, 2]
    b = block(fm, "selection.link")
    assert b.n_rows == 2 and list(b.hi) == [0, 0]
    coef = {(int(r), int(c)): a for r, c, a in zip(b.row, b.col, b.coef, strict=True)}
    assert coef[(0, fm.n.start)] == 1 and coef[(0, fm.y.start)] == -7
    _, ub = fm.lm.bounds(fm.n)
    assert list(ub) == [7, 2]


def test_memory_rows_fix_unfit_candidate_to_zero():
    t = two()
    t.loc[1, "total_gpu_gib"] = 30.0  # cheaper per capacity, but does not fit
    s = scenario()
    fm = build(t, s)
    g = block(fm, "memory.gpu")
    assert list(g.coef) == [10.0, 30.0] and list(g.hi) == [20.0, 20.0]
    h = block(fm, "memory.host")
    assert h.n_rows == 2
    compiled = fm.lm.compile(singletons_as_bounds=True)
    assert compiled.ub[fm.y.start + 1] == 0  # the breaking row became y_1 <= 0
    plan = solve_candidates(t, s, OPTS, reduce=False)
    assert {r.instance_type for r in plan.fleet} == {"a.x"}
    assert plan.objective == pytest.approx(7.0)


def test_host_memory_row():
    t = two()
    t.loc[1, "offloaded_kv_gib"] = 200.0
    plan = solve_candidates(t, scenario(), OPTS, reduce=False)
    assert {r.instance_type for r in plan.fleet} == {"a.x"}


def test_latency_rows_only_for_set_slos_and_tps_sign():
    s = scenario([{"name": "w", "rate_rps": 10, "slo": {"ttft_ms": 150, "tps": 900}}])
    t = two()
    t.loc[1, "ttft_ms"] = 200.0
    fm = build(t, s)
    assert block(fm, "latency.ttft").n_rows == 2
    assert block(fm, "latency.tpot").n_rows == 0 and block(fm, "latency.e2e").n_rows == 0
    tps = block(fm, "latency.tps")
    assert list(tps.coef) == [900 - 1000.0, 900 - 1000.0] and list(tps.hi) == [0, 0]
    plan = solve_candidates(t, s, OPTS, reduce=False)
    assert {r.instance_type for r in plan.fleet} == {"a.x"}
    t.loc[0, "tps"] = 800.0  # now a.x breaks TPS and b.x breaks TTFT
    from solver.errors import InfeasibleError

    with pytest.raises(InfeasibleError):
        solve_candidates(t, s, OPTS, reduce=False)


def test_online_demand_row():
    s = scenario(search={"utilisation_cap": 0.5})
    t = two()
    t.loc[1, "replicas"] = 2
    fm = build(t, s)
    d = block(fm, "demand.online")
    assert d.n_rows == 1 and list(d.lo) == [10.0]
    assert list(d.coef) == [0.5 * 2.0, 0.5 * 8.0 * 2]
    assert "demand.offline_min_hours" not in fm.lm.blocks


@pytest.mark.parametrize("billing", ["per_second", "per_hour"])
def test_offline_rows(billing):
    s = scenario([{"name": "w", "requests": 36000, "deadline_h": 2.5}], billing=billing)
    fm = build(two(), s)
    assert fm.h.size == 2 and fm.h.integer == (billing == "per_hour")
    work = block(fm, "demand.offline_work")
    assert list(work.lo) == [36000] and list(work.coef) == [3600 * 2.0, 3600 * 8.0]
    hours = block(fm, "demand.offline_hours")
    expected_h = 2.5 if billing == "per_second" else 2.0
    assert sorted(hours.coef) == [-expected_h, -expected_h, 1, 1]
    assert ("demand.offline_min_hours" in fm.lm.blocks) == (billing == "per_hour")


def test_limit_rows_only_when_set():
    fm = build(two(), scenario())
    assert not [b for b in fm.lm.blocks if b.startswith("limits.")]
    s = scenario(
        limits={
            "budget_usd_per_hour": 10,
            "max_price_usd_per_hour": 2,
            "max_instances": {"a.x": 3},
            "max_instances_per_family": {"b": 1},
            "max_instances_per_region": {"r2": 4},
            "max_total_instances": 9,
            "min_instances": {"a.x": 1},
        }
    )
    fm = build(two(), s)
    names = {b for b in fm.lm.blocks if b.startswith("limits.")}
    assert names == {
        "limits.max_price",
        "limits.budget_per_hour",
        "limits.max_instances",
        "limits.max_instances_per_family",
        "limits.max_instances_per_region",
        "limits.max_total_instances",
        "limits.min_instances",
    }
    assert list(block(fm, "limits.budget_per_hour").coef) == [1.0, 3.0]
    assert list(block(fm, "limits.min_instances").lo) == [1]
    # price cap 2 removes b.x; quota 3 on a.x caps capacity at 4.8 < 10: infeasible
    from solver.errors import InfeasibleError

    with pytest.raises(InfeasibleError):
        solve_candidates(two(), s, OPTS, reduce=False)


def test_objective_min_cost_uses_horizon_and_offline_hours():
    s = scenario(
        [{"name": "on", "rate_rps": 1}, {"name": "off", "requests": 100, "deadline_h": 3}],
    )
    t = table(
        {"workload": "on", "usd_per_hour": 2.0},
        {"workload": "off", "kind": "offline", "usd_per_hour": 5.0},
    )
    fm = build(t, s)
    c = fm.lm.compile()
    assert c.sense == "min"
    assert c.objective[fm.n.start] == pytest.approx(2.0 * 3)  # horizon = max deadline
    assert c.objective[fm.n.start + 1] == 0
    assert c.objective[fm.h.start] == pytest.approx(5.0)


def test_max_throughput_needs_a_bound_and_maximises():
    from solver.errors import InputError

    with pytest.raises(InputError):
        build(two(), scenario(objective="max_throughput"))
    s = scenario(objective="max_throughput", limits={"budget_usd_per_hour": 7})
    fm = build(two(), s)
    assert fm.lm.sense == "max"
    plan = solve_candidates(two(), s, OPTS)
    # tokens/s per instance: a 0.8*2*100 = 160 for $1, b 0.8*8*100 = 640 for $3: 2b + 1a = $7 -> 1440
    assert plan.objective == pytest.approx(1440.0)


def test_singletons_as_bounds_keeps_the_optimum():
    t = two()
    t.loc[1, "ttft_ms"] = 500.0
    s = scenario([{"name": "w", "rate_rps": 10, "slo": {"ttft_ms": 150}}])
    fm = build(t, s)
    full, pres = fm.lm.compile(), fm.lm.compile(singletons_as_bounds=True)
    assert pres.n_rows < full.n_rows
    from solver.backends import get_backend

    b = get_backend("auto")
    r1, r2 = b.solve(full, OPTS), b.solve(pres, OPTS)
    assert r1.objective == pytest.approx(r2.objective, rel=1e-9)


def test_formulations_never_import_a_solver():
    root = pathlib.Path(__file__).resolve().parents[1] / "formulations"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    assert not n.startswith(("ortools", "pulp", "solver.backends")), (path.name, n)


def test_build_does_not_modify_input():
    t = two()
    before = t.copy()
    build(t, scenario())
    assert t.equals(before)
    assert np.all(t.index == before.index)
