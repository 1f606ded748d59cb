"""What every backend shares: capabilities, the one status vocabulary and the solve result."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from formulations.linear import CompiledModel
from solver.specs import SolveOptions

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution", "error"]
"""optimal: proven within the gap; feasible: a plan, stopped at a limit; no_solution: stopped, no plan."""

STATUSES: tuple[str, ...] = ("optimal", "feasible", "infeasible", "unbounded", "no_solution", "error")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can solve: continuous variables, integer variables."""

    continuous: bool = True
    integer: bool = True


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
        Relative gap ``|objective − bound| / max(|objective|, 1e-9)`` (0 when optimal, NaN when unknown).
    """

    status: Status
    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    backend: str
    solve_seconds: float
    message: str = ""


def relative_gap(objective: float, bound: float) -> float:
    """``|objective − bound| / max(|objective|, 1e-9)``; NaN when either is not finite."""
    if not (np.isfinite(objective) and np.isfinite(bound)):
        return float("nan")
    return abs(objective - bound) / max(abs(objective), 1e-9)


def trivially_infeasible(model: CompiledModel) -> str | None:
    """Return a reason when bounds cross or an empty row cannot hold; ``None`` otherwise."""
    bad = np.flatnonzero(model.lb > model.ub + 1e-9)
    if bad.size:
        return f"variable {int(bad[0])} has lower bound {model.lb[bad[0]]:g} above upper bound {model.ub[bad[0]]:g}"
    empty = np.flatnonzero(np.diff(model.indptr) == 0)
    for r in empty:
        if model.row_lo[r] > 1e-9 or model.row_hi[r] < -1e-9:
            return f"row {model.row_block[r]} has no candidate but needs {model.row_lo[r]:g}"
    return None


class Backend(ABC):
    """A solver backend: translates a :class:`CompiledModel`, solves it, reads values back."""

    name: str = ""
    capabilities: Capabilities = Capabilities()
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

    @abstractmethod
    def solve(self, model: CompiledModel, options: SolveOptions) -> SolveResult:
        """Solve ``model`` under ``options`` (time limit, relative gap, threads, verbosity)."""

    def supports(self, model: CompiledModel) -> bool:
        """Whether the capabilities cover the model's variable kinds."""
        has_cont = bool((~model.integer).any())
        has_int = bool(model.integer.any())
        return (self.capabilities.continuous or not has_cont) and (self.capabilities.integer or not has_int)
