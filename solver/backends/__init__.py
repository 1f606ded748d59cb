"""Solver backends: a registry in preference order.

Every registered backend takes every model the formulations build (integer and continuous variables).
``auto`` picks the first available one in :data:`AUTO_ORDER`, the order measured fastest on the planner
benchmark (docs/benchmarks.md, planner section); ``highs`` needs the optional ``highspy`` (extra ``highs``),
and without it ``auto`` falls back to the next. An unknown name raises
:class:`~solver.errors.UnknownNameError` listing the valid ones.
"""

from __future__ import annotations

from formulations.linear import CompiledModel
from solver.backends.base import STATUSES, Backend, SolveResult, Status
from solver.backends.cbc import CbcBackend, cbc_builds
from solver.backends.highs import HighsBackend
from solver.backends.ortools import OrToolsBackend
from solver.errors import SolverError, UnknownNameError

BACKENDS: dict[str, Backend] = {
    "ortools": OrToolsBackend("ortools", "scip"),
    "cbc": CbcBackend(),
    "highs": HighsBackend(),
}
"""Registered backends: the product's two named ones (OR-Tools, CBC), then HiGHS."""

AUTO_ORDER: tuple[str, ...] = ("ortools", "highs", "cbc")
"""What ``auto`` tries. HiGHS had the least total ``t_plan`` over the scale cases of ``benchmarks/bench_planner.py
--scale`` (docs/benchmarks.md), but OR-Tools stays first: it is the product's named solver on every install (HiGHS is
an optional extra) and is faster at the 100-class tie-break (docs/benchmarks.md). (A ``sweep`` forked after a HiGHS
solve once spun without end; that is fixed in :mod:`solver.backends.highs`, which releases HiGHS's thread pool.)
CBC comes last: OR-Tools was faster than CBC on every online case."""


def backend_names() -> list[str]:
    """Names accepted by :func:`get_backend` (``auto`` first)."""
    return ["auto", *BACKENDS]


def available_backends() -> list[str]:
    """Names of the registered backends that load here, in preference order."""
    return [name for name, b in BACKENDS.items() if b.available]


def get_backend(name: str = "auto", model: CompiledModel | None = None) -> Backend:
    """Return the backend called ``name`` (``auto``: the first available in :data:`AUTO_ORDER`; ``model`` unused).

    Raises
    ------
    UnknownNameError
        ``name`` is not registered.
    SolverError
        The backend (or, for ``auto``, every backend) is unavailable or cannot take the model.
    """
    key = name.lower()
    if key == "auto":
        for auto in AUTO_ORDER:
            if BACKENDS[auto].available:
                return BACKENDS[auto]
        raise SolverError("no solver backend is available (install highspy, ortools or pulp)")
    if key not in BACKENDS:
        raise UnknownNameError("backend", "backend", name, backend_names())
    b = BACKENDS[key]
    if not b.available:
        raise SolverError(f"backend {key!r} is not available here; available: {', '.join(available_backends())}")
    return b


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "STATUSES",
    "Backend",
    "CbcBackend",
    "HighsBackend",
    "OrToolsBackend",
    "SolveResult",
    "Status",
    "available_backends",
    "backend_names",
    "cbc_builds",
    "get_backend",
]
