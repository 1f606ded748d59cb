"""Assemble the MILP from a candidate table and a scenario, one constraint family at a time, in README order."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from formulations.demand import add_demand
from formulations.limits import add_limits
from formulations.linear import LinearModel
from formulations.model import Context, FleetModel
from formulations.objective import add_objective
from formulations.rules import add_candidate_rules
from formulations.selection import add_selection
from formulations.sharing import add_pools, instance_columns
from formulations.spot import TypeSet, add_spot_share, add_spread
from solver.errors import InputError
from solver.specs import Scenario

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "workload",
    "instance_type",
    "family",
    "region",
    "market",
    "usd_per_hour",
    "tp",
    "replicas",
    "batch_size",
    "offload_fraction",
    "total_gpu_gib",
    "available_gpu_gib",
    "offloaded_kv_gib",
    "host_available_gib",
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
    "tps",
    "rate_rps",
)
"""Columns every candidate table needs (``formulations/README.md``, section "Data")."""


def build(cands: pd.DataFrame, scenario: Scenario, nogoods: Iterable[TypeSet] = ()) -> FleetModel:
    """Build the fleet MILP of ``formulations/README.md`` for ``cands`` and ``scenario``.

    Parameters
    ----------
    cands
        Candidate table with at least :data:`CANDIDATE_COLUMNS`; row ``c`` is candidate ``c``.
    scenario
        Workloads (SLOs and demand), limits, objective, billing and search options.
    nogoods
        Sets of (workload, instance type) pairs no plan may use exactly (``plan --top-k``; README row (28)).

    Returns
    -------
    FleetModel
        The neutral linear model with its variable families; the table is copied, never modified.
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in cands.columns]
    if missing:
        raise InputError("candidates", f"missing column(s) {', '.join(missing)}")
    known = {w.name for w in scenario.workloads}
    unknown = sorted(set(cands["workload"]) - known)
    if unknown:
        raise InputError("candidates.workload", f"workload(s) {', '.join(unknown)} are not in the scenario")
    ctx = Context(LinearModel(), cands.reset_index(drop=True).copy(), scenario)
    sel = add_selection(ctx)  # (1): creates n and y
    add_candidate_rules(ctx, sel.y)  # (2)-(7a), (12)
    hours = add_demand(ctx, sel)  # (8)-(11): creates h
    pools = add_pools(ctx, sel)  # (20): shared replicas (rows with a pool), creates N
    counted = instance_columns(ctx, sel, pools)  # instances: n_c, and N_p for a pool
    add_limits(ctx, sel.n, hours, counted)  # (13)-(19), (25)-(26)
    add_spot_share(ctx, sel, hours)  # (23)-(24)
    spread = add_spread(ctx, sel, nogoods)  # (27), (28)
    add_objective(ctx, sel, hours, counted)  # (O1) or (O2)
    owners = {"z": spread.owner} if spread is not None else {}
    return FleetModel(
        ctx.lm,
        ctx.cands,
        scenario,
        sel.n,
        sel.y,
        hours.h,
        sel.big_m,
        hours.offline_idx,
        pool_n=pools.N,
        pool_of=pools.pool_of,
        owners=owners,
    )
