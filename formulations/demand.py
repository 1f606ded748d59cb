"""Demand: online arrival rates under the utilisation cap; offline requests within the deadline."""

from __future__ import annotations

import numpy as np

from formulations.billing import batch_requests, capacity_per_instance, min_hours_per_instance, offline_hours
from formulations.model import Context, Hours, Selection


def add_demand(ctx: Context, sel: Selection) -> Hours:
    """(8)-(11): online rate, offline work, deadline, least billed hours.

    (8) ``sum_{c in C_w} u · r_c · rho_c · n_c >= lambda_w`` for every online workload w;
    (9) ``sum_{c in C_w} (3600 · theta_w · r_c · rho_c · h_c − b_c · rho_c · n_c) >= N_w`` for every offline
    workload w (requests completed, not counting each instance's last, unfinished batch);
    (10) ``h_c <= H_w · n_c`` and (11) ``h_c >= m_c · n_c`` with
    ``m_c = max(MIN_BILLED_H, E2E_c / (3600 · theta_w))`` (every rented instance bills at least the billing
    minimum and runs at least one whole batch); ``h_c`` is integer when billed per started hour.

    ``r_c = b_c / E2E_c`` is one replica's sustainable request rate (Little's law with ``b_c`` requests in
    flight), ``rho_c`` the replicas per instance, ``u`` the utilisation cap; ``H_w, theta_w`` come from
    :func:`formulations.billing.offline_hours`. The ``h_c`` family exists only on offline candidates.
    """
    cands, scenario = ctx.cands, ctx.scenario
    n = sel.n.index
    code, names = ctx.workload_code()
    online = ctx.is_online()
    cap = capacity_per_instance(cands, scenario)
    wl = ctx.workloads
    online_names = [nm for nm in names if wl[nm].kind == "online"]
    offline_names = [nm for nm in names if wl[nm].kind == "offline"]

    # (8) online rate
    pos = {nm: i for i, nm in enumerate(online_names)}
    online_pos = np.array([pos.get(nm, -1) for nm in names], dtype=np.int64)
    group = online_pos[code[online]]
    rates = np.array([wl[nm].rate_rps or 0.0 for nm in online_names], dtype=float)
    ctx.lm.add_grouped_rows("demand.online", group, len(online_names), n[online], cap[online], lo=rates)

    # (9)-(11) offline work and instance-hours
    off = np.flatnonzero(~online)
    per_hour = scenario.billing == "per_hour"
    hours_w = np.array([offline_hours(scenario, wl[nm])[0] if wl[nm].kind == "offline" else 0.0 for nm in names])
    hours = hours_w[code[off]].astype(float)
    hfam = ctx.lm.add_vars("h", off.size, 0.0, hours * sel.big_m[off], integer=per_hour)
    h = hfam.index
    opos = {nm: i for i, nm in enumerate(offline_names)}
    offline_pos = np.array([opos.get(nm, -1) for nm in names], dtype=np.int64)
    ogroup = offline_pos[code[off]]
    requests = np.array([wl[nm].requests or 0 for nm in offline_names], dtype=float)
    lost = batch_requests(cands)[off]
    ctx.lm.add_grouped_rows(
        "demand.offline_work",
        np.concatenate([ogroup, ogroup]),
        len(offline_names),
        np.concatenate([h, n[off]]),
        np.concatenate([cap[off], -lost]),
        lo=requests,
    )
    ctx.lm.add_diagonal_rows("demand.offline_hours", [(h, 1.0), (n[off], -hours)], hi=0.0)
    if off.size:
        least = min_hours_per_instance(cands, scenario)[off]
        ctx.lm.add_diagonal_rows("demand.offline_min_hours", [(h, 1.0), (n[off], -least)], lo=0.0)
    return Hours(hfam, off.astype(np.int64))
