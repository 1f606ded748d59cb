"""The standing oracle: random valid scenarios planned on both backends must agree and pass the evaluator.

For each seed of :mod:`random_scenarios` (1-8 workloads, markets, budgets, quotas, offline deadlines, both
billings), the scenario is planned with ortools and with CBC. Asserted: the same status (or both infeasible),
objectives equal to 1e-6 (relative), every plan passes :func:`solver.planning.evaluate.evaluate` and serves
every workload, and, when both prove optimality, the same fleet (the tie-break's promise). The default suite
runs 200 seeds with the pinned CBC; the ``slow`` test runs 3,000 with every CBC build found here.
"""

from __future__ import annotations

import math

import pytest
from random_scenarios import random_scenario

from solver.backends import BACKENDS, available_backends
from solver.backends.cbc import CbcBackend, cbc_builds
from solver.errors import InfeasibleError
from solver.planning.evaluate import evaluate
from solver.planning.plan import Plan
from solver.planning.planner import plan
from solver.specs import SolveOptions

pytestmark = pytest.mark.skipif(not {"ortools", "cbc"} <= set(available_backends()), reason="needs both backends")

TIME_LIMIT_S = 120.0
"""Each plan's time limit: twice the default. The oracle checks answers, not speed: CBC's cbcbox build needs 59 s
for one 85-variable pooled block (seed 1172; PuLP's bundled CBC 2 s, SCIP well under 1 s) and at 30 s returned an
honest ``feasible`` (gap 5.5e-4) that counted as a status disagreement."""
HOURS_REL, HOURS_ABS = 1e-5, 1e-4
"""Instance-hours are continuous: two backends may leave a row's hours apart by their feasibility tolerances
(seen: 1.499992 h against 1.5 h on a deadline row, the same fleet at costs equal to 1e-9)."""


def _fleet_key(p: Plan) -> list[tuple]:
    """The fleet as comparable rows (hours compared separately, to HOURS_REL)."""
    return sorted(
        (r.workload, r.instance_type, r.market, r.region, r.tp, r.batch_size, r.offload_fraction, r.count)
        for r in p.fleet
    )


def _hours(p: Plan) -> dict[tuple, float]:
    """Instance-hours of each offline fleet row."""
    return {
        (r.workload, r.instance_type, r.market, r.region, r.tp, r.batch_size, r.offload_fraction): r.instance_hours
        for r in p.fleet
        if r.kind == "offline"
    }


def check_seed(seed: int) -> list[str]:
    """Plan the seed's scenario on ortools and cbc; return every disagreement or failure, one line each."""
    sc = random_scenario(seed)
    plans: dict[str, Plan | str] = {}
    for backend in ("ortools", "cbc"):
        try:
            plans[backend] = plan(sc, SolveOptions(backend=backend, time_limit_s=TIME_LIMIT_S))
        except InfeasibleError:
            plans[backend] = "infeasible"
    out = []
    status = {b: p if isinstance(p, str) else p.status for b, p in plans.items()}
    if len(set(status.values())) > 1:
        out.append(f"seed {seed}: status disagreement {status}")
    for b, p in plans.items():
        if isinstance(p, str):
            continue
        ev = evaluate(p, sc)
        if not ev.ok:
            out.append(f"seed {seed}: {b} plan fails the evaluator: {ev}")
        served = {r.workload for r in p.fleet} | {k for r in p.fleet for k, _rate in r.split}  # shared rows: split
        missing = {w.name for w in sc.workloads} - served
        if missing:
            out.append(f"seed {seed}: {b} plan serves no {sorted(missing)}")
    a, c = plans["ortools"], plans["cbc"]
    if isinstance(a, Plan) and isinstance(c, Plan):
        if not math.isclose(a.objective, c.objective, rel_tol=1e-6, abs_tol=1e-9):
            out.append(f"seed {seed}: objective disagreement {a.objective!r} vs {c.objective!r}")
        elif a.status == c.status == "optimal":
            ha, hc = _hours(a), _hours(c)
            if _fleet_key(a) != _fleet_key(c) or any(
                not math.isclose(ha[k], hc[k], rel_tol=HOURS_REL, abs_tol=HOURS_ABS) for k in ha
            ):
                out.append(f"seed {seed}: tie disagreement (same cost, different fleets)")
    return out


@pytest.mark.parametrize("start", range(0, 200, 20))
def test_random_scenarios_agree_on_both_backends(start):
    problems = [line for seed in range(start, start + 20) for line in check_seed(seed)]
    assert not problems, "\n".join(problems)


def test_tie_break_is_capped_by_an_exact_answer():
    """Defect: CBC's stage-one answer was short of demand by its tolerance, so cheaper than the exact optimum; the
    tie-break cap built on it excluded the canonical plan and CBC split a workload over two regions (seed 387)."""
    assert check_seed(387) == []


@pytest.mark.parametrize("build", sorted(cbc_builds()))
def test_cbc_objective_increment_is_pinned(build, monkeypatch):
    """Defect: cbcbox's default objective increment (1e-4, absolute) pruned the optimum of a $0.007 sub-model and
    proved a 1 % worse plan "optimal" (seed 2704: batch 16 at $0.0069531 where batch 32 costs $0.0068854)."""
    monkeypatch.setitem(BACKENDS, "cbc", CbcBackend(path=cbc_builds()[build]))
    assert check_seed(2704) == []


TIE_SEEDS = {
    248: "a stage with plain ranks under one cost cap found no plan in its budget (pooled model)",
    456: "the same: one backend's stage stopped at its budget, the other's did not",
    935: "the one-row column master gave a region quota to different workloads at equal cost",
    1299: "1e-8 req/s of a class left in a second pool by one backend's tolerance",
    2158: "CBC's stage found no plan in 1 s: its budget did not count the column method's solves",
    2945: "offline hours left where each MILP stopped: 11.9999 h against 11.9994 h",
    1517: "per-workload caps on a merged group: each backend's own cost split made its own canonical plan",
    481: "the same, a region quota between a pool and a dedicated row (cbcbox)",
}
"""Seeds of the 3,000-seed run on which the two backends proved different plans of one cost (before the fix)."""


@pytest.mark.parametrize("seed", sorted(TIE_SEEDS))
def test_former_tie_disagreements_agree(seed):
    """Defects (TIE_SEEDS): the same input gave two fleets of equal cost, one per backend."""
    assert check_seed(seed) == [], TIE_SEEDS[seed]


@pytest.mark.slow
@pytest.mark.parametrize("build", sorted(cbc_builds()))
def test_random_scenarios_3000_seeds_every_cbc_build(build, monkeypatch):
    monkeypatch.setitem(BACKENDS, "cbc", CbcBackend(path=cbc_builds()[build]))
    problems = [line for seed in range(3000) for line in check_seed(seed)]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:50])


def test_the_generator_is_seeded_and_varied():
    assert random_scenario(7) == random_scenario(7)
    scenarios = [random_scenario(s) for s in range(200)]
    sizes = {len(s.workloads) for s in scenarios}
    assert sizes == set(range(1, 9))
    assert {s.billing for s in scenarios} == {"per_second", "per_hour"}
    kinds = {w.kind for s in scenarios for w in s.workloads}
    assert kinds == {"online", "offline"}
    assert any(s.limits.budget_usd_per_hour for s in scenarios)
    assert any(s.limits.max_instances for s in scenarios)
    assert any("spot" in s.markets for s in scenarios)
