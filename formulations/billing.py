"""Billing arithmetic: billed hours of online and offline instances, and the work one instance can do.

AWS bills Linux instances per second with a 60 s minimum, or (``billing: per_hour``) per started hour. Every
row of the MILP that speaks of hours or instance capacity reads its numbers from here
(``formulations/README.md``, constraints (8)-(11) and (O1)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from solver.specs import Scenario, Workload
from solver.tolerances import ceil_int

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
    return float(ceil_int(horizon)) if scenario.billing == "per_hour" else horizon
