"""The MILP: a solver-neutral linear model built from precomputed candidates (see README.md).

:func:`build` assembles one function per constraint family (selection, per-candidate rules, demand,
limits, objective) into a :class:`~formulations.model.FleetModel`. Nothing here imports a solver.
"""

from formulations.assemble import CANDIDATE_COLUMNS, build
from formulations.bigm import count_upper_bound
from formulations.checks import CandidateRule
from formulations.linear import CompiledModel, LinearModel, RowBlock, VarFamily
from formulations.model import Context, FleetModel, Hours, Selection

__all__ = [
    "CANDIDATE_COLUMNS",
    "CandidateRule",
    "CompiledModel",
    "Context",
    "FleetModel",
    "Hours",
    "LinearModel",
    "RowBlock",
    "Selection",
    "VarFamily",
    "build",
    "count_upper_bound",
]
