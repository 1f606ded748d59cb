"""PuLP backend: one pinned CBC binary, run through ``COIN_CMD`` with an explicit path.

Which CBC runs does not depend on PATH. The default is the binary bundled inside pulp 3
(``pulp/solverdir/cbc/<os>/<arch>/cbc``, CBC 2.10.3): it comes with every pulp install, it is one fixed build
on every machine, and its version is printed in its banner. The ``cbcbox`` wheel that ``pulp[cbc]`` installs
picks one of several builds at run time from the CPU's features, so the same install may run different code on
different machines; it is used only where pulp has no bundled binary (pulp 4), or when asked for with
``CbcBackend(path=...)`` (the random-scenario oracle runs both builds). The binary's version goes in every
result (``SolveResult.solver_version``) and so in every plan.

The bound is read from CBC's log at full precision: ``Partial search - best objective X (best possible Y)``
and ``After N nodes ... best possible Y`` print 15 digits (the closing summary's ``Lower bound:`` only 6);
``Exiting as integer gap of G`` gives ``bound = objective ∓ G``; ``Search completed`` (the tree was exhausted)
and ``No integer variables - nothing to do`` (preprocessing left no integer variable: the LP optimum is the
optimum) make the bound the objective. The cbcbox build prints none of these but a closing ``Gap: g`` (relative,
its own significant digits: ``bound = objective ∓ g·|objective|``), or, when the tree closed, a bare
``Result - Optimal solution found`` (the bound is the objective). Without any of these lines the bound is
unknown.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from formulations.linear import CompiledModel
from solver.backends.base import Backend, RawAnswer, Status
from solver.specs import SolveOptions
from solver.tolerances import CBC_OBJECTIVE_INCREMENT, GAP_DENOMINATOR_FLOOR, INFINITE_BOUND

_NUMBER = r"([-+]?(?:[0-9]+\.?[0-9]*(?:[eE][-+]?[0-9]+)?|inf))"


CBC_OPTIONS: tuple[str, ...] = ("probing off", f"increment {CBC_OBJECTIVE_INCREMENT:g}")
"""Extra CBC options, the same for every build.

- Probing is off: on the random-scenario oracle CBC 2.10.3's root probing cut off the optimum (``Cuts at root
  node changed objective from 1.60588 to 1.861`` where 1.8108 is feasible, reported "Search completed"), in 4 of
  3,000 scenarios; without probing those four solve right, at no measurable cost on these models.
- The objective increment is pinned (:data:`solver.tolerances.CBC_OBJECTIVE_INCREMENT`): builds differ in its
  default, and cbcbox's 1e-4 pruned the optimum of a $0.007 sub-model (oracle seed 2704)."""


def bundled_cbc() -> str | None:
    """Path of the CBC binary bundled with pulp 3, or ``None`` where pulp has none."""
    try:
        from pulp.apis import coin_api
    except ImportError:
        return None
    path = getattr(coin_api, "pulp_cbc_path", None)
    return str(Path(path).resolve()) if path and os.access(path, os.X_OK) else None


def cbcbox_cbc() -> str | None:
    """Path of the ``cbc`` launcher that the ``cbcbox`` wheel installs next to this Python, or ``None``."""
    candidate = Path(sys.executable).parent / "cbc"
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("cbc")
    return found


def cbc_builds() -> dict[str, str]:
    """Return the CBC builds found here, by name (``bundled``, ``cbcbox``), for the oracle to run each."""
    out: dict[str, str] = {}
    for name, path in (("bundled", bundled_cbc()), ("cbcbox", cbcbox_cbc())):
        if path is not None and path not in out.values():
            out[name] = path
    return out


