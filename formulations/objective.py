"""Objectives: minimum cost, or maximum served output tokens per second under the budget."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from formulations.billing import billed_horizon_h, capacity_per_instance
from formulations.linear import CompiledModel
from formulations.model import Context, Hours, Selection
from solver.tolerances import TIE_BREAK_REL_TOL


def objective_coefficients(
    ctx: Context, sel: Selection, hours: Hours, counted: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (column indices, coefficients) of the primary objective (O1 or O2).

    ``counted``: the instance-count variables and their candidates (a shared pool is costed on its count
    ``N_p``; :func:`formulations.sharing.instance_columns`); default ``n_c`` of every candidate.
    """
    cands, scenario = ctx.cands, ctx.scenario
    n = sel.n.index
    online = ctx.is_online()
    price = ctx.col("usd_per_hour").astype(float)
    if scenario.objective == "min_cost":
        horizon = billed_horizon_h(scenario)
        cand, var = counted if counted is not None else (np.arange(n.size), n)
        on = online[cand]
        cols = np.concatenate([var[on], hours.h.index])
        coefs = np.concatenate([price[cand[on]] * horizon, price[hours.offline_idx]])
        return cols, coefs
    out_tokens = ctx.per_candidate([float(w.output_tokens) for w in scenario.workloads])
    cap = capacity_per_instance(cands, scenario)
    return n[online], (cap * out_tokens)[online]


def add_objective(
    ctx: Context, sel: Selection, hours: Hours, counted: tuple[np.ndarray, np.ndarray] | None = None
) -> None:
    """(O1) minimum total cost or (O2) maximum output tokens/s.

    (O1) ``min  sum_{c online} p_c · T_b · n_c + sum_{c offline} p_c · h_c`` (``T_b`` = billed horizon: the
    effective horizon ``T`` in hours, ``ceil(T)`` when billed per started hour);
    (O2) ``max  sum_{c online} u · r_c · rho_c · o_w · n_c`` (output tokens/s at the utilisation cap).
    """
    cols, coefs = objective_coefficients(ctx, sel, hours, counted)
    ctx.lm.set_sense("min" if ctx.scenario.objective == "min_cost" else "max")
    ctx.lm.add_objective(cols, coefs)


def lexicographic_stage(
    compiled: CompiledModel,
    primary_value: float,
    secondary: np.ndarray,
    rel_tol: float = TIE_BREAK_REL_TOL,
    parts: Sequence[tuple[np.ndarray, float]] = (),
) -> CompiledModel:
    """Return the tie-break stage: primary objective held near ``primary_value``, ``secondary`` minimised.

    ``secondary`` is a dense coefficient array over all variables.

    The new row is ``c·x <= v + tol`` (minimisation) or ``c·x >= v − tol`` (maximisation) with
    ``tol = rel_tol · max(1, |v|)``: every plan of the stage is within ``rel_tol`` of the stage-one value.
    ``parts`` (minimisation only): ``(columns, cap)`` pairs, each adding ``sum_{j in columns} c_j·x_j <= cap``,
    the primary objective of a part of the model held at that part's stage-one value (caps that add up to the
    whole cap restrict the stage to plans that split the cost as stage one did).
    """
    if parts and compiled.sense != "min":
        raise ValueError("per-part caps hold a minimised objective")
    tol = rel_tol * max(1.0, abs(primary_value))
    lo, hi = (-np.inf, primary_value + tol) if compiled.sense == "min" else (primary_value - tol, np.inf)
    rows = [np.flatnonzero(compiled.objective)]
    his = [hi]
    for cols, cap in parts:
        cols = np.asarray(cols, dtype=np.int64)
        rows.append(cols[compiled.objective[cols] != 0])
        his.append(float(cap))
    los = [lo] + [-np.inf] * len(parts)
    sizes = np.array([r.size for r in rows], dtype=np.int64)
    indices = np.concatenate(rows)
    return dataclasses.replace(
        compiled,
        sense="min",
        objective=np.asarray(secondary, dtype=float),
        objective_offset=0.0,
        indptr=np.concatenate([compiled.indptr, compiled.indptr[-1] + np.cumsum(sizes)]),
        indices=np.concatenate([compiled.indices, indices]),
        data=np.concatenate([compiled.data, compiled.objective[indices]]),
        row_lo=np.append(compiled.row_lo, los),
        row_hi=np.append(compiled.row_hi, his),
        row_block=[*compiled.row_block, "objective.primary_cap", *["objective.part_cap"] * len(parts)],
    )
