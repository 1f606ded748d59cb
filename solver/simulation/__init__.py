"""Discrete-event simulation of serving: a plan's fleet under random arrivals, SLO attainment at percentiles.

Modules, one job each: :mod:`~solver.simulation.arrivals` (Poisson, gamma, closed loop, trace CSV),
:mod:`~solver.simulation.replica` (a replica's step times, from the performance model's own functions),
:mod:`~solver.simulation.routing` (round robin, join-shortest-queue), :mod:`~solver.simulation.loop`
(the event loop), :mod:`~solver.simulation.results` (statistics, attainment, time series),
:mod:`~solver.simulation.sizing` (a plan's rows as replicas; the bounds of a run),
:mod:`~solver.simulation.fleet` (a plan's fleet; :func:`simulate`), :mod:`~solver.simulation.mixed` (classes
sharing pooled rows, simulated together), :mod:`~solver.simulation.verify` (verification and re-solve) and
:mod:`~solver.simulation.capacity` (capacity curves: the rate at a percentile SLO, a queueing approximation).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "simulate": "solver.simulation.fleet",
    "verify_plan": "solver.simulation.verify",
    "SimulationResult": "solver.simulation.results",
    "WorkloadResult": "solver.simulation.results",
    "replica_config": "solver.simulation.replica",
    "ReplicaConfig": "solver.simulation.replica",
    "Arrivals": "solver.simulation.arrivals",
    "ClosedLoop": "solver.simulation.arrivals",
    "read_trace": "solver.simulation.arrivals",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solver.simulation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY)
