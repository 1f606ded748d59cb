"""Spot risk and spread: the share of capacity on spot, an on-demand floor, and the number of instance types.

Rows (23), (24) and (27) of ``formulations/README.md`` (the spot quotas (25)-(26) are quotas, written by
:mod:`formulations.limits`); every limit is declared in :data:`formulations.checks.FLEET_LIMITS`. The same
module writes the no-good cuts that ``plan --top-k`` uses to ask for a plan with another set of instance types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations.billing import batch_requests, capacity_per_instance, offline_hours
from formulations.linear import IntArray, VarFamily
from formulations.model import Context, Hours, Selection
from solver.specs import Scenario
from solver.tolerances import ceil_int

TypeSet = frozenset[tuple[str, str]]
"""The (workload, instance type) pairs a plan uses."""


@dataclass(frozen=True)
class TypeBinaries:
    """``z_k``: workload ``owner[k]`` uses instance type ``pairs[k]`` (family ``z``)."""

    z: VarFamily
    pairs: list[tuple[str, str]]
    owner: IntArray


def is_spot(cands: pd.DataFrame) -> np.ndarray:
    """Boolean mask of spot candidates."""
    return cands["market"].to_numpy() == "spot"


def _terms(ctx: Context, sel: Selection, hours: Hours, mask: np.ndarray, completed: bool) -> tuple[IntArray, ...]:
    """(workload position, column, coefficient) of each candidate's capacity term, for candidates in ``mask``.

    Online: ``u · r_c · rho_c · n_c`` (requests/s at the utilisation cap, as in (8)). Offline: the requests the
    billed hours can do, ``3600 · theta_w · r_c · rho_c · h_c``, less ``b_c · rho_c · n_c`` when ``completed``
    (the completed work of (9)).
    """
    code, _names = ctx.workload_code()
    cap = capacity_per_instance(ctx.cands, ctx.scenario)
    online = ctx.is_online()
    on = np.flatnonzero(mask & online)
    off_pos = np.full(len(ctx.cands), -1, dtype=np.int64)
    off_pos[hours.offline_idx] = np.arange(hours.offline_idx.size)
    off = np.flatnonzero(mask & ~online)
    groups = [code[on], code[off]]
    cols = [sel.n.index[on], hours.h.index[off_pos[off]]]
    coefs = [cap[on], cap[off]]
    if completed:
        groups.append(code[off])
        cols.append(sel.n.index[off])
        coefs.append(-batch_requests(ctx.cands)[off])
    return np.concatenate(groups), np.concatenate(cols), np.concatenate(coefs).astype(float)


def demand_of(scenario: Scenario) -> np.ndarray:
    """Per workload (scenario order): the arrival rate (online) or the requests (offline)."""
    return np.array([float(w.rate_rps or w.requests or 0) for w in scenario.workloads], dtype=float)


def add_spot_share(ctx: Context, sel: Selection, hours: Hours) -> None:
    """(23) ``sum_{c in C_w} (spot_c − s) · k_c x_c <= 0``; (24) ``sum_{c in C_w, on-demand} q_c >= s' · D_w``.

    (23) ``limits.max_spot_share = s``: at most the share ``s`` of each workload's capacity is on spot; capacity
    is ``u r_c rho_c n_c`` online and ``3600 theta_w r_c rho_c h_c`` (the requests the billed hours can do)
    offline. (24) ``limits.min_on_demand_share = s'``: the on-demand rows of each workload alone carry ``s'`` of
    its demand ``D_w`` (rate ``lambda_w`` at the utilisation cap online, completed requests (9) offline), so
    ``s'`` of the service survives the reclaim of every spot instance. One row per workload each; (23) only
    for workloads with a spot candidate.
    """
    lim = ctx.scenario.limits
    n_w = len(ctx.scenario.workloads)
    spot = is_spot(ctx.cands)
    if lim.max_spot_share is not None and spot.any():
        s = float(lim.max_spot_share)
        group, cols, coefs = _terms(ctx, sel, hours, np.ones(len(ctx.cands), dtype=bool), completed=False)
        spot_var = np.zeros(ctx.lm.n_vars, dtype=bool)
        spot_var[sel.n.index[spot]] = True
        spot_var[hours.h.index[spot[hours.offline_idx]]] = True
        weight = np.where(spot_var[cols], 1.0 - s, -s)
        has = np.unique(ctx.workload_code()[0][spot])
        keep = np.isin(group, has)
        pos = np.full(n_w, -1, dtype=np.int64)
        pos[has] = np.arange(has.size)
        ctx.lm.add_grouped_rows(
            "limits.max_spot_share", pos[group[keep]], has.size, cols[keep], (weight * coefs)[keep], hi=0.0
        )
    if lim.min_on_demand_share is not None:
        group, cols, coefs = _terms(ctx, sel, hours, ~spot, completed=True)
        need = float(lim.min_on_demand_share) * demand_of(ctx.scenario)
        ctx.lm.add_grouped_rows("limits.min_on_demand_share", group, n_w, cols, coefs, lo=need)


def add_type_binaries(ctx: Context, sel: Selection, workloads: Iterable[int], exact: bool) -> TypeBinaries:
    """``z_{w,k} ∈ {0,1}`` per workload ``w`` of ``workloads`` and instance type ``k`` of its candidates.

    (27a) ``y_c <= z_{w,type(c)}`` links them to the candidates (``n_c <= U_c y_c`` by (1)). With ``exact``,
    also ``y_c <= n_c`` and ``z_{w,k} <= sum_{c of (w,k)} y_c``: ``z`` is then 1 exactly when the plan rents an
    instance of type ``k`` for ``w`` (the no-good cuts need that).
    """
    code, names = ctx.workload_code()
    chosen = np.isin(code, np.fromiter(workloads, dtype=np.int64))
    rows = np.flatnonzero(chosen)
    types = ctx.col("instance_type")[rows]
    keys = [(int(w), str(t)) for w, t in zip(code[rows], types, strict=True)]
    index: dict[tuple[int, str], int] = {}
    pair_code = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    pairs = [(names[w], t) for w, t in index]
    owner = np.array([w for w, _t in index], dtype=np.int64)
    z = ctx.lm.add_vars("z", len(pairs), 0.0, 1.0, integer=True)
    ctx.lm.add_diagonal_rows(
        "workloads.*.max_instance_types.link", [(sel.y.index[rows], 1.0), (z.index[pair_code], -1.0)], hi=0.0
    )
    if exact:
        ctx.lm.add_diagonal_rows("nogood.used", [(sel.y.index[rows], 1.0), (sel.n.index[rows], -1.0)], hi=0.0)
        ctx.lm.add_grouped_rows(
            "nogood.link",
            np.concatenate([np.arange(len(pairs)), pair_code]),
            len(pairs),
            np.concatenate([z.index, sel.y.index[rows]]),
            np.concatenate([np.ones(len(pairs)), -np.ones(rows.size)]),
            hi=0.0,
        )
    return TypeBinaries(z, pairs, owner)


def add_spread(ctx: Context, sel: Selection, nogoods: Iterable[TypeSet] = ()) -> TypeBinaries | None:
    """(27) ``sum_k z_{w,k} <= N_w`` (``workloads.<i>.max_instance_types``), and the no-good cuts of ``--top-k``.

    A no-good cut forbids a plan's exact set ``T`` of (workload, type) pairs:
    ``sum_{(w,k) ∉ T} z_{w,k} − sum_{(w,k) ∈ T} z_{w,k} >= 1 − |T|`` (some pair of ``T`` unused, or another
    pair used). Returns the type binaries, or ``None`` when neither is asked for.
    """
    limited = {i: int(w.max_instance_types) for i, w in enumerate(ctx.scenario.workloads) if w.max_instance_types}
    cuts = [set(t) for t in nogoods]
    if not limited and not cuts:
        return None
    every = range(len(ctx.scenario.workloads)) if cuts else limited.keys()
    tb = add_type_binaries(ctx, sel, every, exact=bool(cuts))
    if limited:
        on = np.flatnonzero(np.isin(tb.owner, list(limited)))
        pos = {w: j for j, w in enumerate(sorted(limited))}
        group = np.array([pos[int(w)] for w in tb.owner[on]], dtype=np.int64)
        bound = np.array([limited[w] for w in sorted(limited)], dtype=float)
        ctx.lm.add_grouped_rows("workloads.*.max_instance_types", group, len(limited), tb.z.index[on], 1.0, hi=bound)
    for k, cut in enumerate(cuts):
        inside = np.array([p in cut for p in tb.pairs], dtype=bool)
        coef = np.where(inside, -1.0, 1.0)
        lo = 1.0 - float(inside.sum()) - float(len(cut - set(tb.pairs)))
        ctx.lm.add_grouped_rows(f"nogood.{k}", np.zeros(len(tb.pairs), dtype=np.int64), 1, tb.z.index, coef, lo=lo)
    return tb


def spot_share_alone(cands: pd.DataFrame, scenario: Scenario, alone: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """``A_c`` of the Big-M for on-demand candidates under (23): enough to balance the most spot capacity.

    ``bound`` holds ``U_d`` of every candidate (valid under (23): lowering a spot count only lowers the spot
    share). For an on-demand candidate of workload w, ``A'_c = max(A_c, ceil(f · S_w / k_c))`` with
    ``f = (1 − s) / s``, ``S_w = sum_{d spot in C_w} k_d U_d`` (the most spot capacity any such plan has) and
    ``k_c`` the capacity of one instance (online ``u r_c rho_c``; offline the work of ``H_w`` billed hours). With
    ``s = 0`` no spot is allowed and ``A_c`` stands (``formulations/README.md``, "Big-M").
    """
    s = scenario.limits.max_spot_share
    if s is None or s == 0.0 or s >= 1.0:
        return alone
    spot = is_spot(cands)
    if not spot.any():
        return alone
    wl = {w.name: w for w in scenario.workloads}
    per = capacity_per_instance(cands, scenario).copy()
    names = cands["workload"].to_numpy()
    for name in np.unique(names):
        w = wl[str(name)]
        if w.kind == "offline":
            per[names == name] *= offline_hours(scenario, w)[0]
    out = alone.copy()
    f = (1.0 - float(s)) / float(s)
    for name in np.unique(names[spot]):
        mine = names == name
        most = float((per[mine & spot] * bound[mine & spot]).sum())
        od = np.flatnonzero(mine & ~spot & (per > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[od] = np.maximum(out[od], ceil_int(f * most / per[od]))
    return out
