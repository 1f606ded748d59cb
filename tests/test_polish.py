"""The LP polish of a MILP answer (solver/planning/polish.py): integers kept, continuous part canonical."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.linear import CompiledModel
from solver.planning.polish import polish_continuous


def _model() -> CompiledModel:
    """Variables n (integer count), h1, h2 (hours); min h1 + h2; h1 + h2 >= 10; h1 <= 8 n; h2 <= 8.

    Every split of 10 hours with h1 <= 8 costs the same: a degenerate face, where a MILP may stop anywhere.
    """
    return CompiledModel(
        "min",
        np.array([0.0, 0.0, 0.0]),
        np.array([3.0, np.inf, 8.0]),
        np.array([True, False, False]),
        np.array([0.0, 1.0, 1.0]),
        0.0,
        np.array([0, 2, 4]),
        np.array([1, 2, 1, 0]),
        np.array([1.0, 1.0, 1.0, -8.0]),
        np.array([10.0, -np.inf]),
        np.array([np.inf, 0.0]),
        ["demand", "hours"],
    )


@pytest.mark.parametrize("start", [(2.0, 8.0), (5.0, 5.0), (8.0, 2.0), (7.99999, 2.00003)])
def test_polish_gives_one_point_whatever_the_start(start):
    model = _model()
    ranks = np.array([0.0, 1.0, 2.0])  # h1 preferred
    out = polish_continuous(model, np.array([1.0, *start]), ranks)
    assert out is not None
    assert out[0] == 1.0  # the integer is kept
    np.testing.assert_allclose(out[1:], [8.0, 2.0], atol=1e-9)
    assert not model.violations(out, 1e-9)


def test_polish_never_costs_more_and_keeps_integers():
    model = _model()
    out = polish_continuous(model, np.array([2.0, 3.0, 8.0]), None)  # 11 h where 10 h serve
    assert out is not None
    assert out[0] == 2.0
    assert model.objective @ out == pytest.approx(10.0, abs=1e-9)


def test_polish_reports_an_infeasible_integer_part():
    model = _model()
    assert polish_continuous(model, np.array([0.0, 0.0, 8.0]), None) is None  # n = 0: h1 = 0, 8 h < 10 h
