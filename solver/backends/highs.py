"""HiGHS backend: ``highspy`` (the HiGHS project's own Python binding), the compiled arrays passed in bulk.

The model goes to HiGHS as one row-wise CSR matrix (:class:`highspy.HighsLp`), without a Python object per
variable or row, so translating a model of 10^6 nonzeros takes milliseconds. The bound is HiGHS's
``mip_dual_bound`` (a float, full precision); ``mip_gap`` is not used because :func:`base.normalise` recomputes
the gap from the objective and the bound with the same rule on every backend. A model without integer
variables is solved as an LP, whose optimum is its bound.

``highspy`` is an optional dependency (extra ``highs``): the backend reports itself unavailable without it and
``auto`` then picks among the others.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from typing import Any

import numpy as np

from formulations.linear import CompiledModel
from solver.backends.base import Backend, RawAnswer, Status, relative_gap
from solver.specs import SolveOptions
from solver.tolerances import INFINITE_BOUND

HIGHS_SEED = 0
"""HiGHS's ``random_seed``, fixed so that the same model gives the same search on every run."""


def new_highs() -> Any:
    """Return a silent :class:`highspy.Highs`.

    HiGHS prints its banner on the C stdout when the first instance of a process is made, before any option can
    be set; that would corrupt ``infersave plan --json``. The first construction therefore runs with file
    descriptor 1 pointed at ``/dev/null`` (restored at once); later ones print nothing.
    """
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


_BANNER_SHOWN = False

_POOL_LOCK = threading.Lock()
_RUNNING = 0
"""HiGHS solves running in this process (under ``_POOL_LOCK``): the thread pool is released when it drops to 0."""


def _release_thread_pool() -> None:
    """Join and free HiGHS's global thread pool (``Highs.resetGlobalScheduler(blocking=True)``).

    HiGHS runs its solves on one global pool of threads, created by the first solve and kept for the next. A process
    forked while that pool lives (``sweep``'s workers, a user's ``multiprocessing``) inherits the pool's
    state without its threads, and its first HiGHS solve waits for them for ever at 100 % CPU (seen in
    notebooks/05-fleet-mix and in a plain script: ``plan`` with HiGHS, then ``sweep(processes=2)``;
    ``tests/test_backends.py::test_a_process_forked_after_a_highs_solve_solves_with_highs``). HiGHS documents the
    call as unsafe while another solve runs in any thread, so it is made only by the last solve to finish, under
    the lock every solve takes to start. The next solve builds a new pool, with its own ``threads`` option. A
    ``highspy`` without the call (older than the binding that exposes it) keeps its pool, as before.
    """
    import highspy

    reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
    if reset is not None:
        reset(True)


