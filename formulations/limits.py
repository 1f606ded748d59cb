"""Limits: hourly and total budgets, quotas and minimum counts."""

from __future__ import annotations

import numpy as np

from formulations import checks
from formulations.linear import IntArray, VarFamily
from formulations.model import Context, Hours


def _grouped_quota(
    ctx: Context,
    counted: tuple[IntArray, IntArray],
    block: str,
    column: str,
    mapping: dict[str, int],
    floor: bool,
    market: str | None = None,
) -> None:
    """Add one row per key of ``mapping``: sum of the instance counts whose candidate's ``column`` equals the key.

    With ``market``, only candidates of that market count (the spot quotas (25)-(26)).
    """
    keys = sorted(mapping)
    cand, var = counted
    values = ctx.col(column)[cand]
    if market is not None:
        values = values.copy()
        values[ctx.col("market")[cand] != market] = None
    rows, cols = [], []
    for g, key in enumerate(keys):
        hit = np.flatnonzero(values == key)
        rows.append(np.full(hit.size, g, dtype=np.int64))
        cols.append(var[hit])
    bound = np.array([mapping[k] for k in keys], dtype=float)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    if floor:
        ctx.lm.add_grouped_rows(block, row, len(keys), col, 1.0, lo=bound)
    else:
        ctx.lm.add_grouped_rows(block, row, len(keys), col, 1.0, hi=bound)


def add_limits(
    ctx: Context, n_family: VarFamily, hours: Hours, counted: tuple[IntArray, IntArray] | None = None
) -> None:
    """(13)-(19), (25)-(26): budgets, quotas, total, minimum counts and spot quotas.

    The price cap (12) is a per-candidate rule; the spot shares and type counts (23), (24), (27) are in
    :mod:`formulations.spot`.

    (13) ``sum_c p_c · n_c <= B``; (14) ``sum_{c offline} p_c · h_c <= B_usd``;
    (15)-(17) ``sum_{c in type t / family f / region r} n_c <= Q``; (18) ``sum_c n_c <= Q_total``;
    (19) ``sum_{c in type t} n_c >= L_t``; (25)-(26) ``sum_{c spot, in type t / region r} n_c <= Q``.

    Each row block is named after its limit (:data:`formulations.checks.FLEET_LIMITS`) and added only when the
    scenario sets it. Quotas count online and offline instances together (they may run at the same time), which
    is conservative for offline jobs.

    ``counted`` (from :func:`formulations.sharing.instance_columns`): the variables that count instances and
    their candidates; a shared pool's instances are its count ``N_p``, not its classes' shares (default
    ``n_c`` of every candidate).
    """
    lim = ctx.scenario.limits
    if counted is None:
        counted = (np.arange(n_family.size, dtype=np.int64), n_family.index)
    cand, n = counted
    price = ctx.col("usd_per_hour").astype(float)
    for fl in checks.fleet_limits_set(lim):
        if fl.kind not in checks.INSTANCE_LIMIT_KINDS:
            continue
        value = fl.value(lim)
        if isinstance(value, dict) and fl.column is not None:  # (15)-(17), (19), (25)-(26): one row per key
            _grouped_quota(ctx, counted, fl.path, fl.column, value, floor=fl.kind == "floor", market=fl.market)
            continue
        if not isinstance(value, int | float):
            continue
        if fl.field == "budget_usd":  # (14): offline instance-hours
            cols, coefs = hours.h.index, price[hours.offline_idx]
        else:  # (13) hourly budget, (18) total count
            cols, coefs = n, (price[cand] if fl.kind == "budget" else np.ones(len(n)))
        ctx.lm.add_grouped_rows(fl.path, np.zeros(cols.size, dtype=np.int64), 1, cols, coefs, hi=value)
