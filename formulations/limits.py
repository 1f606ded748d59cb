"""Limits: InferSave's price cap, hourly and total budgets, quotas and minimum counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from formulations.model import FleetModel
from solver.specs import Scenario


def _grouped_quota(fm: FleetModel, block: str, column: str, mapping: dict[str, int], floor: bool) -> None:
    """Add one row per key of ``mapping``: sum of ``n_c`` over candidates whose ``column`` equals the key."""
    n = fm.family("n").index
    keys = sorted(mapping)
    values = fm.col(column)
    rows, cols = [], []
    for g, key in enumerate(keys):
        hit = np.flatnonzero(values == key)
        rows.append(np.full(hit.size, g, dtype=np.int64))
        cols.append(n[hit])
    bound = np.array([mapping[k] for k in keys], dtype=float)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    if floor:
        fm.lm.add_grouped_rows(block, row, len(keys), col, 1.0, lo=bound)
    else:
        fm.lm.add_grouped_rows(block, row, len(keys), col, 1.0, hi=bound)


def add_limits(fm: FleetModel, cands: pd.DataFrame, scenario: Scenario) -> None:
    """(12)-(19): price cap, budgets, quotas, total, minimum counts.

    (12) ``p_c · y_c <= P_max``; (13) ``sum_c p_c · n_c <= B``; (14) ``sum_{c offline} p_c · h_c <= B_usd``;
    (15)-(17) ``sum_{c in type t / family f / region r} n_c <= Q``; (18) ``sum_c n_c <= Q_total``;
    (19) ``sum_{c in type t} n_c >= L_t``.

    Each row is added only when the scenario sets the limit. Quotas count online and offline instances
    together (they may run at the same time), which is conservative for offline jobs.
    """
    lim = scenario.limits
    n = fm.family("n").index
    y = fm.family("y").index
    price = fm.col("usd_per_hour").astype(float)
    if lim.max_price_usd_per_hour is not None:
        fm.lm.add_diagonal_rows("limits.max_price", [(y, price)], hi=lim.max_price_usd_per_hour)
    if lim.budget_usd_per_hour is not None:
        fm.lm.add_grouped_rows(
            "limits.budget_per_hour", np.zeros(len(n), dtype=np.int64), 1, n, price, hi=lim.budget_usd_per_hour
        )
    h = fm.family("h")
    if lim.budget_usd is not None:
        fm.lm.add_grouped_rows(
            "limits.budget_usd", np.zeros(h.size, dtype=np.int64), 1, h.index, price[fm.offline_idx], hi=lim.budget_usd
        )
    if lim.max_instances:
        _grouped_quota(fm, "limits.max_instances", "instance_type", lim.max_instances, floor=False)
    if lim.max_instances_per_family:
        _grouped_quota(fm, "limits.max_instances_per_family", "family", lim.max_instances_per_family, floor=False)
    if lim.max_instances_per_region:
        _grouped_quota(fm, "limits.max_instances_per_region", "region", lim.max_instances_per_region, floor=False)
    if lim.max_total_instances is not None:
        fm.lm.add_grouped_rows(
            "limits.max_total_instances", np.zeros(len(n), dtype=np.int64), 1, n, 1.0, hi=lim.max_total_instances
        )
    if lim.min_instances:
        _grouped_quota(fm, "limits.min_instances", "instance_type", lim.min_instances, floor=True)
