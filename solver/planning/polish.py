"""Polishing a MILP answer: integers kept, the continuous part re-solved as an exact, canonical LP.

A MILP solver stops when its bound is within the gap of its incumbent, and leaves the continuous variables
(offline instance-hours ``h_c``, a pool's instance shares ``s_{k,p}``) wherever its last LP put them: a vertex,
or a point a tolerance away from one, and on a degenerate face any of its points. Two backends that agree on
every integer then still report different hours or routing splits (random-scenario oracle: seed 2945, hours
11.9999 against 11.9994; seed 1299, a class routed 1e-8 requests/s to a second pool).

With every integer variable fixed at its rounded value the model is an LP over the continuous variables. It is
solved twice with one deterministic LP solver (HiGHS through SciPy), whatever MILP backend found the integers:

1. the primary objective over the continuous variables (never worse than the MILP's own continuous part);
2. the tie-break's secondary objective, with the primary held within ``TIE_BREAK_REL_TOL`` of step 1.

The answer is kept only when it is feasible for the model (the planner checks it as it checks every answer);
otherwise the MILP's own continuous part stands.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse

from formulations.linear import CompiledModel
from solver.tolerances import TIE_BREAK_REL_TOL

LP_FEASIBILITY_TOL = 1e-9
"""HiGHS's primal and dual feasibility tolerance for the polishing LPs: a hundred times tighter than CBC's primal
tolerance (1e-7), so the polished point sits closer to its rows than any MILP answer does."""


def polish_continuous(compiled: CompiledModel, x: np.ndarray, secondary: np.ndarray | None) -> np.ndarray | None:
    """Return ``x`` with its continuous variables re-solved (module docstring), or ``None`` when the LP fails.

    ``x`` must have integral integer variables (rounded). ``secondary``: the tie-break's coefficients over all
    variables (``None``: step 1 only).
    """
    cont = np.flatnonzero(~compiled.integer)
    if cont.size == 0:
        return x
    fixed = np.where(compiled.integer, x, 0.0)
    # rows over the continuous variables, the fixed integers folded into the row bounds
    matrix = scipy.sparse.csr_matrix(
        (compiled.data, compiled.indices, compiled.indptr), shape=(compiled.n_rows, compiled.n_vars)
    )
    shift = matrix @ fixed
    a = matrix[:, cont].tocsr()
    used = np.diff(a.indptr) > 0
    lo, hi = compiled.row_lo - shift, compiled.row_hi - shift
    a, lo, hi = a[used], lo[used], hi[used]
    bounds = [
        (lb if np.isfinite(lb) else None, ub if np.isfinite(ub) else None)
        for lb, ub in zip(compiled.lb[cont].tolist(), compiled.ub[cont].tolist(), strict=True)
    ]
    sign = 1.0 if compiled.sense == "min" else -1.0
    primary = sign * compiled.objective[cont]
    first = _solve_lp(primary, a, lo, hi, bounds)
    if first is None:
        return None
    out = x.copy()
    out[cont] = first
    if secondary is None or not np.any(secondary[cont]):
        return out
    value = float(primary @ first)
    cap = value + TIE_BREAK_REL_TOL * max(1.0, abs(value))
    a2 = scipy.sparse.vstack([a, scipy.sparse.csr_matrix(primary.reshape(1, -1))]).tocsr()
    second = _solve_lp(secondary[cont], a2, np.append(lo, -np.inf), np.append(hi, cap), bounds)
    if second is not None:
        out[cont] = second
    return out


def _solve_lp(
    c: np.ndarray,
    a: scipy.sparse.csr_matrix,
    lo: np.ndarray,
    hi: np.ndarray,
    bounds: list[tuple[float | None, float | None]],
) -> np.ndarray | None:
    """Minimise ``c·x`` subject to ``lo <= A·x <= hi`` and ``bounds`` (HiGHS); ``None`` unless optimal."""
    upper = np.isfinite(hi)
    lower = np.isfinite(lo)
    a_ub = scipy.sparse.vstack([a[upper], -a[lower]]).tocsr()
    b_ub = np.concatenate([hi[upper], -lo[lower]])
    res = scipy.optimize.linprog(
        c,
        A_ub=a_ub if a_ub.shape[0] else None,
        b_ub=b_ub if b_ub.size else None,
        bounds=bounds,
        method="highs",
        options={"primal_feasibility_tolerance": LP_FEASIBILITY_TOL, "dual_feasibility_tolerance": LP_FEASIBILITY_TOL},
    )
    if res.status != 0 or res.x is None:
        return None
    return np.asarray(res.x, dtype=float)
