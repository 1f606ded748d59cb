"""What every backend shares: the one status vocabulary, the solve result, and the rules applied to every answer.

A backend does three things (:meth:`Backend.translate`, :meth:`Backend.run`, :meth:`Backend.read`) and returns
a :class:`RawAnswer`; :meth:`Backend.solve` then applies the shared rules once, here:

* the status and gap are normalised by :func:`normalise` (``optimal`` means proven within the requested gap,
  on every backend; the gap comes from a bound the solver reported, else it is unknown, never 0 by default);
* the primal solution is checked against the model's bounds, integrality and rows
  (:meth:`formulations.linear.CompiledModel.violations` at :data:`formulations.linear.SOLUTION_TOL`): an answer
  that breaks any of them is returned as ``error`` with what broke, never as ``optimal`` or ``feasible``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from formulations.linear import CompiledModel
from solver.specs import SolveOptions
from solver.tolerances import EMPTY_ROW_TOL, GAP_DENOMINATOR_FLOOR, GAP_SLACK, SOLUTION_TOL

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution", "error"]
"""optimal: proven within the gap; feasible: a plan, stopped at a limit; no_solution: stopped, no plan."""

STATUSES: tuple[str, ...] = get_args(Status)
"""Every status, in :data:`Status` order."""


@dataclass(frozen=True)
class SolveResult:
    """A backend's answer, as values (never written onto the model).

    Attributes
    ----------
    status
        One of :data:`STATUSES`.
    x
        Variable values (``None`` without a solution).
    objective, bound
        Objective of ``x`` (with the model's offset) and the best proven bound (NaN when unknown).
    gap
        Relative gap ``|objective − bound| / max(|objective|, 1e-9)`` (NaN when unknown).
    backend, solver_version
        The backend's name and the solver build that ran (e.g. ``CBC 2.10.3``).
    solve_seconds
        Wall time of the call.
    message
        Why there is no plan, or what the solution broke.
    """

    status: Status
    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    backend: str
    solve_seconds: float
    message: str = ""
    solver_version: str = ""


@dataclass(frozen=True)
class RawAnswer:
    """What a backend read off its solver, before the shared rules.

    ``proven`` is the solver's own claim that ``x`` is optimal within the requested gap (its own full-precision
    test); ``status`` is the solver's status in :data:`Status` words.
    """

    status: Status
    x: np.ndarray | None = None
    objective: float = math.nan
    bound: float = math.nan
    proven: bool = False
    message: str = ""


def relative_gap(objective: float, bound: float) -> float:
    """``|objective − bound| / max(|objective|, 1e-9)``; NaN when either is not finite."""
    if not (np.isfinite(objective) and np.isfinite(bound)):
        return float("nan")
    return abs(objective - bound) / max(abs(objective), GAP_DENOMINATOR_FLOOR)


def within_gap(gap: float, requested: float) -> bool:
    """Whether a measured ``gap`` is within the ``requested`` relative gap (NaN: no)."""
    return bool(gap <= requested + GAP_SLACK)


def normalise(raw: RawAnswer, requested_gap: float) -> tuple[Status, float]:
    """Return the (status, gap) of an answer with a solution, by the one rule of every backend.

    * The gap is :func:`relative_gap` of the objective and the reported bound: unknown (NaN) without a bound.
    * ``optimal`` when the measured gap is within the requested one, or when the solver proved optimality
      itself (its test ran on its full-precision bound) and no measured gap contradicts it beyond the
      requested gap; ``feasible`` otherwise.
    """
    gap = relative_gap(raw.objective, raw.bound)
    if within_gap(gap, requested_gap):
        return "optimal", gap
    if raw.proven and not math.isfinite(gap):
        return "optimal", gap
    return "feasible", gap


def trivially_infeasible(model: CompiledModel) -> str | None:
    """Return a reason when bounds cross or an empty row cannot hold; ``None`` otherwise."""
    bad = np.flatnonzero(model.lb > model.ub + EMPTY_ROW_TOL)
    if bad.size:
        return f"variable {int(bad[0])} has lower bound {model.lb[bad[0]]:g} above upper bound {model.ub[bad[0]]:g}"
    empty = np.flatnonzero(np.diff(model.indptr) == 0)
    for r in empty:
        if model.row_lo[r] > EMPTY_ROW_TOL or model.row_hi[r] < -EMPTY_ROW_TOL:
            return f"row {model.row_block[r]} has no candidate but needs {model.row_lo[r]:g}"
    return None


class Backend(ABC):
    """A solver backend: translates a :class:`CompiledModel`, runs its solver, reads the answer back."""

    name: str = ""
    description: str = ""

    @functools.cached_property
    def available(self) -> bool:
        """Whether the solver can be used here (checked once, cached)."""
        try:
            return self._check_available()
        except Exception:
            return False

    @abstractmethod
    def _check_available(self) -> bool:
        """Cheap check that the solver loads."""

    @property
    def version(self) -> str:
        """The solver build that runs (name and version), recorded in every plan."""
        return ""

    # A backend implements the three steps below; one that overrides :meth:`solve` itself (test stubs) need not,
    # and then answers unchecked.
    def translate(self, model: CompiledModel) -> Any:
        """Build the solver's own model object from ``model``."""
        raise NotImplementedError

    def run(self, handle: Any, options: SolveOptions) -> Any:
        """Run the solver on a translated model under ``options``; return what :meth:`read` needs."""
        raise NotImplementedError

    def read(self, handle: Any, ran: Any, model: CompiledModel) -> RawAnswer:
        """Read the status, values, objective and bound off a finished run."""
        raise NotImplementedError

    def set_start(self, handle: Any, x: np.ndarray) -> None:
        """Give the solver a feasible point as its first incumbent (a MIP start); by default ignored."""
        return

    def solve(self, model: CompiledModel, options: SolveOptions, start: np.ndarray | None = None) -> SolveResult:
        """Translate, run and read; then normalise the status and gap and check the solution.

        Parameters
        ----------
        model
            The compiled model.
        options
            Time limit, relative gap, threads, verbosity.
        start
            A point of ``model`` (e.g. the stage-one plan in its tie-break stage), given to the solver as a MIP
            start by backends that take one (:meth:`set_start`); it changes no answer's checks.

        Returns
        -------
        SolveResult
            ``optimal``/``feasible`` only with a solution that keeps every bound, integrality and row of
            ``model`` at :data:`~formulations.linear.SOLUTION_TOL`; ``error`` naming what broke otherwise.
        """
        began = time.perf_counter()
        reason = trivially_infeasible(model)
        if reason is not None:
            return self._result("infeasible", None, math.nan, math.nan, math.nan, 0.0, reason)
        handle = self.translate(model)
        if start is not None and start.shape == (model.n_vars,) and not model.violations(start, SOLUTION_TOL):
            self.set_start(handle, np.clip(start, model.lb, model.ub))
        raw = self.read(handle, self.run(handle, options), model)
        return self.believe(raw, model, options, time.perf_counter() - began)

    def believe(self, raw: RawAnswer, model: CompiledModel, options: SolveOptions, seconds: float) -> SolveResult:
        """Apply the shared rules to a raw answer: normalise status and gap, check the solution."""
        if raw.status not in ("optimal", "feasible") or raw.x is None:
            status: Status = raw.status if raw.status not in ("optimal", "feasible") else "no_solution"
            return self._result(status, None, math.nan, math.nan, math.nan, seconds, raw.message)
        broken = model.violations(raw.x, SOLUTION_TOL)
        if broken:
            message = f"{self.name} returned a solution that breaks the model: {'; '.join(broken[:3])}"
            return self._result("error", None, raw.objective, raw.bound, math.nan, seconds, message)
        objective = float(model.objective @ raw.x + model.objective_offset)
        status, gap = normalise(dataclasses.replace(raw, objective=objective), options.relative_gap)
        return self._result(status, raw.x, objective, raw.bound, gap, seconds, raw.message)

    def _result(
        self, status: Status, x: np.ndarray | None, obj: float, bound: float, gap: float, seconds: float, msg: str
    ) -> SolveResult:
        """Return a SolveResult stamped with this backend's name and version."""
        return SolveResult(status, x, obj, bound, gap, self.name, seconds, msg, self.version)
