"""Big-M constants derived from data: the instance-count bound ``U_c`` of constraint (1).

Derivation (``formulations/README.md``, section "Big-M"): an optimal plan never rents more instances of a
candidate than the candidate needs to carry its whole workload alone, unless a ``min_instances`` floor asks
for more; and never more than a quota or the hourly budget allows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from solver.errors import InputError
from solver.specs import Scenario, Workload

MIN_BILLED_H: dict[str, float] = {"per_second": 60.0 / 3600.0, "per_hour": 1.0}
"""Least billed time of one rented instance, hours. Per second: AWS bills Linux instances "in one second
increments, with a minimum of 60 seconds" (https://aws.amazon.com/about-aws/whats-new/2017/10/
announcing-amazon-ec2-per-second-billing/); per started hour: one hour."""


def offline_hours(scenario: Scenario, workload: Workload) -> tuple[float, float]:
    """Return ``(H, theta)`` of an offline workload: billed hours per instance cap and worked share of an hour.

    Per-second billing: ``H = deadline_h`` and ``theta = 1`` when the deadline is at least the 60 s billing
    minimum; below it, ``H = 1/60`` billed hour of which ``theta = 60 · deadline_h`` is worked. Per started
    hour: ``H = floor(deadline_h)`` and ``theta = 1`` when the deadline is at least an hour (an instance is
    loaded to whole hours only, which is conservative); below an hour, ``H = 1`` billed hour of which
    ``theta = deadline_h`` is worked. In every case one instance works at most ``3600 · theta · H`` seconds
    (:func:`worked_seconds`), which is ``3600 · min(D, theta · H)``.
    """
    deadline = float(workload.deadline_h or 0.0)
    least = MIN_BILLED_H[scenario.billing]
    if scenario.billing == "per_second":
        return (deadline, 1.0) if deadline >= least else (least, deadline / least)
    if deadline >= 1.0:
        return float(math.floor(deadline)), 1.0
    return 1.0, deadline


def worked_seconds(scenario: Scenario, workload: Workload) -> float:
    """Seconds one instance of an offline workload can work before the deadline: ``3600 · theta_w · H_w``."""
    big_h, theta = offline_hours(scenario, workload)
    return 3600.0 * theta * big_h


def capacity_per_instance(cands: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Per candidate: online requests/s at the utilisation cap, or offline requests per billed hour.

    Online: ``u · r_c · rho_c`` (constraint 8). Offline: ``3600 · theta_w · r_c · rho_c`` (constraint 9).
    """
    kinds = {w.name: w for w in scenario.workloads}
    rate = cands["rate_rps"].to_numpy(dtype=float) * cands["replicas"].to_numpy(dtype=float)
    code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
    per_workload = np.array(
        [
            scenario.search.utilisation_cap
            if kinds[name].kind == "online"
            else 3600.0 * offline_hours(scenario, kinds[name])[1]
            for name in uniques
        ],
        dtype=float,
    )
    out = per_workload[code] * rate if len(uniques) else np.zeros(0)
    return np.where(np.isfinite(out) & (out > 0), out, 0.0)


def batch_requests(cands: pd.DataFrame) -> np.ndarray:
    """Per candidate, ``b_c · rho_c``: requests of one static batch on every replica of an instance.

    An instance's last, unfinished batch is not counted as work (constraint 9).
    """
    return cands["batch_size"].to_numpy(dtype=float) * cands["replicas"].to_numpy(dtype=float)


def min_hours_per_instance(cands: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Per candidate, ``m_c``: least billed hours of one rented offline instance (constraint 11); 0 online.

    ``m_c = max(MIN_BILLED_H, E2E_c / (3600 · theta_w))``: the billing minimum, and time for one whole batch.
    """
    wl = {w.name: w for w in scenario.workloads}
    code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
    theta = np.array(
        [offline_hours(scenario, wl[n])[1] if wl[n].kind == "offline" else np.nan for n in uniques], dtype=float
    )
    if not len(uniques):
        return np.zeros(0)
    th = theta[code]
    e2e = cands["e2e_s"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.maximum(MIN_BILLED_H[scenario.billing], e2e / (3600.0 * th))
    return np.where(np.isnan(th), 0.0, m)


def billed_horizon_h(scenario: Scenario) -> float:
    """Hours billed for one online instance over the horizon ``T``: ``T``, or ``ceil(T)`` per started hour."""
    horizon = scenario.effective_horizon_h
    return float(math.ceil(horizon - 1e-9)) if scenario.billing == "per_hour" else horizon


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
            alone[rows] = np.where(per <= 0, 0.0, np.ceil(need / per - 1e-9))
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
        quota = np.minimum(quota, np.floor(lim.budget_usd_per_hour / price + 1e-9))
    bound = np.minimum(bound, quota)
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
