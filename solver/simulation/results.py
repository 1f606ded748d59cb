"""Results of a simulation: per-request latencies, per-workload statistics, SLO attainment, time series.

Per request (after the warm-up, among requests that arrived before the horizon):

    queue_s = admission − arrival        ttft_s = first token − arrival
    tpot_s  = (finish − first token) / (output tokens − 1)     (NaN for one-token outputs)
    e2e_s   = finish − arrival

A request that never got its first token (or never finished) by the end of the simulation counts as
infinitely late: it raises the percentiles and fails every SLO, so an overloaded fleet cannot look good by
leaving its queue behind. Percentiles use the ``inverted_cdf`` definition (an observed value, never an
interpolation with infinity).

An SLO is *attained* when the simulated statistic — the given percentile, or the mean when the SLO has no
percentile (what the planner's per-candidate constants mean) — is within its limit. Goodput is the share
of requests meeting every SLO of their workload one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from solver.simulation.loop import RawRun
from solver.specs import SLO

METRICS = ("ttft_ms", "tpot_ms", "e2e_s", "queue_ms")
"""Per-request latencies summarised (milliseconds, except e2e in seconds)."""
STATS = ("mean", "p50", "p90", "p95", "p99")
SLO_LIMITS = (("ttft_ms", "ttft_percentile"), ("tpot_ms", "tpot_percentile"), ("e2e_s", "e2e_percentile"))
"""(limit field, percentile field) of each latency SLO."""


def request_frame(raw: RawRun, warmup_s: float, horizon_s: float) -> pd.DataFrame:
    """Per-request latencies (module docstring) of requests arriving in ``[warmup_s, horizon_s)``."""
    keep = (raw.arrival_s >= warmup_s) & (raw.arrival_s < horizon_s)
    a = raw.arrival_s[keep]

    def late(x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.inf, x)

    first = late(raw.first_token_s[keep])
    fin = late(raw.finish_s[keep])
    adm = late(raw.admit_s[keep])
    n = raw.output_tokens[keep].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(n > 1, (fin - first) / (n - 1.0), np.nan)
    tpot = np.where(np.isinf(first), np.inf, tpot)
    return pd.DataFrame(
        {
            "arrival_s": a,
            "replica": raw.replica[keep],
            "input_tokens": raw.input_tokens[keep],
            "output_tokens": raw.output_tokens[keep],
            "queue_ms": (adm - a) * 1e3,
            "ttft_ms": (first - a) * 1e3,
            "tpot_ms": tpot * 1e3,
            "e2e_s": fin - a,
        }
    )


def statistic(values: np.ndarray, stat: str) -> float:
    """``mean`` or ``pNN`` of ``values`` (NaN ignored; infinite values kept, module docstring)."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return math.nan
    if stat == "mean":
        return float(np.mean(v))
    q = float(stat[1:]) / 100.0
    return float(np.quantile(v, q, method="inverted_cdf"))


def percentile(values: np.ndarray, pct: float | None) -> float:
    """Return the ``pct`` percentile of ``values`` (module docstring), or the mean when ``pct`` is None."""
    return statistic(values, "mean" if pct is None else f"p{pct:g}")


