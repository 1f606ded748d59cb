"""Golden outputs: the default plan and every example scenario's plan, as `infersave plan --json` prints them.

Refactors must not change what the planner answers. Timing, the solver's gap and the model's size are left out
(they vary run to run, or with how rows are compiled); everything a user reads from a plan is compared.
Regenerate after an intended change with ``python tests/test_golden_plans.py``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden_plans"
SCENARIOS = sorted((ROOT / "instances" / "scenarios").glob("*.yaml"))
VOLATILE = {"solve_seconds", "seconds", "gap", "model_size", "solver_version"}
TOP_VOLATILE = {"message"}
"""Not compared either: the plan's own message (it says when a tie-break stage stopped at its time budget)."""


def _plan_json(path: Path | None) -> object:
    from typer.testing import CliRunner

    from solver.apps.cli import app

    args = ["plan", "--json"] + ([str(path)] if path else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 3), result.output
    payload = json.loads(result.stdout)
    return _strip(payload)


def _strip(value: object, top: bool = True) -> object:
    if isinstance(value, dict):
        drop = VOLATILE | (TOP_VOLATILE if top and "fleet" in value else set())  # an error's message is kept
        return {k: _strip(v, False) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_strip(v, False) for v in value]
    return value


def _close(a: object, b: object, where: str = "", rel: float = 1e-9) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys differ"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}", rel)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]", rel)
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), f"{where}: {a!r} != {b!r}"
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


CASES = [("embedded_default", None), *[(p.stem, p) for p in SCENARIOS]]


@pytest.mark.parametrize(("name", "path"), CASES, ids=[c[0] for c in CASES])
def test_plan_matches_golden(name: str, path: Path | None) -> None:
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    _close(_plan_json(path), expected, name)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, path in CASES:
        (GOLDEN / f"{name}.json").write_text(json.dumps(_plan_json(path), indent=2, sort_keys=True) + "\n")
        print("wrote", GOLDEN / f"{name}.json")
