"""Structural tests of each constraint family on a two-candidate instance."""

import ast
import dataclasses
import math
import pathlib

import numpy as np
import pytest
from planner_tables import scenario, table

from formulations.assemble import build
from formulations.bigm import count_upper_bound
from solver.errors import InfeasibleError, InputError
from solver.planning.evaluate import evaluate
from solver.planning.planner import solve_candidates
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
    assert block(fm, "slo.ttft_ms").n_rows == 2
    assert "slo.tpot_ms" not in fm.lm.blocks and "slo.e2e_s" not in fm.lm.blocks
    tps = block(fm, "slo.tps")
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
    # (9): 3600·θ·r·ρ on h, minus one batch b·ρ per instance on n
    assert list(work.lo) == [36000] and list(work.coef) == [3600 * 2.0, 3600 * 8.0, -8.0, -8.0]
    hours = block(fm, "demand.offline_hours")
    expected_h = 2.5 if billing == "per_second" else 2.0
    assert sorted(hours.coef) == [-expected_h, -expected_h, 1, 1]
    # (11) on both billings: h >= max(billing minimum, e2e / 3600) · n (e2e = 4 s)
    least = block(fm, "demand.offline_min_hours")
    m = 60 / 3600 if billing == "per_second" else 1.0
    assert sorted(least.coef) == pytest.approx([-m, -m, 1, 1]) and list(least.lo) == [0, 0]
    batch = block(fm, "deadline_h")  # (7a): e2e of one batch within the worked time
    assert list(batch.coef) == [4.0, 4.0] and list(batch.hi) == [3600 * expected_h] * 2


def test_offline_min_instances_are_billed():
    """Defect: offline counts cost nothing, so min_instances was met by idle, free instances (count 3, 0 h)."""
    t = table({"kind": "offline", "usd_per_hour": 2.0, "rate_rps": 1.0})
    s = scenario([{"name": "w", "requests": 100, "deadline_h": 2}], limits={"min_instances": {"a.x": 3}})
    plan = solve_candidates(t, s, OPTS)
    (row,) = plan.fleet
    assert row.count == 3
    assert row.instance_hours >= 3 / 60 - 1e-9 and plan.total_cost_usd >= 3 * 2.0 / 60 - 1e-9
    assert evaluate(plan, s, performance=t).ok
    idle = dataclasses.replace(plan, fleet=(dataclasses.replace(row, instance_hours=0.0),))
    checks = {v.check.split(" ")[0] for v in evaluate(idle, s, performance=t).violations}
    assert {"demand.offline_idle", "demand.offline_min_hours"} <= checks
    surplus = dataclasses.replace(plan, fleet=(dataclasses.replace(row, count=9, instance_hours=1.0),))
    no_floor = scenario([{"name": "w", "requests": 100, "deadline_h": 2}])
    checks = {v.check.split(" ")[0] for v in evaluate(surplus, no_floor, performance=t).violations}
    assert "demand.offline_count" in checks  # 9 instances for 1 h of work: ceil(1 / 2) = 1 needed


def test_offline_counts_trimmed_without_tie_break():
    """Every path returns offline counts of ceil(h / H) (here a single workload, no split, no tie-break)."""
    t = table({"kind": "offline", "usd_per_hour": 2.0, "rate_rps": 1.0}, {"kind": "offline", "instance_type": "b.x"})
    s = scenario([{"name": "w", "requests": 20000, "deadline_h": 2}])
    plan = solve_candidates(t, s, OPTS, tie_break=False)
    for r in plan.fleet:
        assert r.count == math.ceil(r.instance_hours / 2 - 1e-9)


def test_offline_batch_longer_than_the_deadline_is_removed():
    """Defect: with deadline 7.2 s a plan used 75 s batches; they are now dropped (reason ``deadline``)."""
    t = table({"kind": "offline", "e2e_s": 75.0}, {"kind": "offline", "instance_type": "b.x", "e2e_s": 5.0})
    s = scenario([{"name": "w", "requests": 10, "deadline_h": 0.002}])
    for reduce in (True, False):
        plan = solve_candidates(t, s, OPTS, reduce=reduce)
        assert {r.instance_type for r in plan.fleet} == {"b.x"}
        assert evaluate(plan, s, performance=t).ok
    with pytest.raises(InfeasibleError, match="deadline"):
        solve_candidates(t.iloc[:1], s, OPTS)
    with pytest.raises(InfeasibleError):
        solve_candidates(t.iloc[:1], s, OPTS, reduce=False)
    plan = solve_candidates(t, s, OPTS)
    (row,) = plan.fleet
    moved = dataclasses.replace(plan, fleet=(dataclasses.replace(row, instance_type="a.x"),))
    assert "deadline_h" in {v.check.split(" ")[0] for v in evaluate(moved, s, performance=t).violations}