def summary(requests: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{metric: {stat: value}}`` for :data:`METRICS` × :data:`STATS`."""
    return {m: {s: statistic(requests[m].to_numpy(dtype=float), s) for s in STATS} for m in METRICS}


def attainment(requests: pd.DataFrame, slo: SLO) -> list[dict[str, Any]]:
    """One record per latency SLO of ``slo``: limit, percentile, simulated value, p50, p99, met."""
    out = []
    for limit, pct_field in SLO_LIMITS:
        target = getattr(slo, limit)
        if target is None:
            continue
        pct = getattr(slo, pct_field)
        vals = requests[limit].to_numpy(dtype=float)
        sim = percentile(vals, pct)
        out.append(
            {
                "slo": limit,
                "limit": float(target),
                "percentile": pct,
                "statistic": "mean" if pct is None else f"p{pct:g}",
                "simulated": sim,
                "p50": statistic(vals, "p50"),
                "p99": statistic(vals, "p99"),
                "met": bool(sim <= float(target)),
            }
        )
    return out


def goodput(requests: pd.DataFrame, slo: SLO) -> float:
    """Share of requests meeting every latency SLO of ``slo`` (1.0 when it has none; NaN without requests)."""
    if requests.empty:
        return math.nan
    ok = np.ones(len(requests), dtype=bool)
    for limit, _ in SLO_LIMITS:
        target = getattr(slo, limit)
        if target is not None:
            vals = requests[limit].to_numpy(dtype=float)
            ok &= np.nan_to_num(vals, nan=0.0) <= float(target)
    return float(ok.mean())


def timeseries(raw: RawRun, slots: int, workload: str) -> pd.DataFrame:
    """Per bin: busy share of the replicas, batch-slot occupancy, requests queued and in the system."""
    edges = np.arange(raw.busy_s.shape[1]) * raw.bin_s
    keep = edges <= raw.end_s
    edges = edges[keep]
    ends = edges + raw.bin_s
    arr = np.sort(raw.arrival_s)
    adm = np.sort(np.where(np.isnan(raw.admit_s), np.inf, raw.admit_s))
    fin = np.sort(np.where(np.isnan(raw.finish_s), np.inf, raw.finish_s))
    arrived = np.searchsorted(arr, ends, side="right")
    admitted = np.searchsorted(adm, ends, side="right")
    finished = np.searchsorted(fin, ends, side="right")
    n_rep = max(raw.busy_s.shape[0], 1)
    return pd.DataFrame(
        {
            "workload": workload,
            "t_s": ends,
            "busy": raw.busy_s[:, keep].sum(axis=0) / (n_rep * raw.bin_s),
            "occupancy": (admitted - finished) / max(slots, 1),
            "queue_length": arrived - admitted,
            "in_system": arrived - finished,
        }
    )


@dataclass(frozen=True)
class WorkloadResult:
    """Simulation of one workload on its replicas."""

    workload: str
    kind: str
    replicas: int
    requests: pd.DataFrame
    stats: dict[str, dict[str, float]]
    attainment: list[dict[str, Any]]
    goodput: float
    timeseries: pd.DataFrame
    events: int
    makespan_h: float = math.nan
    deadline_h: float = math.nan
    notes: list[str] = field(default_factory=list)
    by_row: list[dict[str, Any]] = field(default_factory=list)
    """Shared replicas (:mod:`solver.simulation.mixed`): per fleet row the class was routed to, the row's index
    in the plan, its pool, the class's requests there and whether they met its SLOs; empty for a class
    simulated alone on its own rows."""

    @property
    def met(self) -> bool:
        """Every SLO attained (and, offline, the deadline)."""
        ok = all(a["met"] for a in self.attainment)
        if self.kind == "offline":
            ok = ok and self.makespan_h <= self.deadline_h
        return ok


@dataclass(frozen=True)
class SimulationResult:
    """The simulation of a plan's fleet: one :class:`WorkloadResult` per workload, and the settings used."""

    workloads: tuple[WorkloadResult, ...]
    duration_s: float
    warmup_s: float
    seed: int
    routing: str
    seconds: float

    @property
    def met(self) -> bool:
        """Every workload met every SLO."""
        return all(w.met for w in self.workloads)

    def summary_frame(self) -> pd.DataFrame:
        """One row per (workload, metric) with :data:`STATS` columns."""
        rows = []
        for w in self.workloads:
            for m, st in w.stats.items():
                rows.append({"workload": w.workload, "metric": m, **st})
        return pd.DataFrame(rows)

    def attainment_frame(self) -> pd.DataFrame:
        """One row per (workload, SLO): limit, statistic, simulated value, p50, p99, met."""
        rows = [{"workload": w.workload, **a} for w in self.workloads for a in w.attainment]
        cols = ["workload", "slo", "limit", "percentile", "statistic", "simulated", "p50", "p99", "met"]
        return pd.DataFrame(rows, columns=cols)

    def timeseries_frame(self) -> pd.DataFrame:
        """Utilisation and queue length over time of every workload (:func:`timeseries`)."""
        frames = [w.timeseries for w in self.workloads if not w.timeseries.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``infersave simulate --json``)."""
        return {
            "met": self.met,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "seed": self.seed,
            "routing": self.routing,
            "seconds": self.seconds,
            "workloads": [
                {
                    "workload": w.workload,
                    "kind": w.kind,
                    "replicas": w.replicas,
                    "requests": len(w.requests),
                    "met": w.met,
                    "goodput": w.goodput,
                    "attainment": w.attainment,
                    "stats": w.stats,
                    "makespan_h": w.makespan_h,
                    "deadline_h": w.deadline_h,
                    "events": w.events,
                    "notes": list(w.notes),
                    **({"by_row": list(w.by_row)} if w.by_row else {}),
                }
                for w in self.workloads
            ],
        }
