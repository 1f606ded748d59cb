"""The fleet model: what the constraint families read (:class:`Context`) and what they built (:class:`FleetModel`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from formulations.linear import IntArray, LinearModel, VarFamily
from solver.specs import Scenario, Workload


@dataclass(frozen=True)
class Context:
    """What every constraint family reads: the linear model being written, the candidates and the scenario.

    Attributes
    ----------
    lm
        The neutral linear model (families add variables and rows to it).
    cands
        The candidate table (one row per candidate ``c``; see :data:`formulations.CANDIDATE_COLUMNS`).
    scenario
        The scenario (SLOs, demand, limits, objective).
    """

    lm: LinearModel
    cands: pd.DataFrame
    scenario: Scenario

    @cached_property
    def workloads(self) -> dict[str, Workload]:
        """The scenario's workloads by name."""
        return {w.name: w for w in self.scenario.workloads}

    def col(self, name: str) -> np.ndarray:
        """Return a candidate column as a numpy array."""
        return self.cands[name].to_numpy()

    @cached_property
    def _codes(self) -> IntArray:
        """Per candidate, the position of its workload in ``scenario.workloads``."""
        pos = {w.name: i for i, w in enumerate(self.scenario.workloads)}
        code, uniques = pd.factorize(self.cands["workload"], use_na_sentinel=False)
        table = np.array([pos[w] for w in uniques], dtype=np.int64)
        return table[code] if len(uniques) else np.zeros(0, dtype=np.int64)

    def workload_code(self) -> tuple[IntArray, list[str]]:
        """Per candidate, the position of its workload in ``scenario.workloads``; and the names."""
        return self._codes, [w.name for w in self.scenario.workloads]

    def is_online(self) -> np.ndarray:
        """Boolean mask of candidates that serve an online workload."""
        kinds = np.array([w.kind == "online" for w in self.scenario.workloads], dtype=bool)
        return kinds[self._codes] if self._codes.size else np.zeros(0, dtype=bool)

    def per_candidate(self, values: list[float]) -> np.ndarray:
        """Spread one value per workload (in ``scenario.workloads`` order) onto its candidates."""
        return np.asarray(values, dtype=float)[self._codes] if self._codes.size else np.zeros(0)


@dataclass(frozen=True)
class Selection:
    """The selection family: instance counts ``n_c``, use binaries ``y_c`` and the bound ``U_c`` linking them."""

    n: VarFamily
    y: VarFamily
    big_m: np.ndarray


@dataclass(frozen=True)
class Hours:
    """The offline family: instance-hours ``h_k`` of the offline candidates ``offline_idx[k]``."""

    h: VarFamily
    offline_idx: IntArray


@dataclass(frozen=True)
class FleetModel(Context):
    """The built MILP: the context plus its variable families.

    Attributes
    ----------
    n, y, h
        Instance counts ``n_c``, use binaries ``y_c``, and instance-hours ``h_k`` of the offline candidates
        ``offline_idx[k]``.
    big_m
        ``U_c`` of constraint (1), from :func:`formulations.bigm.count_upper_bound`.
    owners
        Other variable families (by name) and, per variable, the position of the workload it belongs to
        (``z`` of :mod:`formulations.spot`), for the split by workload.
    """

    n: VarFamily
    y: VarFamily
    h: VarFamily
    big_m: np.ndarray
    offline_idx: IntArray
    pool_n: VarFamily | None = None
    """Counts ``N_p`` of the shared pools (``formulations.sharing``; ``None``: no pool)."""
    pool_of: IntArray | None = None
    """Per candidate, its pool (``-1``: an ordinary candidate with its own count)."""
    owners: Mapping[str, IntArray] = field(default_factory=dict)

    def family(self, name: str) -> VarFamily:
        """Return the variable family ``n``, ``y``, ``h`` or ``N`` (pools; an empty family when there is none)."""
        if name == "N":
            return self.pool_n if self.pool_n is not None else VarFamily("N", self.lm.n_vars, 0, True)
        fam: VarFamily = getattr(self, name)
        return fam
