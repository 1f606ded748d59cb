"""OR-Tools backend: the ModelBuilder API (vectorised variable creation) with SCIP, or HiGHS."""

from __future__ import annotations

import math
import time

import numpy as np

from formulations.linear import CompiledModel
from solver.backends.base import Backend, Capabilities, SolveResult, Status, relative_gap, trivially_infeasible
from solver.specs import SolveOptions


class OrToolsBackend(Backend):
    """OR-Tools ``model_builder`` with a MIP solver bundled in the wheel (``scip`` by default, or ``highs``).

    CP-SAT is not used: the model has continuous instance-hours (per-second billing).
    """

    capabilities = Capabilities(continuous=True, integer=True)

    def __init__(self, name: str = "ortools", solver: str = "scip") -> None:
        self.name = name
        self.solver = solver
        self.description = f"OR-Tools {solver.upper()} via model_builder"

    def _check_available(self) -> bool:
        from ortools.linear_solver.python import model_builder as mb

        return bool(mb.Solver(self.solver).solver_is_supported())

    def solve(self, model: CompiledModel, options: SolveOptions) -> SolveResult:
        """Translate, solve with a time limit and relative gap, and read the values back."""
        from ortools.linear_solver.python import model_builder as mb
        from ortools.linear_solver.python import model_builder_helper as mbh

        start = time.perf_counter()
        reason = trivially_infeasible(model)
        if reason is not None:
            return SolveResult("infeasible", None, math.nan, math.nan, math.nan, self.name, 0.0, reason)
        h = mbh.ModelBuilderHelper()
        lb = np.where(np.isfinite(model.lb), model.lb, -math.inf)
        ub = np.where(np.isfinite(model.ub), model.ub, math.inf)
        idx = h.add_var_array_with_bounds(lb, ub, model.integer, "x")  # type: ignore[arg-type]
        variables = [mbh.Variable(h, int(i)) for i in idx]
        terms = [variables[j] for j in model.indices.tolist()]  # one per nonzero, in CSR order
        coefs = model.data.tolist()
        ptr = model.indptr.tolist()
        for r, (lo, hi) in enumerate(zip(model.row_lo.tolist(), model.row_hi.tolist(), strict=True)):
            c = h.add_linear_constraint()
            h.set_constraint_lower_bound(c, lo)
            h.set_constraint_upper_bound(c, hi)
            a, b = ptr[r], ptr[r + 1]
            h.add_terms_to_constraint(c, terms[a:b], coefs[a:b])
        nz = np.flatnonzero(model.objective)
        h.set_objective_coefficients(nz.tolist(), model.objective[nz].tolist())
        h.set_objective_offset(float(model.objective_offset))
        h.set_maximize(model.sense == "max")
        solver = mbh.ModelSolverHelper(self.solver)
        solver.enable_output(options.verbose)
        solver.set_time_limit_in_seconds(float(options.time_limit_s))
        params = []
        if self.solver == "scip":
            params.append(f"limits/gap = {options.relative_gap:.12g}")
            if options.threads:
                params.append(f"parallel/maxnthreads = {int(options.threads)}")
            solver.set_solver_specific_parameters("\n".join(params))
        elif self.solver == "highs":
            params.append(f"mip_rel_gap={options.relative_gap:.12g}")
            if options.threads:
                params.append(f"threads={int(options.threads)}")
            solver.set_solver_specific_parameters("\n".join(params))
        solver.solve(h)
        raw = solver.status()
        seconds = time.perf_counter() - start
        status: Status
        if raw == mb.SolveStatus.OPTIMAL:
            status = "optimal"
        elif raw == mb.SolveStatus.FEASIBLE:
            status = "feasible"
        elif raw == mb.SolveStatus.INFEASIBLE:
            status = "infeasible"
        elif raw == mb.SolveStatus.UNBOUNDED:
            status = "unbounded"
        elif raw == mb.SolveStatus.NOT_SOLVED:
            status = "no_solution"
        else:
            status = "error"
        if status not in ("optimal", "feasible"):
            return SolveResult(status, None, math.nan, math.nan, math.nan, self.name, seconds, str(raw))
        if not solver.has_solution():
            return SolveResult("no_solution", None, math.nan, math.nan, math.nan, self.name, seconds, str(raw))
        x = np.asarray(solver.variable_values(), dtype=np.float64)
        obj = float(solver.objective_value())
        bound = float(solver.best_objective_bound())
        gap = 0.0 if status == "optimal" and not np.isfinite(bound) else relative_gap(obj, bound)
        if status == "optimal" and np.isfinite(gap) and gap > options.relative_gap * 1.000001 + 1e-12:
            status = "feasible"
        return SolveResult(status, x, obj, bound, gap, self.name, seconds)
