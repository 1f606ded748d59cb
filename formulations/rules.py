"""Per-candidate rules as rows: memory, the SLOs, the offline batch deadline and the price cap."""

from __future__ import annotations

import numpy as np

from formulations import checks
from formulations.linear import VarFamily
from formulations.model import Context


def add_candidate_rules(ctx: Context, y: VarFamily) -> None:
    """(2)-(7a), (12): for every rule of :data:`formulations.checks.CANDIDATE_RULES`, one row per candidate.

    ``value_c · y_c <= limit_c`` for a ``<=`` rule and ``(limit_c − value_c) · y_c <= 0`` for a ``>=`` rule,
    on the candidates the rule applies to (a finite limit); the row block is named after the rule and added only
    when the rule applies to some candidate. A row that
    breaks fixes ``y_c = 0``; the backends receive these one-term rows as bounds
    (:meth:`formulations.linear.LinearModel.compile`).
    """
    for r in checks.rules():
        limit = r.limits(ctx.cands, ctx.scenario)
        has = np.isfinite(limit)
        if not has.any():
            continue
        value = r.values(ctx.cands)[has]
        if r.sense == "<=":
            ctx.lm.add_diagonal_rows(r.name, [(y.index[has], value)], hi=limit[has])
        else:
            ctx.lm.add_diagonal_rows(r.name, [(y.index[has], limit[has] - value)], hi=0.0)