class HighsBackend(Backend):
    """HiGHS through ``highspy``: branch-and-cut on the compiled arrays (``mip_rel_gap``, ``time_limit``)."""

    def __init__(self, name: str = "highs") -> None:
        self.name = name
        self.description = "HiGHS via highspy"

    def _check_available(self) -> bool:
        import highspy

        return hasattr(highspy, "Highs")

    @functools.cached_property
    def version(self) -> str:
        """``HiGHS <major.minor.patch>``."""
        try:
            import highspy

            return f"HiGHS {highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}.{highspy.HIGHS_VERSION_PATCH}"
        except Exception:
            return ""

    def translate(self, model: CompiledModel) -> Any:
        """Return a :class:`highspy.Highs` holding ``model`` (row-wise matrix, bounds, integrality, objective)."""
        import highspy

        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = model.n_vars
        lp.num_row_ = model.n_rows
        lp.col_cost_ = np.ascontiguousarray(model.objective, dtype=np.float64)
        lp.col_lower_ = np.where(np.isfinite(model.lb), model.lb, -inf)
        lp.col_upper_ = np.where(np.isfinite(model.ub), model.ub, inf)
        lp.row_lower_ = np.where(np.isfinite(model.row_lo), model.row_lo, -inf)
        lp.row_upper_ = np.where(np.isfinite(model.row_hi), model.row_hi, inf)
        lp.offset_ = float(model.objective_offset)
        lp.sense_ = highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = model.n_vars
        lp.a_matrix_.num_row_ = model.n_rows
        lp.a_matrix_.start_ = model.indptr.astype(np.int32)
        lp.a_matrix_.index_ = model.indices.astype(np.int32)
        lp.a_matrix_.value_ = np.ascontiguousarray(model.data, dtype=np.float64)
        if model.integer.any():
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in model.integer
            ]
        h = new_highs()
        h.passModel(lp)
        return h

    # No MIP start (``set_start`` stays the base no-op): with a start given by ``setSolution``, HiGHS 1.16
    # reported ``Optimal`` with objective and dual bound 0 while returning the start (objective 1.46) on a
    # tie-break stage of the random oracle (seed 0); such an answer would be believed as optimal.

    def run(self, handle: Any, options: SolveOptions) -> Any:
        """Solve under the time limit, relative gap, threads and verbosity; return the model status."""
        handle.setOptionValue("output_flag", bool(options.verbose))
        handle.setOptionValue("time_limit", float(options.time_limit_s))
        handle.setOptionValue("mip_rel_gap", float(options.relative_gap))
        handle.setOptionValue("random_seed", HIGHS_SEED)
        if options.threads:
            handle.setOptionValue("threads", int(options.threads))
        global _RUNNING
        with _POOL_LOCK:
            _RUNNING += 1
        try:
            handle.run()
        finally:
            with _POOL_LOCK:
                _RUNNING -= 1
                if _RUNNING == 0:
                    _release_thread_pool()
        return handle.getModelStatus()

    def read(self, handle: Any, ran: Any, model: CompiledModel) -> RawAnswer:
        """Map HiGHS's model status; read values, the objective and the dual bound."""
        import highspy

        ms = highspy.HighsModelStatus
        info = handle.getInfo()
        has_x = int(info.primal_solution_status) == 2  # kSolutionStatusFeasible
        status: Status
        if ran == ms.kOptimal:
            status = "optimal"
        elif ran == ms.kModelEmpty:
            status = "optimal"
            has_x = True
        elif ran == ms.kInfeasible:
            return RawAnswer("infeasible", message=handle.modelStatusToString(ran))
        elif ran in (ms.kUnbounded, ms.kUnboundedOrInfeasible):
            return RawAnswer("unbounded", message=handle.modelStatusToString(ran))
        elif ran in (ms.kTimeLimit, ms.kIterationLimit, ms.kSolutionLimit, ms.kInterrupt, ms.kObjectiveBound):
            status = "feasible" if has_x else "no_solution"
        else:
            return RawAnswer("error", message=f"HiGHS: {handle.modelStatusToString(ran)}")
        if not has_x:
            return RawAnswer("no_solution", message=handle.modelStatusToString(ran))
        x = np.asarray(handle.getSolution().col_value, dtype=np.float64)
        if x.shape != (model.n_vars,):
            x = np.zeros(model.n_vars) if model.n_vars == 0 else x
        objective = float(info.objective_function_value)
        recomputed = float(model.objective @ x + model.objective_offset) if x.size == model.n_vars else math.nan
        if not abs(recomputed - objective) <= 1e-9 * max(1.0, abs(objective)):
            # the values do not have the objective HiGHS reports: its bound and proof are not about them
            return RawAnswer("feasible", x, recomputed, math.nan, False, "HiGHS objective disagrees with its values")
        if model.integer.any():
            bound = float(info.mip_dual_bound)
            bound = bound if math.isfinite(bound) and abs(bound) < INFINITE_BOUND else math.nan
            if status == "optimal" and math.isfinite(bound) and relative_gap(objective, bound) > float(info.mip_gap):
                # HiGHS closed the search (kOptimal) without updating its dual bound (seen when a MIP start is
                # already optimal and presolve ends the solve): the bound is unknown, the proof is HiGHS's own
                bound = math.nan
        else:
            bound = objective if status == "optimal" else math.nan  # an LP optimum is its own bound
        return RawAnswer(status, x, objective, bound, status == "optimal")
