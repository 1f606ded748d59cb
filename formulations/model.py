"""The fleet model: a :class:`LinearModel` plus the candidate table and the variable families on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations.linear import IntArray, LinearModel, VarFamily
from solver.specs import Scenario, Workload


@dataclass
class FleetModel:
    """The MILP under construction for one candidate table and scenario.

    Attributes
    ----------
    lm
        The neutral linear model.
    cands
        The candidate table (one row per candidate ``c``; see :data:`formulations.CANDIDATE_COLUMNS`).
    scenario
        The scenario (SLOs, demand, limits, objective).
    n, y, h
        Variable families: instance counts ``n_c``, use binaries ``y_c``, and instance-hours ``h_k`` of the
        offline candidates ``offline_idx[k]`` (``h`` is ``None`` until the demand family adds it).
    big_m
        ``U_c`` of constraint (1), from :func:`formulations.bigm.count_upper_bound`.
    """

    lm: LinearModel
    cands: pd.DataFrame
    scenario: Scenario
    n: VarFamily | None = None
    y: VarFamily | None = None
    h: VarFamily | None = None
    big_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    offline_idx: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def family(self, name: str) -> VarFamily:
        """Return the variable family ``n``, ``y`` or ``h``; raise if its constraint family was not added yet."""
        fam = getattr(self, name)
        if fam is None:
            raise RuntimeError(f"variable family {name!r} is not built yet: add its constraint family first")
        return fam

    @property
    def workloads(self) -> dict[str, Workload]:
        """The scenario's workloads by name."""
        return {w.name: w for w in self.scenario.workloads}

    def col(self, name: str) -> np.ndarray:
        """Return a candidate column as a numpy array."""
        return self.cands[name].to_numpy()

    def workload_code(self) -> tuple[IntArray, list[str]]:
        """Per candidate, the position of its workload in ``scenario.workloads``; and the names."""
        names = [w.name for w in self.scenario.workloads]
        pos = {n: i for i, n in enumerate(names)}
        code, uniques = pd.factorize(self.cands["workload"], use_na_sentinel=False)
        table = np.array([pos[w] for w in uniques], dtype=np.int64)
        return (table[code] if len(uniques) else np.zeros(0, dtype=np.int64)), names

    def is_online(self) -> np.ndarray:
        """Boolean mask of candidates that serve an online workload."""
        code, _ = self.workload_code()
        kinds = np.array([w.kind == "online" for w in self.scenario.workloads], dtype=bool)
        return kinds[code] if code.size else np.zeros(0, dtype=bool)

    def per_candidate(self, values: list[float]) -> np.ndarray:
        """Spread one value per workload (in ``scenario.workloads`` order) onto its candidates."""
        code, _ = self.workload_code()
        return np.asarray(values, dtype=float)[code] if code.size else np.zeros(0)
