"""Latency SLOs: TTFT, TPOT, end-to-end and InferSave's TPS, precomputed per candidate at its (b, f, tp)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from formulations.bigm import worked_seconds
from formulations.model import FleetModel
from solver.specs import Scenario


def add_latency(fm: FleetModel, cands: pd.DataFrame, scenario: Scenario) -> None:
    """(4) ``TTFT_c·y_c <= T^ttft_w``, (5) ``TPOT_c·y_c <= T^tpot_w``, (6) ``E2E_c·y_c <= T^e2e_w``, (7) TPS, (7a).

    (7) is ``(S^tps_w − TPS_c)·y_c <= 0``; (7a) ``E2E_c·y_c <= 3600·theta_w·H_w`` for every offline candidate:
    one static batch ends within the time an instance can work before the deadline.

    One row per candidate c of a workload w that sets that SLO; workloads without it get no row.
    """
    y = fm.family("y").index
    for slo_field, column, block in (
        ("ttft_ms", "ttft_ms", "latency.ttft"),
        ("tpot_ms", "tpot_ms", "latency.tpot"),
        ("e2e_s", "e2e_s", "latency.e2e"),
    ):
        limit = fm.per_candidate([getattr(w.slo, slo_field) or np.nan for w in scenario.workloads])
        has = np.isfinite(limit)
        fm.lm.add_diagonal_rows(block, [(y[has], fm.col(column)[has].astype(float))], hi=limit[has])
    target = fm.per_candidate([w.slo.tps or np.nan for w in scenario.workloads])
    has = np.isfinite(target)
    fm.lm.add_diagonal_rows("latency.tps", [(y[has], target[has] - fm.col("tps")[has].astype(float))], hi=0.0)
    window = fm.per_candidate(
        [worked_seconds(scenario, w) if w.kind == "offline" else np.nan for w in scenario.workloads]
    )
    off = np.isfinite(window)
    fm.lm.add_diagonal_rows("latency.offline_batch", [(y[off], fm.col("e2e_s")[off].astype(float))], hi=window[off])
