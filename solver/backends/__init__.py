"""Solver backends: a registry in preference order, each declaring its capabilities.

``auto`` picks the first available backend that supports the model. An unknown name raises
:class:`~solver.errors.UnknownNameError` listing the valid ones.
"""

from __future__ import annotations

from formulations.linear import CompiledModel
from solver.backends.base import STATUSES, Backend, Capabilities, SolveResult, Status
from solver.backends.cbc import CbcBackend
from solver.backends.ortools import OrToolsBackend
from solver.errors import SolverError, UnknownNameError

BACKENDS: dict[str, Backend] = {"ortools": OrToolsBackend("ortools", "scip"), "cbc": CbcBackend()}
"""Registered backends in preference order (``auto`` takes the first available)."""


def backend_names() -> list[str]:
    """Names accepted by :func:`get_backend` (``auto`` first)."""
    return ["auto", *BACKENDS]


def available_backends() -> list[str]:
    """Names of the registered backends that load here, in preference order."""
    return [name for name, b in BACKENDS.items() if b.available]


def get_backend(name: str = "auto", model: CompiledModel | None = None) -> Backend:
    """Return the backend called ``name`` (``auto``: the first available one that supports ``model``).

    Raises
    ------
    UnknownNameError
        ``name`` is not registered.
    SolverError
        The backend (or, for ``auto``, every backend) is unavailable or cannot take the model.
    """
    key = name.lower()
    if key == "auto":
        for b in BACKENDS.values():
            if b.available and (model is None or b.supports(model)):
                return b
        raise SolverError("no solver backend is available (install ortools or pulp)")
    if key not in BACKENDS:
        raise UnknownNameError("backend", "backend", name, backend_names())
    b = BACKENDS[key]
    if not b.available:
        raise SolverError(f"backend {key!r} is not available here; available: {', '.join(available_backends())}")
    if model is not None and not b.supports(model):
        raise SolverError(f"backend {key!r} cannot solve this model (continuous variables)")
    return b


__all__ = [
    "BACKENDS",
    "STATUSES",
    "Backend",
    "Capabilities",
    "CbcBackend",
    "OrToolsBackend",
    "SolveResult",
    "Status",
    "available_backends",
    "backend_names",
    "get_backend",
]
