"""Simulate a plan's fleet: one replica per model copy of each fleet row, each workload under its own arrivals.

:func:`simulate` simulates a given plan (``solver.simulate``, in :mod:`solver.apps.simulate`, plans first when
no plan is given; ``infersave simulate``). A workload with a size distribution is simulated as its request
classes (:func:`solver.planning.classes.expand`, one per bucket, as it was planned). Classes that share
replicas (pooled rows) are simulated together on those rows (:mod:`solver.simulation.mixed`); every other
class on its own rows' replicas:

* **online** — arrivals from the workload's ``arrival`` field (Poisson at ``rate_rps``, or gamma with its
  ``cv``) over ``duration_s``, or a trace; continuous batching unless the engine runs static batches
  (FlexGen); statistics exclude requests arriving in the first ``warmup_s``;
* **offline** — every request is queued at time 0 and served in static batches; the makespan is compared
  with ``deadline_h`` and latencies count from admission (waiting for a batch slot is what the deadline is
  about). Jobs of more than :data:`MAX_OFFLINE_REQUESTS` are simulated on that many requests and the makespan
  scaled by the ratio (identical static batches: the makespan is linear in the requests), which is noted.

Large online fleets and rates are bounded too (:data:`MAX_REPLICAS`, :data:`MAX_REQUESTS`), so verifying a plan
costs at most a few seconds whatever its size; what was bounded is in the workload's ``notes``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from solver.errors import InputError
from solver.simulation import arrivals as arr
from solver.simulation.loop import run
from solver.simulation.replica import ReplicaConfig
from solver.simulation.results import (
    SimulationResult,
    WorkloadResult,
    attainment,
    goodput,
    request_frame,
    summary,
    timeseries,
)
from solver.simulation.routing import ROUTINGS
from solver.simulation.sizing import (
    DEFAULT_DURATION_S,
    MAX_OFFLINE_REQUESTS,
    MAX_REPLICAS,
    MAX_REQUESTS,
    WORKLOAD_SEED_STRIDE,
    _hardware,
    workload_replicas,
)
from solver.specs import Scenario, Workload

if TYPE_CHECKING:
    from solver.planning.plan import Plan


def simulate_workload(
    w: Workload,
    configs: list[ReplicaConfig],
    source: arr.Arrivals | arr.ClosedLoop,
    *,
    duration_s: float,
    warmup_s: float,
    routing: str = "jsq",
    chunked_prefill: bool = False,
) -> WorkloadResult:
    """Simulate one workload's arrivals on ``configs`` and summarise (:mod:`solver.simulation.results`)."""
    raw = run(configs, source, duration_s=duration_s, routing=routing, chunked_prefill=chunked_prefill)
    reqs = request_frame(raw, warmup_s, duration_s)
    slots = sum(c.max_batch for c in configs)
    return WorkloadResult(
        workload=w.name,
        kind=w.kind,
        replicas=len(configs),
        requests=reqs,
        stats=summary(reqs),
        attainment=attainment(reqs, w.slo),
        goodput=goodput(reqs, w.slo),
        timeseries=timeseries(raw, slots, w.name),
        events=raw.events,
    )


def _offline(w: Workload, configs: list[ReplicaConfig]) -> WorkloadResult:
    """Simulate an offline job: every request queued at 0, static batches, makespan against the deadline."""
    total = int(w.requests or 0)
    n = min(total, MAX_OFFLINE_REQUESTS)
    notes = []
    if n < total:
        notes.append(f"simulated {n:,} of {total:,} requests; makespan scaled by {total / n:.4g}")
    source = arr.Arrivals(
        np.zeros(n), np.full(n, w.input_tokens, dtype=np.int64), np.full(n, w.output_tokens, dtype=np.int64)
    )
    deadline_s = float(w.deadline_h or 0.0) * 3600.0
    raw = run(configs, source, duration_s=1e-9, drain_s=max(deadline_s, 1.0) * 4.0, shared_queue=True)
    reqs = request_frame(raw, 0.0, 1.0)
    finished = raw.finish_s[~np.isnan(raw.finish_s)]
    makespan_s = float(finished.max()) * (total / n) if finished.size == n else math.inf
    # latencies of a batch job count from admission: the queue is what the deadline is about
    from_admission = reqs.assign(
        ttft_ms=reqs["ttft_ms"] - reqs["queue_ms"],
        e2e_s=reqs["e2e_s"] - reqs["queue_ms"] / 1e3,
    )
    return WorkloadResult(
        workload=w.name,
        kind="offline",
        replicas=len(configs),
        requests=from_admission,
        stats=summary(from_admission),
        attainment=attainment(from_admission, w.slo),
        goodput=goodput(from_admission, w.slo),
        timeseries=pd.DataFrame(),
        events=raw.events,
        makespan_h=makespan_s / 3600.0,
        deadline_h=float(w.deadline_h or math.nan),
        notes=notes,
    )