class CbcBackend(Backend):
    """CBC through PuLP's ``COIN_CMD`` with a pinned binary (``path``; default :func:`bundled_cbc`)."""

    def __init__(self, path: str | None = None, name: str = "cbc") -> None:
        self.name = name
        self._path = path
        self.description = "CBC via PuLP (pinned binary)"

    @functools.cached_property
    def path(self) -> str | None:
        """The binary that runs: the one given, else pulp's bundled one, else cbcbox's."""
        return self._path or bundled_cbc() or cbcbox_cbc()

    def _check_available(self) -> bool:
        import pulp  # noqa: F401

        return self.path is not None

    @functools.cached_property
    def version(self) -> str:
        """``CBC <version>`` from the binary's banner (its path when the banner has none)."""
        if self.path is None:
            return ""
        try:
            out = subprocess.run([self.path, "-quit"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return f"CBC at {self.path}"
        text = out.stdout + out.stderr
        found = re.search(r"^Version:\s*(\S+)", text, flags=re.MULTILINE) or re.search(r"CBC (\S+ \(git:\w+\))", text)
        return f"CBC {found.group(1)}" if found else f"CBC at {self.path}"

    def translate(self, model: CompiledModel) -> Any:
        """Build a ``pulp.LpProblem`` and its variables."""
        import pulp

        sense = pulp.LpMinimize if model.sense == "min" else pulp.LpMaximize
        prob = pulp.LpProblem("fleet", sense)
        add_variable = getattr(prob, "add_variable", None)  # pulp >= 3.3; older: the LpVariable constructor
        make = add_variable if add_variable is not None else pulp.LpVariable
        xs = [
            make(
                f"x{j}",
                None if not np.isfinite(model.lb[j]) else float(model.lb[j]),
                None if not np.isfinite(model.ub[j]) else float(model.ub[j]),
                cat=pulp.LpInteger if model.integer[j] else pulp.LpContinuous,
            )
            for j in range(model.n_vars)
        ]
        nz = np.flatnonzero(model.objective)
        prob.setObjective(
            pulp.LpAffineExpression(
                [(xs[j], float(model.objective[j])) for j in nz], constant=float(model.objective_offset)
            )
        )
        for r in range(model.n_rows):
            a, b = int(model.indptr[r]), int(model.indptr[r + 1])
            if a == b:
                continue  # empty rows that hold were checked by trivially_infeasible
            expr = pulp.LpAffineExpression(
                [(xs[j], float(v)) for j, v in zip(model.indices[a:b], model.data[a:b], strict=True)]
            )
            lo, hi = float(model.row_lo[r]), float(model.row_hi[r])
            if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
                prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{r}", hi))
                continue
            if np.isfinite(lo):
                prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{r}_lo", lo))
            if np.isfinite(hi):
                prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{r}_hi", hi))
        return prob, xs

    def set_start(self, handle: Any, x: np.ndarray) -> None:
        """Give CBC ``x`` as its MIP start (PuLP's ``warmStart``: the variables' initial values)."""
        prob, xs = handle
        for var, v in zip(xs, x.tolist(), strict=True):
            var.setInitialValue(float(round(v)) if var.cat == "Integer" else float(v))
        prob.infersave_start = True

    def run(self, handle: Any, options: SolveOptions) -> Any:
        """Run the pinned CBC with a log file; return (exception or None, log text)."""
        import pulp

        prob, _ = handle
        with tempfile.TemporaryDirectory(prefix="infersave-cbc-") as tmp:
            log = os.path.join(tmp, "cbc.log")
            cmd = pulp.COIN_CMD(
                path=self.path,
                msg=options.verbose,
                timeLimit=float(options.time_limit_s),
                gapRel=float(options.relative_gap),
                threads=options.threads,
                logPath=log,
                options=list(CBC_OPTIONS),
                warmStart=bool(getattr(prob, "infersave_start", False)),
            )
            try:
                prob.solve(cmd)
            except pulp.PulpSolverError as exc:
                return exc, ""
            text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
        return None, text

    def read(self, handle: Any, ran: Any, model: CompiledModel) -> RawAnswer:
        """Map PuLP's codes; read values, the objective and the bound from the log."""
        import pulp

        prob, xs = handle
        failure, text = ran
        if failure is not None:
            return RawAnswer("error", message=str(failure))
        status = _status(prob.status, prob.sol_status)
        if status not in ("optimal", "feasible"):
            return RawAnswer(status, message=text[-300:])
        x = np.array([v.varValue if v.varValue is not None else math.nan for v in xs], dtype=float)
        obj = float(pulp.value(prob.objective) or 0.0)
        bound, proven = bound_from_log(text, obj, model.sense)
        return RawAnswer(status, x, obj, bound, proven and status == "optimal", message=_warnings(text))


def _status(status: int, sol_status: int) -> Status:
    """Map PuLP's two integer codes onto the one status vocabulary."""
    import pulp.constants as c

    if sol_status == c.LpSolutionOptimal:
        return "optimal"
    if sol_status == c.LpSolutionIntegerFeasible:
        return "feasible"
    if status == c.LpStatusInfeasible or sol_status == c.LpSolutionInfeasible:
        return "infeasible"
    if status == c.LpStatusUnbounded or sol_status == c.LpSolutionUnbounded:
        return "unbounded"
    if status == c.LpStatusNotSolved or sol_status == c.LpSolutionNoSolutionFound:
        return "no_solution"
    return "error"


def bound_from_log(text: str, objective: float, sense: str = "min") -> tuple[float, bool]:
    """Return (best bound, whether CBC closed the search) from its log, at the log's full precision.

    Parameters
    ----------
    text
        CBC's log.
    objective
        The objective of the solution read back (the bound of a closed search, and the base of a gap exit).
    sense
        ``min`` or ``max``.

    Returns
    -------
    tuple of (float, bool)
        The bound (NaN when the log states none) and ``True`` when CBC reports the search completed or
        stopped on the gap (a proof), ``False`` otherwise.
    """
    sign = 1.0 if sense == "min" else -1.0
    gap = re.findall(r"Exiting as integer gap of " + _NUMBER, text)
    if re.search(r"Search completed - best objective|No integer variables - nothing to do", text):
        return objective, True
    if gap:
        return objective - sign * abs(float(gap[-1])), True
    possible = re.findall(r"best possible " + _NUMBER, text)
    if possible:
        try:
            value = float(possible[-1])
        except ValueError:
            return math.nan, False
        return (value if abs(value) < INFINITE_BOUND else math.nan), False
    ratio = re.findall(r"^Gap:\s*" + _NUMBER + r"\s*$", text, flags=re.MULTILINE)  # cbcbox's summary
    if ratio and math.isfinite(float(ratio[-1])):
        proven = bool(re.search(r"^Result - Optimal solution found", text, flags=re.MULTILINE))
        return objective - sign * float(ratio[-1]) * max(abs(objective), GAP_DENOMINATOR_FLOOR), proven
    if re.search(r"^Result - Optimal solution found\s*$", text, flags=re.MULTILINE):  # cbcbox: the tree closed
        return objective, True
    return math.nan, False


def _warnings(text: str) -> str:
    """CBC's warnings worth repeating (e.g. a post-processing tolerance issue), else ``""``."""
    hits = re.findall(r"^.*(?:infeasible|tolerance).*$", text, flags=re.MULTILINE | re.IGNORECASE)
    return "; ".join(h.strip() for h in hits[:2])
