"""PuLP backend: CBC through ``COIN_CMD`` or, failing that, ``PULP_CBC_CMD``.

``COIN_CMD`` needs a ``cbc`` on PATH (as ``pip install pulp[cbc]`` gives); ``PULP_CBC_CMD`` is the binary
bundled with pulp 3 (deprecated there, removed in pulp 4).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import warnings
from typing import Any

import numpy as np

from formulations.linear import CompiledModel
from solver.backends.base import Backend, Capabilities, SolveResult, Status, relative_gap, trivially_infeasible
from solver.specs import SolveOptions

_NUMBER = r"([-+0-9.eE]+|inf|-inf|1e\+50|-1e\+50)"


class CbcBackend(Backend):
    """PuLP 3 with ``PULP_CBC_CMD`` (``msg``, ``timeLimit``, ``gapRel``, ``threads``)."""

    name = "cbc"
    capabilities = Capabilities(continuous=True, integer=True)
    description = "CBC via PuLP (PULP_CBC_CMD)"

    def _check_available(self) -> bool:

        return _command(msg=False) is not None

    def solve(self, model: CompiledModel, options: SolveOptions) -> SolveResult:
        """Translate to PuLP objects, run CBC, read values and the bound from its log."""
        import pulp

        start = time.perf_counter()
        reason = trivially_infeasible(model)
        if reason is not None:
            return SolveResult("infeasible", None, math.nan, math.nan, math.nan, self.name, 0.0, reason)
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
        with tempfile.TemporaryDirectory(prefix="infersave-cbc-") as tmp:
            log = os.path.join(tmp, "cbc.log")
            cmd = _command(
                msg=options.verbose,
                timeLimit=float(options.time_limit_s),
                gapRel=float(options.relative_gap),
                threads=options.threads,
                logPath=log,
            )
            try:
                prob.solve(cmd)
            except pulp.PulpSolverError as exc:
                seconds = time.perf_counter() - start
                return SolveResult("error", None, math.nan, math.nan, math.nan, self.name, seconds, str(exc))
            text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
        seconds = time.perf_counter() - start
        status = _status(prob.status, prob.sol_status)
        if status not in ("optimal", "feasible"):
            return SolveResult(status, None, math.nan, math.nan, math.nan, self.name, seconds, text[-300:])
        x = np.array([v.varValue if v.varValue is not None else 0.0 for v in xs], dtype=float)
        obj = float(pulp.value(prob.objective) or 0.0)
        bound = _bound_from_log(text)
        if status == "optimal":
            gap = relative_gap(obj, bound) if np.isfinite(bound) else 0.0
            if gap > options.relative_gap * 1.000001 + 1e-12:
                status = "feasible"
        else:
            gap = relative_gap(obj, bound)
        return SolveResult(status, x, obj, bound, gap, self.name, seconds)


def _command(**kwargs: Any) -> Any:
    """Return a CBC command: ``COIN_CMD`` when a ``cbc`` binary is on PATH, else pulp 3's bundled ``PULP_CBC_CMD``."""
    import pulp

    coin = pulp.COIN_CMD(**kwargs)
    if coin.available():
        return coin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bundled = pulp.PULP_CBC_CMD(**kwargs)
    return bundled if bundled.available() else None


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


def _bound_from_log(text: str) -> float:
    """Return the best bound CBC reports at the end of its log ("Lower bound:" / "Upper bound:"), NaN if absent."""
    hits = re.findall(r"^(?:Lower|Upper) bound:\s*" + _NUMBER, text, flags=re.MULTILINE)
    if not hits:
        return math.nan
    try:
        value = float(hits[-1])
    except ValueError:
        return math.nan
    return value if abs(value) < 1e40 else math.nan