def simulate(
    scenario: Scenario,
    plan: Plan,
    *,
    duration_s: float | None = None,
    warmup_s: float | None = None,
    seed: int = 0,
    routing: str = "jsq",
    trace: str | Path | arr.Arrivals | None = None,
    chunked_prefill: bool = False,
) -> SimulationResult:
    """Simulate the fleet of ``plan`` under each workload's traffic (``solver.simulate`` also plans first).

    Parameters
    ----------
    scenario
        The scenario (workloads, arrivals, SLOs, engine, catalog).
    plan
        The plan to simulate.
    duration_s
        Seconds of online arrivals simulated (default :data:`DEFAULT_DURATION_S`, or a trace's span).
    warmup_s
        Online requests arriving before this are left out of the statistics (default a tenth of the duration).
    seed
        Seed of the arrivals (same seed, same result).
    routing
        ``jsq`` (join-shortest-queue, default) or ``round_robin``.
    trace
        A trace CSV (``arrival_s,input_tokens,output_tokens``) or :class:`Arrivals` that replaces the
        arrivals of the first online workload; ``duration_s`` then defaults to the trace's span.
    chunked_prefill
        Split prefills into the engine's chunk size, interleaved with decode steps.

    Returns
    -------
    SimulationResult
        Per workload: statistics, SLO attainment, goodput, time series.
    """
    if routing not in ROUTINGS:
        raise InputError("routing", f"unknown routing {routing!r}; use one of {', '.join(ROUTINGS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {seed!r}")
    traced = arr.read_trace(trace) if isinstance(trace, str | Path) else trace
    if duration_s is None:
        duration_s = DEFAULT_DURATION_S if traced is None else max(float(traced.times_s[-1]) * (1 + 1e-9), 1e-3)
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise InputError("duration_s", f"must be a positive number of seconds, got {duration_s!r}")
    warm = duration_s / 10.0 if warmup_s is None else float(warmup_s)
    if not (0 <= warm < duration_s):
        raise InputError("warmup_s", f"must be in [0, duration_s), got {warm!r}")
    start = time.perf_counter()
    from solver.planning.classes import expand
    from solver.simulation.mixed import components, simulate_component

    scenario = expand(scenario).scenario  # size buckets are the plan's request classes (a no-op without)
    hw = _hardware(scenario)
    results = []
    trace_used = False
    mixed = {c.classes[0]: c for c in components(plan, scenario) if c.mixed(plan)}
    in_mixed = {name for c in mixed.values() for name in c.classes}
    first_online = next((w.name for w in scenario.workloads if w.kind == "online"), None)
    for k, w in enumerate(scenario.workloads):
        if w.name in in_mixed:  # shared replicas: the component's classes are simulated together, once
            comp = mixed.get(w.name)
            if comp is None:
                continue
            replay = None
            if traced is not None and first_online in comp.classes:
                replay, trace_used = {first_online: traced}, True
            results.extend(
                simulate_component(
                    scenario,
                    plan,
                    comp,
                    hw,
                    duration_s=duration_s,
                    warmup_s=warm,
                    seed=seed,
                    routing=routing,
                    chunked_prefill=chunked_prefill,
                    trace=replay,
                )
            )
            continue
        rows = [r for r in plan.fleet if r.workload == w.name]
        if not rows:
            continue
        total = sum(max(int(r.replicas), 1) * int(r.count) for r in rows)
        scale = 1.0
        if w.kind == "online" and traced is None and total > MAX_REPLICAS:
            scale = MAX_REPLICAS / total
        configs = workload_replicas(scenario, w, rows, hw, scale)
        if not configs:
            continue
        if w.kind == "offline":
            results.append(_offline(w, configs))
            continue
        notes = []
        if traced is not None and not trace_used:
            source: arr.Arrivals = traced
            trace_used = True
            horizon = duration_s
        else:
            share = len(configs) / total
            rate = float(w.rate_rps or 0.0) * share
            horizon = min(duration_s, max(MAX_REQUESTS / rate, 1.0)) if rate > 0 else duration_s
            if share < 1.0:
                notes.append(f"simulated {len(configs)} of {total} replicas at {share:.3g} of the arrival rate")
            if horizon < duration_s:
                notes.append(f"simulated {horizon:.4g} s of arrivals (at most {MAX_REQUESTS:,} requests)")
            source = arr.gamma(
                rate, w.arrival.cv, horizon, w.input_tokens, w.output_tokens, seed + k * WORKLOAD_SEED_STRIDE
            )
        results.append(
            dataclasses.replace(
                simulate_workload(
                    w,
                    configs,
                    source,
                    duration_s=horizon,
                    warmup_s=warm * horizon / duration_s,
                    routing=routing,
                    chunked_prefill=chunked_prefill,
                ),
                notes=notes,
            )
        )
    return SimulationResult(
        workloads=tuple(results),
        duration_s=duration_s,
        warmup_s=warm,
        seed=seed,
        routing=routing,
        seconds=time.perf_counter() - start,
    )
