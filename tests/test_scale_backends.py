"""HiGHS on the standing oracles: the golden example plans and the random-scenario oracle (``check_seed``)."""

from __future__ import annotations

import json
import math

import pytest
from random_scenarios import random_scenario
from test_golden_plans import CASES, GOLDEN, _close, _strip
from test_random_oracle import HOURS_ABS, HOURS_REL, _fleet_key, _hours

from solver.backends import available_backends
from solver.errors import InfeasibleError
from solver.planning.evaluate import evaluate
from solver.planning.plan import Plan
from solver.planning.planner import plan
from solver.specs import SolveOptions
from solver.tolerances import SOLUTION_TOL

pytestmark = pytest.mark.skipif(
    not {"highs", "ortools"} <= set(available_backends()), reason="needs highspy and ortools"
)

NAMED = {"backend", "solver_version"}
"""Fields that name the backend: the only ones a HiGHS plan may differ in from the golden (ortools) one."""


def _plan_json(path, backend: str) -> object:
    from typer.testing import CliRunner

    from solver.apps.cli import app

    args = ["plan", "--json", "--backend", backend] + ([str(path)] if path else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 3), result.output
    return _strip(json.loads(result.stdout))


def _drop(value: object, keys: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _drop(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_drop(v, keys) for v in value]
    return value


@pytest.mark.parametrize(("name", "path"), CASES, ids=[c[0] for c in CASES])
def test_highs_plan_matches_golden(name, path):
    got = _plan_json(path, "highs")
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    if isinstance(got, dict) and "backend" in got:
        assert got["backend"] == "highs"
    # another backend than the goldens' (ortools): a shared pool's continuous shares are set only to the solvers'
    # feasibility tolerance, so values are compared at the solution check's tolerance
    _close(_drop(got, NAMED), _drop(expected, NAMED), name, SOLUTION_TOL)


def check_seed_highs(seed: int) -> list[str]:
    """``check_seed`` with HiGHS against OR-Tools: same status, same cost, same fleet, both pass the evaluator."""
    sc = random_scenario(seed)
    plans: dict[str, Plan | str] = {}
    for backend in ("ortools", "highs"):
        try:
            plans[backend] = plan(sc, SolveOptions(backend=backend, time_limit_s=30))
        except InfeasibleError:
            plans[backend] = "infeasible"
    out = []
    status = {b: p if isinstance(p, str) else p.status for b, p in plans.items()}
    if len(set(status.values())) > 1:
        out.append(f"seed {seed}: status disagreement {status}")
    for b, p in plans.items():
        if isinstance(p, Plan):
            ev = evaluate(p, sc)
            if not ev.ok:
                out.append(f"seed {seed}: {b} plan fails the evaluator: {ev}")
            if p.backend != b:
                out.append(f"seed {seed}: asked for {b}, solved by {p.backend} ({p.message})")
    a, c = plans["ortools"], plans["highs"]
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


@pytest.mark.parametrize("start", range(0, 100, 20))
def test_random_scenarios_agree_highs_and_ortools(start):
    problems = [line for seed in range(start, start + 20) for line in check_seed_highs(seed)]
    assert not problems, "\n".join(problems)


def test_highs_banner_stays_off_json_stdout():
    # HiGHS prints a banner on the C stdout at its first construction: `plan --json` must still be pure JSON
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "solver.apps.cli", "plan", "--json", "--backend", "highs"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout)["backend"] == "highs"
