"""Selection: integer instance counts and the binary "candidate used" indicators."""

from __future__ import annotations

import pandas as pd

from formulations.bigm import count_upper_bound
from formulations.model import FleetModel
from solver.specs import Scenario


def add_selection(fm: FleetModel, cands: pd.DataFrame, scenario: Scenario) -> None:
    """(1) ``n_c <= U_c · y_c`` for every candidate c, with ``n_c ∈ Z≥0``, ``y_c ∈ {0, 1}``.

    ``U_c`` comes from :func:`formulations.bigm.count_upper_bound` and is also the upper bound of ``n_c``.
    """
    m = len(cands)
    big_m = count_upper_bound(cands, scenario)
    fm.big_m = big_m
    fm.n = fm.lm.add_vars("n", m, 0.0, big_m, integer=True)
    fm.y = fm.lm.add_vars("y", m, 0.0, 1.0, integer=True)
    fm.lm.add_diagonal_rows("selection.link", [(fm.n.index, 1.0), (fm.y.index, -big_m)], hi=0.0)
