"""Big-M constants derived from data: the instance-count bound ``U_c`` of constraint (1).

Derivation (``formulations/README.md``, section "Big-M"): an optimal plan never rents more instances of a
candidate than the candidate needs to carry its whole workload alone, unless a ``min_instances`` floor asks
for more; and never more than a quota or the hourly budget allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from formulations.billing import batch_requests, capacity_per_instance, offline_hours
from formulations.spot import spot_share_alone
from solver.errors import InputError
from solver.specs import Scenario
from solver.tolerances import ceil_int, floor_int


def count_upper_bound(cands: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Return ``U_c``, a valid upper bound on the instance count ``n_c`` of some optimal plan.

    ``U_c = min(max(A_c, L_c), Q_c, floor(B / p_c))`` where ``A_c`` is the count that carries the candidate's
    whole workload alone (online under ``min_cost``: ``ceil(lambda_w / (u r_c rho_c))``; offline:
    ``ceil(N_w / (3600 theta_w r_c rho_c H_w - b_c rho_c))``, 0 when an instance completes no batch), ``L_c``
    the ``min_instances`` floor of its type, ``Q_c`` the tightest quota on it (type, family, region, total)
    and ``B`` the hourly budget.

    Raises
    ------
    InputError
        ``objective: max_throughput`` while some online candidate's instance type is bounded by neither an
        hourly budget nor a quota (the message names those types): the fleet would be unbounded.
    """
    lim = scenario.limits
    m = len(cands)
    cap = capacity_per_instance(cands, scenario)
    lost = batch_requests(cands)
    wl = {w.name: w for w in scenario.workloads}
    alone = np.full(m, np.inf)
    code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
    for k, name in enumerate(uniques):
        w = wl[name]
        if w.kind == "online" and scenario.objective == "max_throughput":
            continue
        rows = np.flatnonzero(code == k)
        c = cap[rows]
        if w.kind == "online":
            need, per = float(w.rate_rps or 0.0), c
        else:
            need, per = float(w.requests or 0), c * offline_hours(scenario, w)[0] - lost[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            alone[rows] = np.where(per <= 0, 0.0, ceil_int(need / per))
    floor_ = _per_value(cands["instance_type"], lim.min_instances, 0.0)
    bound = np.maximum(alone, floor_)
    quota = np.full(m, np.inf)
    for mapping, col in (
        (lim.max_instances, "instance_type"),
        (lim.max_instances_per_family, "family"),
        (lim.max_instances_per_region, "region"),
    ):
        if mapping:
            q = _per_value(cands[col], mapping, np.inf)
            quota = np.minimum(quota, q)
    if lim.max_total_instances is not None:
        quota = np.minimum(quota, float(lim.max_total_instances))
    if lim.budget_usd_per_hour is not None:
        price = cands["usd_per_hour"].to_numpy(dtype=float)
        quota = np.minimum(quota, floor_int(lim.budget_usd_per_hour / price))
    bound = np.minimum(bound, quota)
    if lim.max_spot_share is not None and scenario.objective == "min_cost":  # (23): on-demand must balance spot
        bound = np.minimum(np.maximum(spot_share_alone(cands, scenario, alone, bound), floor_), quota)
    if m and not np.all(np.isfinite(bound)):
        types = sorted({str(t) for t in cands["instance_type"].to_numpy()[~np.isfinite(bound)]})
        shown = ", ".join(types[:8]) + (f" and {len(types) - 8} more" if len(types) > 8 else "")
        raise InputError(
            "limits",
            f"objective max_throughput leaves {shown} unbounded: set limits.budget_usd_per_hour or "
            "limits.max_total_instances, or a quota (limits.max_instances, _per_family, _per_region) on each",
        )
    return np.maximum(bound, 0.0)


def _per_value(column: pd.Series, mapping: dict[str, int], default: float) -> np.ndarray:
    """Per row, ``mapping[value]`` (``default`` when absent), looked up once per distinct value."""
    code, uniques = pd.factorize(column, use_na_sentinel=False)
    table = np.array([mapping.get(v, default) for v in uniques], dtype=float)
    return table[code] if len(uniques) else np.zeros(0)
