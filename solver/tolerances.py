"""Every numerical tolerance of infersave, named once with why it has its value.

Plain constants and two rounding helpers, importable from anywhere (the neutral ``formulations`` package
included): no other module writes a bare tolerance.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ROUNDING_TOL = 1e-9
"""Slack when a ratio that is an integer in exact arithmetic is floored or ceiled (GPUs per TP degree, billed
hours, instances a workload needs): float division can land a hair below or above the integer, and 1e-9 is
far above double round-off on these magnitudes (< 1e6) and far below any real fractional part."""

PRESOLVE_REL_TOL = 1e-12
"""Presolve removes a candidate only when it misses a rule's limit by more than this (relative to
``max(1, |limit|)``): round-off of the performance model, never a real violation, is forgiven."""

OFFLOAD_GRID_TOL = 1e-12
"""An extra offload fraction of ``search.offload_grid`` is enumerated only when it exceeds the smallest
fraction that fits by more than this (equal fractions would duplicate a candidate)."""

MEMORY_FIT_GIB = 1e-9
"""Slack on "fits in GPU memory" and "fits in host memory", GiB, so that the smallest offload fraction
computed in closed form still fits after round-off (1e-9 GiB is about one byte)."""

EVALUATE_REL_TOL = 1e-6
"""The exact evaluator's tolerance on every check (relative to ``max(1, |limit|)``). Solvers keep rows to
about 1e-6 absolute (SCIP's ``numerics/feastol``; CBC's primal tolerance 1e-7), so a plan may sit this close
to a limit and still be what the solver proved."""

WHOLE_HOURS_TOL = 1e-6
"""Per-hour billing: an instance-hour value this close to an integer counts as whole (solver integrality
tolerance is 1e-6 on SCIP and CBC)."""

FEASIBILITY_TOL = 1e-7
"""Relative tolerance when the planner checks a row on plans it assembled itself (per-workload solves,
trimmed offline counts): CBC's default primal tolerance, so assembled plans are held to what a whole-model
solve keeps (SCIP's ``numerics/feastol`` is 1e-6)."""

BOUND_ROUNDING_TOL = 1e-9
"""When a one-term row becomes a bound on an integer variable, the bound is rounded inwards after this slack
(``ceil(lo - tol)``, ``floor(hi + tol)``), so a bound of 2.9999999999 is 3, not 2."""

TIE_BREAK_REL_TOL = 1e-9
"""How far (relative) the lexicographic tie-break stage may move the primary objective."""

TIE_BREAK_GAP = 1e-8
"""Relative gap a tie-break stage (and the one-row method's masters) is solved to. SCIP stops such stages at its
own relative epsilon and reports gaps up to 3.1e-9 (random-scenario oracle, seed 1517); at a gap of 0 the planner
took those proven answers for unproven ones and said the stage had stopped at its budget. Plans whose secondary
objectives differ by less than this stay solver-dependent (formulations/README.md, "Tie-break")."""
GAP_SLACK = 1e-9
"""Absolute slack on the gap rule (a measured gap within the requested one), for the rounding of the gap's own
arithmetic."""

GAP_DENOMINATOR_FLOOR = 1e-9
"""The relative gap is ``|objective − bound| / max(|objective|, this)``: an objective of 0 gives a finite gap."""

INFINITE_BOUND = 1e40
"""Magnitudes at or above this are infinite when a backend reports a bound (CBC and SCIP write 1e40 or more for
none)."""

SOLUTION_TOL = 1e-6
"""Relative tolerance at which a backend's solution is checked against the model (``formulations/README.md``,
"Tolerances"): SCIP's ``numerics/feastol`` (1e-6); CBC's primal tolerance (1e-7) is tighter."""

CBC_OBJECTIVE_INCREMENT = 1e-10
"""CBC's ``increment``: a node is cut off unless it can beat the incumbent by this much (absolute, in the
objective's unit, dollars). CBC 2.10.3's default; the cbcbox build defaults to 1e-4, which on a plan costing
$0.007 is a 1 % gap proven as 0 (random-scenario oracle, seed 2704: $0.0069531 "optimal" where $0.0068854 is
feasible). Passed explicitly to every CBC build."""

DEMAND_NOISE = 1e-12
"""Demand rows must hold exactly, up to this relative round-off: no plan may serve less than asked."""

ACTIVITY_NOISE = 1e-12
"""A repair step of the planner may not make any row worse by more than this (relative round-off)."""

EMPTY_ROW_TOL = 1e-9
"""A row without a nonzero holds when ``lo <= tol`` and ``hi >= -tol``; crossed bounds beyond it are infeasible."""

RELAX_NUDGE_REL = 1e-9
"""The diagnosis prices a suggested SLO value nudged this much past the frontier, so that the candidate at the
frontier is not lost to round-off when the relaxed scenario is re-solved."""

PRICE_CAP_TOL_USD = 1e-12
"""InferSave's price filter in ``recommend``: an instance at the cap to round-off passes."""

LSTSQ_TIE_TOL = 1e-15
"""CTCF's active-set least squares keeps its best solution unless another is lower in loss by more than this,
so that ties keep the earlier candidate and the fit is deterministic."""

ALPHA_FLOOR = 1e-6
"""Least CTCF slope of the fallback scale-only fit: ``alpha > 0`` keeps a calibrated time increasing in the
modelled time."""

RANK_TOL = 1e-9
"""Singular-value threshold (times the larger dimension) of the CTCF design's numerical rank, on columns scaled
to unit norm: ``calibrate`` refuses a fit whose rows do not determine its parameters."""


def floor_int(x: npt.ArrayLike) -> np.ndarray:
    """Floor a ratio that may be an integer up to round-off (:data:`ROUNDING_TOL`)."""
    return np.floor(np.asarray(x, dtype=float) + ROUNDING_TOL)


def ceil_int(x: npt.ArrayLike) -> np.ndarray:
    """Ceil a ratio that may be an integer up to round-off (:data:`ROUNDING_TOL`)."""
    return np.ceil(np.asarray(x, dtype=float) - ROUNDING_TOL)
