"""Selection: integer instance counts and the binary "candidate used" indicators."""

from __future__ import annotations

from formulations.bigm import count_upper_bound
from formulations.model import Context, Selection


def add_selection(ctx: Context) -> Selection:
    """(1) ``n_c <= U_c · y_c`` for every candidate c, with ``n_c ∈ Z≥0``, ``y_c ∈ {0, 1}``.

    ``U_c`` comes from :func:`formulations.bigm.count_upper_bound` and is also the upper bound of ``n_c``.
    """
    m = len(ctx.cands)
    big_m = count_upper_bound(ctx.cands, ctx.scenario)
    n = ctx.lm.add_vars("n", m, 0.0, big_m, integer=True)
    y = ctx.lm.add_vars("y", m, 0.0, 1.0, integer=True)
    ctx.lm.add_diagonal_rows("selection.link", [(n.index, 1.0), (y.index, -big_m)], hi=0.0)
    return Selection(n, y, big_m)
