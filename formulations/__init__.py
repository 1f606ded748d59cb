"""The MILP: a solver-neutral linear model built from precomputed candidates (see README.md).

:func:`build` assembles one function per constraint family (selection, memory, latency, demand, limits,
objective) into a :class:`~formulations.model.FleetModel`. Nothing here imports a solver.
"""

from formulations.assemble import CANDIDATE_COLUMNS, build
from formulations.bigm import count_upper_bound
from formulations.linear import CompiledModel, LinearModel, RowBlock, VarFamily
from formulations.model import FleetModel

__all__ = [
    "CANDIDATE_COLUMNS",
    "CompiledModel",
    "FleetModel",
    "LinearModel",
    "RowBlock",
    "VarFamily",
    "build",
    "count_upper_bound",
]