def test_offline_work_does_not_count_the_last_partial_batch():
    """(9) is conservative: 2 instances at rate 2 req/s, batch 8: 3600·2·h − 8·2 >= N needs more than N/7200 h."""
    t = table({"kind": "offline", "usd_per_hour": 1.0})
    s = scenario([{"name": "w", "requests": 14400, "deadline_h": 1.5}])
    plan = solve_candidates(t, s, OPTS)
    (row,) = plan.fleet
    assert row.count == 2 and row.instance_hours == pytest.approx(2.0 + 16 / 7200)


def test_per_hour_billing_charges_online_instances_whole_hours():
    """Defect: online instances were costed over a fractional horizon when billed per started hour."""
    s = scenario(billing="per_hour", horizon_h=2.5)
    fm = build(two(), s)
    c = fm.lm.compile()
    assert c.objective[fm.n.start] == pytest.approx(1.0 * 3) and c.objective[fm.n.start + 1] == pytest.approx(9.0)
    plan = solve_candidates(two(), s, OPTS)
    assert plan.total_cost_usd == pytest.approx(6.0 * 3)
    per_second = build(two(), scenario(horizon_h=2.5)).lm.compile()
    assert per_second.objective[fm.n.start] == pytest.approx(2.5)


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
        "limits.max_price_usd_per_hour",
        "limits.budget_usd_per_hour",
        "limits.max_instances",
        "limits.max_instances_per_family",
        "limits.max_instances_per_region",
        "limits.max_total_instances",
        "limits.min_instances",
    }
    assert list(block(fm, "limits.budget_usd_per_hour").coef) == [1.0, 3.0]
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
    with pytest.raises(InputError):
        build(two(), scenario(objective="max_throughput"))
    s = scenario(objective="max_throughput", limits={"budget_usd_per_hour": 7})
    fm = build(two(), s)
    assert fm.lm.sense == "max"
    plan = solve_candidates(two(), s, OPTS)
    # tokens/s per instance: a 0.8*2*100 = 160 for $1, b 0.8*8*100 = 640 for $3: 2b + 1a = $7 -> 1440
    assert plan.objective == pytest.approx(1440.0)


def test_max_throughput_error_names_the_unbounded_types():
    """Defect: the message said "needs a budget or a quota" although a.x had one; it names b.x now."""
    with pytest.raises(InputError) as exc:
        build(two(), scenario(objective="max_throughput", limits={"max_instances": {"a.x": 3}}))
    assert "b.x" in str(exc.value) and "a.x" not in str(exc.value).split("unbounded")[0]
    build(two(), scenario(objective="max_throughput", limits={"max_instances": {"a.x": 3, "b.x": 1}}))


def test_tie_break_puts_the_spend_on_earlier_candidates():
    """Of equal-cost plans the stage keeps the one whose spend lies on earlier candidates (pricier first).

    Defect it keeps fixed: the docs once claimed "fewer instances first", which no weighting guarantees.
    """
    cheap = {"instance_type": "a.x", "usd_per_hour": 2.0, "rate_rps": 1.25}  # 3 instances carry 3 req/s: $6
    dear = {"instance_type": "b.x", "family": "b", "usd_per_hour": 3.0, "rate_rps": 1.875}  # 2 instances: $6
    filler = [{"instance_type": f"c.{k}", "family": "c", "usd_per_hour": 2.5, "ttft_ms": 900.0} for k in range(20)]
    s = scenario([{"name": "w", "rate_rps": 3, "slo": {"ttft_ms": 500}}])
    for rows in ((cheap, dear, *filler), (dear, cheap, *filler)):  # the table's order does not matter
        plan = solve_candidates(table(*rows), s, OPTS, reduce=False)
        assert plan.objective == pytest.approx(6.0)
        assert [(r.instance_type, r.count) for r in plan.fleet] == [("b.x", 2)]
    readme = (pathlib.Path(__file__).resolve().parents[1] / "formulations" / "README.md").read_text()
    assert "fewer instances first" not in readme


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


def test_offline_dominance_keeps_a_smaller_batch_of_less_capacity():
    """Offline, the larger capacity does not dominate a smaller batch: (9) loses one batch per instance."""
    big = {"kind": "offline", "rate_rps": 2.0, "batch_size": 1000, "e2e_s": 500.0}
    small = {"kind": "offline", "rate_rps": 1.9, "batch_size": 8, "e2e_s": 8 / 1.9}
    s = scenario([{"name": "w", "requests": 100, "deadline_h": 2}])
    t = table(big, small)
    presolved = solve_candidates(t, s, OPTS)
    assert presolved.objective == pytest.approx(solve_candidates(t, s, OPTS, reduce=False).objective)
    assert presolved.objective == pytest.approx(1 / 60)  # one small-batch instance for its 60 s minimum
