"""OR-Tools backend: the ModelBuilder API (vectorised variable creation) with SCIP, or HiGHS."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from formulations.linear import CompiledModel
from solver.backends.base import Backend, RawAnswer, Status
from solver.specs import SolveOptions
from solver.tolerances import INFINITE_BOUND


class OrToolsBackend(Backend):
    """OR-Tools ``model_builder`` with a MIP solver bundled in the wheel (``scip`` by default, or ``highs``).

    CP-SAT is not used: the model has continuous instance-hours (per-second billing).
    """

    def __init__(self, name: str = "ortools", solver: str = "scip") -> None:
        self.name = name
        self.solver = solver
        self.description = f"OR-Tools {solver.upper()} via model_builder"

    def _check_available(self) -> bool:
        from ortools.linear_solver.python import model_builder as mb

        return bool(mb.Solver(self.solver).solver_is_supported())

    @functools.cached_property
    def version(self) -> str:
        """``OR-Tools <version> <SOLVER>``."""
        try:
            import ortools

            return f"OR-Tools {getattr(ortools, '__version__', '?')} {self.solver.upper()}"
        except ImportError:
            return ""

    def translate(self, model: CompiledModel) -> Any:
        """Build a ``ModelBuilderHelper``: variables in bulk, one constraint per row, the objective."""
        from ortools.linear_solver.python import model_builder_helper as mbh

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
        return h

    def set_start(self, handle: Any, x: np.ndarray) -> None:
        """Give SCIP (or HiGHS) ``x`` as a solution hint: its first incumbent when it is feasible."""
        for j, v in enumerate(x.tolist()):
            handle.add_hint(j, float(v))

    def run(self, handle: Any, options: SolveOptions) -> Any:
        """Solve with the time limit, relative gap and threads; return the solver helper."""
        from ortools.linear_solver.python import model_builder_helper as mbh

        solver = mbh.ModelSolverHelper(self.solver)
        solver.enable_output(options.verbose)
        solver.set_time_limit_in_seconds(float(options.time_limit_s))
        params = []
        if self.solver == "scip":
            params.append(f"limits/gap = {options.relative_gap:.12g}")
            if options.threads:
                params.append(f"parallel/maxnthreads = {int(options.threads)}")
        elif self.solver == "highs":
            params.append(f"mip_rel_gap={options.relative_gap:.12g}")
            if options.threads:
                params.append(f"threads={int(options.threads)}")
        solver.set_solver_specific_parameters("\n".join(params))
        solver.solve(handle)
        return solver

    def read(self, handle: Any, ran: Any, model: CompiledModel) -> RawAnswer:
        """Map the status; read values, objective and the best bound."""
        from ortools.linear_solver.python import model_builder as mb

        raw = ran.status()
        codes: dict[Any, Status] = {
            mb.SolveStatus.OPTIMAL: "optimal",
            mb.SolveStatus.FEASIBLE: "feasible",
            mb.SolveStatus.INFEASIBLE: "infeasible",
            mb.SolveStatus.UNBOUNDED: "unbounded",
            mb.SolveStatus.NOT_SOLVED: "no_solution",
        }
        status = codes.get(raw, "error")
        if status not in ("optimal", "feasible"):
            return RawAnswer(status, message=str(raw))
        if not ran.has_solution():
            return RawAnswer("no_solution", message=str(raw))
        x = np.asarray(ran.variable_values(), dtype=np.float64)
        bound = float(ran.best_objective_bound())
        return RawAnswer(
            status,
            x,
            float(ran.objective_value()),
            bound if abs(bound) < INFINITE_BOUND else math.nan,
            status == "optimal",
        )
