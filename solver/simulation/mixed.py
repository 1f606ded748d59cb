"""Shared replicas in simulation: the mixed traffic of every request class routed to a pooled fleet row.

With shared replicas (``formulations/README.md``, "Shared replicas"; :mod:`formulations.sharing`) a fleet row
may serve several request classes, class ``k`` at the rate ``x_{k,c}`` the plan routes to it (the row's
``split``), and a class may be spread over several rows (its own rows and pools). Classes and rows linked this
way form a *component*, simulated as one fleet:

* every class of the component gets its own arrivals — its workload's process (Poisson, or gamma with its
  ``cv``) at its total routed rate ``Σ_c x_{k,c}``, with its own lengths (a bucket class: the bucket's sized,
  upper lengths, as the planner sizes it);
* each request goes to one row, drawn with probability ``x_{k,c} / Σ_c x_{k,c}`` (the plan's split; splitting
  a Poisson stream at random keeps each part Poisson), then to a replica of that row by the routing policy
  (join-shortest-queue or round robin among the row's replicas, :func:`~solver.simulation.routing.make_group_router`);
* a row's replicas are built with the performance model for the longest prompt and output among the classes it
  serves (its activations and offload sized for the worst of the mix, as ``shared_candidates`` sizes the pool),
  while each request is prefilled and decoded at its own lengths. A short request queued behind long
  prefills on a pooled replica waits for them: the interference the per-candidate constants cannot see.

Results are per class (its requests only, against its own SLOs); each class's result also says, per row it
was routed to, whether its requests there met its SLOs (``by_row``), which the re-solve of
:mod:`solver.simulation.verify` uses to lower the rates of the rows that failed. Its time series is the busy
share of the replicas that served it (shared with the other classes) and its own requests queued.

A component of more than :data:`~solver.simulation.fleet.MAX_REPLICAS` replicas is simulated as a slice: each
row's replicas times the same share (at least one), each row fed its rates times its own replica ratio, so the
load per replica is the plan's (noted in the results).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from solver.simulation import arrivals as arr
from solver.simulation.loop import RawRun, run
from solver.simulation.replica import ReplicaConfig
from solver.simulation.results import WorkloadResult, attainment, goodput, request_frame, summary, timeseries
from solver.simulation.sizing import MAX_REPLICAS, MAX_REQUESTS, WORKLOAD_SEED_STRIDE, workload_replicas
from solver.specs import Scenario, Workload

if TYPE_CHECKING:
    from solver.planning.plan import FleetRow, Plan

ROW_SEED_OFFSET = 500_001
"""The row draws of class ``k`` use the seed of its arrivals plus this (an independent stream)."""


@dataclass(frozen=True)
class Component:
    """Request classes linked by the rows that serve them (``rows``: indices into the plan's fleet)."""

    classes: tuple[str, ...]
    rows: tuple[int, ...]

    def mixed(self, plan: Plan) -> bool:
        """Whether the component needs a mixed simulation (more than one class, or a pooled row)."""
        return len(self.classes) > 1 or any(plan.fleet[j].pool >= 0 for j in self.rows)


def served(row: FleetRow) -> list[tuple[str, float]]:
    """Return the classes a fleet row serves and the rate routed to each (without a split: its workload, NaN)."""
    if row.split:
        return [(name, float(rate)) for name, rate in row.split]
    return [(row.workload, float("nan"))]


def components(plan: Plan, scenario: Scenario) -> list[Component]:
    """Split the online rows of ``plan`` into components (module docstring), classes in scenario order."""
    online = {w.name for w in scenario.workloads if w.kind == "online"}
    order = {w.name: k for k, w in enumerate(scenario.workloads)}
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    row_class: list[tuple[int, list[str]]] = []
    for j, row in enumerate(plan.fleet):
        names = [n for n, _ in served(row) if n in online]
        if not names or row.kind != "online":
            continue
        row_class.append((j, names))
        for n in names[1:]:
            parent[find(n)] = find(names[0])
        find(names[0])
    groups: dict[str, tuple[list[str], list[int]]] = {}
    for j, names in row_class:
        cls, rows = groups.setdefault(find(names[0]), ([], []))
        rows.append(j)
        cls.extend(n for n in names if n not in cls)
    return [Component(tuple(sorted(cls, key=order.__getitem__)), tuple(rows)) for cls, rows in groups.values()]


def _subset(raw: RawRun, mask: np.ndarray, replicas: list[int]) -> RawRun:
    """Return the requests ``mask`` of a run, with the busy time of the replicas ``replicas`` only."""
    return dataclasses.replace(
        raw,
        arrival_s=raw.arrival_s[mask],
        admit_s=raw.admit_s[mask],
        first_token_s=raw.first_token_s[mask],
        finish_s=raw.finish_s[mask],
        input_tokens=raw.input_tokens[mask],
        output_tokens=raw.output_tokens[mask],
        replica=raw.replica[mask],
        busy_s=raw.busy_s[replicas],
    )


def row_config(scenario: Scenario, row: FleetRow, classes: list[Workload], hardware: pd.DataFrame) -> ReplicaConfig:
    """One replica of ``row`` sized for the longest prompt and output among ``classes`` (module docstring)."""
    lead = classes[0].model_copy(
        update={
            "input_tokens": max(w.input_tokens for w in classes),
            "output_tokens": max(w.output_tokens for w in classes),
        }
    )
    (cfg,) = workload_replicas(scenario, lead, [dataclasses.replace(row, count=1, replicas=1)], hardware)
    return cfg


def simulate_component(
    scenario: Scenario,
    plan: Plan,
    comp: Component,
    hardware: pd.DataFrame,
    *,
    duration_s: float,
    warmup_s: float,
    seed: int,
    routing: str = "jsq",
    chunked_prefill: bool = False,
    trace: dict[str, arr.Arrivals] | None = None,
) -> list[WorkloadResult]:
    """Simulate one component's classes on its rows' replicas together (module docstring); one result per class.

    ``trace`` replaces the arrivals of a class (by name; its requests are split over its rows as above).
    """
    wl = {w.name: w for w in scenario.workloads}
    index = {w.name: k for k, w in enumerate(scenario.workloads)}
    traced = trace or {}
    rows = [plan.fleet[j] for j in comp.rows]
    counts = [max(int(r.replicas), 1) * max(int(r.count), 1) for r in rows]
    total = sum(counts)
    share = MAX_REPLICAS / total if total > MAX_REPLICAS and not traced else 1.0
    sim_counts = counts if share >= 1.0 else [max(1, round(c * share)) for c in counts]
    notes: list[str] = []
    if share < 1.0:
        notes.append(f"simulated {sum(sim_counts)} of {total} replicas, each row at its plan load per replica")
    # rate of class k routed to row j in the simulated slice (the plan's split times the row's replica ratio)
    rates: dict[str, list[float]] = {k: [0.0] * len(rows) for k in comp.classes}
    planned: dict[str, float] = dict.fromkeys(comp.classes, 0.0)
    for j, row in enumerate(rows):
        named = served(row)
        for name, rate in named:
            if name not in rates:
                continue
            if not np.isfinite(rate):  # an older plan without splits: the class's rate over its rows' replicas
                rate = (
                    float(wl[name].rate_rps or 0.0)
                    * counts[j]
                    / max(sum(c for r, c in zip(rows, counts, strict=True) if name in dict(served(r))), 1)
                )
            rates[name][j] += rate * sim_counts[j] / counts[j]
            planned[name] += rate
    configs: list[ReplicaConfig] = []
    groups: list[list[int]] = []
    for j, row in enumerate(rows):
        names = [n for n, r in served(row) if n in wl and (r > 0 or not np.isfinite(r))] or [served(row)[0][0]]
        cfg = row_config(scenario, row, [wl[n] for n in names if n in wl] or [wl[comp.classes[0]]], hardware)
        groups.append(list(range(len(configs), len(configs) + sim_counts[j])))
        configs.extend([cfg] * sim_counts[j])
    # a class whose split adds up to its workload's rate (to the solver's tolerance) arrives at exactly that rate
    # (times the slice's share of it): two plans equal to that tolerance must simulate the same arrivals
    lam = {}
    for k, v in rates.items():
        exact = float(wl[k].rate_rps or 0.0)
        base = exact if math.isclose(planned[k], exact, rel_tol=1e-6) else planned[k]
        lam[k] = base * float(sum(v)) / planned[k] if planned[k] > 0 else 0.0
    total_rate = sum(lam.values())
    horizon = duration_s
    if not traced and total_rate > 0:
        horizon = min(duration_s, max(MAX_REQUESTS / total_rate, 1.0))
    if horizon < duration_s:
        notes.append(f"simulated {horizon:.4g} s of arrivals (at most {MAX_REQUESTS:,} requests)")
    times, ins, outs, cls, row_of = [], [], [], [], []
    for c, k in enumerate(comp.classes):
        w = wl[k]
        s = seed + index[k] * WORKLOAD_SEED_STRIDE
        if k in traced:
            src = traced[k]
        elif lam[k] > 0:
            src = arr.gamma(lam[k], w.arrival.cv, horizon, w.input_tokens, w.output_tokens, s)
        else:
            continue
        p = np.asarray(rates[k], dtype=float)
        if p.sum() <= 0:
            continue
        rng = np.random.Generator(np.random.PCG64(s + ROW_SEED_OFFSET))
        times.append(src.times_s)
        ins.append(src.input_tokens)
        outs.append(src.output_tokens)
        cls.append(np.full(len(src), c, dtype=np.int64))
        row_of.append(rng.choice(len(rows), size=len(src), p=p / p.sum()).astype(np.int64))
    if not times:
        return []
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    source = arr.Arrivals(t_all[order], np.concatenate(ins)[order], np.concatenate(outs)[order])
    cls_all = np.concatenate(cls)[order]
    rows_all = np.concatenate(row_of)[order]
    raw = run(
        configs,
        source,
        duration_s=horizon,
        routing=routing,
        chunked_prefill=chunked_prefill,
        groups=groups,
        group_of=rows_all,
    )
    warm = warmup_s * horizon / duration_s
    replica_row = np.repeat(np.arange(len(rows)), sim_counts)
    out = []
    for c, k in enumerate(comp.classes):
        mine = cls_all == c
        if not mine.any():
            continue
        w = wl[k]
        used = sorted({j for j in np.unique(rows_all[mine]).tolist()})
        replicas = [r for j in used for r in groups[j]]
        sub = _subset(raw, mine, replicas)
        reqs = request_frame(sub, warm, horizon)
        by_row = []
        for j in used:
            part = reqs[replica_row[reqs["replica"].to_numpy()] == j] if len(reqs) else reqs
            checks = attainment(part, w.slo) if len(part) else []
            by_row.append(
                {
                    "row": int(comp.rows[j]),
                    "pool": int(rows[j].pool),
                    "requests": len(part),
                    "met": all(a["met"] for a in checks),
                }
            )
        others = [n for n in comp.classes if n != k]
        class_notes = list(notes)
        if others:
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            class_notes.append(f"shares replicas with {', '.join(others[:3])}{more}")
        out.append(
            WorkloadResult(
                workload=k,
                kind=w.kind,
                replicas=len(replicas),
                requests=reqs,
                stats=summary(reqs),
                attainment=attainment(reqs, w.slo),
                goodput=goodput(reqs, w.slo),
                timeseries=timeseries(sub, sum(configs[r].max_batch for r in replicas), k),
                events=int(raw.events * mine.sum() / max(len(source), 1)),
                notes=class_notes,
                by_row=by_row,
            )
        )
    return out
