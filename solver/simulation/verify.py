"""Verification of a plan by simulation, and the re-solve that makes a failing plan meet its percentile SLOs.

``infersave plan`` (and ``solver.plan(..., verify=True)``) simulates the plan it found
(:func:`solver.simulation.fleet.simulate`, :data:`VERIFY_DURATION_S` of arrivals, seed :data:`VERIFY_SEED`;
classes sharing pooled rows together, :mod:`solver.simulation.mixed`). With percentile TTFT or E2E SLOs the
planner has already lowered every candidate's rate to its capacity curve (:mod:`solver.simulation.capacity`, a
queueing approximation); the simulation checks the plan that came out. When an online class misses an SLO — a
percentile (``ttft_percentile: 99``) or, for an SLO without one, the mean — the plan is not returned as is:

1. the rows to blame are those where the class's requests missed its SLOs (``by_row`` of a class simulated
   with others), else every row of the class;
2. an own row gets a *sustainable rate at the percentile*: the highest Poisson (or the workload's gamma)
   arrival rate one replica of that configuration serves while meeting every latency SLO of the class at its
   percentile, found by bisection on simulations of one replica (:func:`sustainable_rate`, cached per
   (configuration, lengths, arrival process, SLO)) — the point where the candidate's simulated capacity curve
   crosses the SLO, with the percentile taken at its upper 95 % confidence bound (:func:`meets_with_margin`) so
   that a rate one simulation found is not the edge another seed misses; its ``rate_rps`` (the MILP's constant
   r_c) is lowered to it — or, if it already was at most that (the fleet fails although each replica alone
   would not), by the factor :data:`DERATE`;
3. a pooled row gets a *sustainable load* (:func:`sustainable_load`): the largest share ``L`` of one replica's
   capacity, split among its classes as in the plan, at which every class meets its SLOs in a mixed
   simulation (with the same margin); every rate ``r_{k,p}`` of the pool is multiplied by ``L`` (or
   :data:`DERATE`), so the capacity row (20) admits at most that load;
4. a rate is lowered on every candidate with the same replica (GPU type, count and memory, TP, batch, offload:
   the same simulation), whatever its instance type, region or market, so the re-solve cannot pick a twin; a
   configuration that misses at every rate tried is removed;
5. the MILP is solved again on the changed table, and the new plan simulated; at most :data:`MAX_ROUNDS` rounds,
   and no round starts after :data:`BUDGET_S` seconds.

The MILP still sees constants. The plan carries the simulated attainment of the last round (``verification``:
per class and SLO the statistic checked, p50, p99, met) and a message saying what was done. A single replica
is a pessimistic model of a fleet (join-shortest-queue pools the queues of several), so lowered rates are safe.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from solver.errors import InfersaveError
from solver.simulation import arrivals as arr
from solver.simulation.capacity import COLUMN
from solver.simulation.fleet import _hardware, simulate, simulate_workload, workload_replicas
from solver.simulation.results import SLO_LIMITS
from solver.specs import Scenario, Workload

if TYPE_CHECKING:
    from solver.planning.plan import FleetRow, Plan

VERIFY_SEED = 0
"""Seed of the verification simulation (``tests`` re-simulate verified plans with other seeds)."""
VERIFY_DURATION_S = 600.0
"""Seconds of arrivals simulated to verify a plan."""
MAX_ROUNDS = 8
"""Most re-solves after a failed verification (:data:`BUDGET_S` bounds the time). A re-solve can move to
candidates whose rates are not lowered yet; ``tests/test_simulation_mixed.py``'s pooled example on the mean-model
table needs 5 rounds."""
BUDGET_S = 60.0
"""Wall seconds after which no further re-solve round starts (the plan of the last round is returned, said)."""
DERATE = 0.85
"""Factor applied to a failing candidate's rate when its single-replica sustainable rate is no lower."""
CURVE_REQUESTS = 3_000
"""Requests simulated per point of a capacity curve (p99 then rests on ~30 requests beyond it)."""
CURVE_STEPS = 8
"""Bisection steps of :func:`sustainable_rate` (the rate is known to 2^-8 of the model's rate)."""
CONFIDENCE_Z = 1.645
"""One-sided 95 % normal quantile of the margin a lowered rate keeps (:func:`meets_with_margin`)."""
_CURVES: dict[tuple[Any, ...], float] = {}


def _row_key(w: Workload, row: FleetRow) -> tuple[Any, ...]:
    return (
        row.instance_type,
        row.tp,
        row.batch_size,
        round(float(row.offload_fraction), 9),
        w.model,
        w.input_tokens,
        w.output_tokens,
        w.dtype,
        w.kv_dtype,
        w.arrival.process,
        w.arrival.cv,
        w.slo.model_dump_json(),
    )


def meets_with_margin(requests: pd.DataFrame, slo: Any) -> bool:
    """Whether ``requests`` meet every latency SLO of ``slo`` at the upper confidence bound of its percentile.

    A percentile ``q`` estimated from ``n`` requests is the order statistic near ``n·q``; its one-sided 95 % upper
    bound is the order statistic ``n·q + z·sqrt(n·q·(1 - q))`` (binomial count of requests below the true
    percentile, normal approximation, ``z`` = :data:`CONFIDENCE_Z`), i.e. the percentile
    ``q + z·sqrt(q·(1 - q)/n)``. A mean SLO is checked on the mean. Requests of a queue are correlated, so the true
    uncertainty is larger: this is the least margin a rate found by one simulation must keep, not a guarantee.
    """
    for limit, pct_field in SLO_LIMITS:
        target = getattr(slo, limit)
        if target is None:
            continue
        vals = requests[limit].to_numpy(dtype=float)
        vals = vals[~np.isnan(vals)]
        if vals.size == 0:
            return False
        pct = getattr(slo, pct_field)
        if pct is None:
            value = float(np.mean(vals))
        else:
            q = float(pct) / 100.0
            upper = min(1.0, q + CONFIDENCE_Z * math.sqrt(q * (1.0 - q) / vals.size))
            value = float(np.quantile(vals, upper, method="inverted_cdf"))
        if not value <= float(target):
            return False
    return True


def sustainable_rate(
    scenario: Scenario, w: Workload, row: FleetRow, hardware: pd.DataFrame | None = None, *, margin: bool = False
) -> float:
    """Highest arrival rate one replica of ``row`` serves meeting ``w``'s latency SLOs (module docstring, step 1).

    ``margin``: the SLOs must hold at the upper confidence bound of their percentile (:func:`meets_with_margin`),
    as the re-solve uses it; without, at the simulated percentile itself (the simulator's capacity curve).
    """
    key = (scenario.engine, scenario.offload_mode, scenario.profile, margin, *_row_key(w, row))
    hit = _CURVES.get(key)
    if hit is not None:
        return hit
    one = dataclasses.replace(row, count=1, replicas=1)
    configs = workload_replicas(scenario, w, [one], hardware)
    model_rate = float(row.rate_rps) if math.isfinite(row.rate_rps) and row.rate_rps > 0 else 1.0

    def meets(rate: float) -> bool:
        duration = CURVE_REQUESTS / rate
        source = arr.gamma(rate, w.arrival.cv, duration, w.input_tokens, w.output_tokens, seed=VERIFY_SEED + 7)
        res = simulate_workload(w, configs, source, duration_s=duration, warmup_s=duration / 10.0)
        if margin:
            return meets_with_margin(res.requests, w.slo)
        return all(a["met"] for a in res.attainment)

    return _bisect(key, meets, model_rate)


def _bisect(key: Any, meets: Callable[[float], bool], top: float) -> float:
    """Return the largest value in ``[0, top]`` that ``meets`` (``top`` when it does), by bisection; cache it."""
    lo, hi = 0.0, top
    if meets(hi):
        _CURVES[key] = hi
        return hi
    for _ in range(CURVE_STEPS):
        mid = 0.5 * (lo + hi)
        if meets(mid):
            lo = mid
        else:
            hi = mid
    _CURVES[key] = lo
    return lo


def _same_replica(frame: pd.DataFrame, row: FleetRow) -> np.ndarray:
    """Candidates whose replica is the fleet row's: same GPUs (type, count, memory), TP, batch and offload.

    Their simulations are the same, whatever the instance type, region or market (with KV offload the host
    memory counts too), so a rate lowered for one is lowered for all: the re-solve cannot pick a twin.
    """
    ref = frame.loc[frame["instance_type"] == row.instance_type]
    if ref.empty:
        return np.zeros(len(frame), dtype=bool)
    first = ref.iloc[0]
    m = np.ones(len(frame), dtype=bool)
    for col in ("gpu", "gpu_count", "gpu_memory_mib"):
        if col in frame.columns:
            m &= (frame[col] == first[col]).to_numpy()
    m &= (frame["tp"] == row.tp).to_numpy() & (frame["batch_size"] == row.batch_size).to_numpy()
    off = frame["offload_fraction"].to_numpy(dtype=float)
    m &= np.isclose(off, float(row.offload_fraction), rtol=0, atol=1e-9)
    if float(row.offload_fraction) > 0 and "host_memory_gib" in frame.columns:
        m &= (frame["host_memory_gib"] == first["host_memory_gib"]).to_numpy()
    return m


def _matches(frame: pd.DataFrame, row: FleetRow) -> np.ndarray:
    """Own (not pooled) candidates of the fleet row's class with the fleet row's replica (:func:`_same_replica`)."""
    own = frame["pool"].to_numpy(dtype=float) < 0 if "pool" in frame.columns else True
    return _same_replica(frame, row) & (frame["workload"] == row.workload).to_numpy() & own


def _pool_members(frame: pd.DataFrame, row: FleetRow) -> np.ndarray:
    """Candidates of every pool with the pooled fleet row's replica that serves its classes (all their classes)."""
    if "pool" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    names = {n for n, _ in row.split}
    pooled = frame["pool"].to_numpy(dtype=float) >= 0
    m = pooled & frame["workload"].isin(names).to_numpy() & _same_replica(frame, row)
    pools = np.unique(frame.loc[m, "pool"].to_numpy())
    return frame["pool"].isin(pools).to_numpy() & pooled


def sustainable_load(
    scenario: Scenario, row: FleetRow, mix: dict[str, float], hardware: pd.DataFrame | None = None
) -> float:
    """Highest load one replica of a pooled ``row`` carries with every class meeting its SLOs, as a share of 1.

    ``mix`` gives, per class, its rate ``r_{k,p}`` (the candidate's, req/s) and the plan's load shares are
    ``x_k / r_k`` normalised: at load ``L`` class k arrives at ``L · share_k · r_k`` (so ``Σ_k x_k / r_k = L``,
    the left side of the capacity row (20) per replica). The pool's rates are then lowered to ``L · r_k``
    (module docstring, step 2, for a pool): the mixed counterpart of :func:`sustainable_rate` with its margin
    (:func:`meets_with_margin`), by the same bisection on simulations (:mod:`solver.simulation.mixed`), cached per
    (configuration, mix, arrivals, SLOs).
    """
    from solver.planning.plan import Plan
    from solver.simulation.mixed import Component, simulate_component

    wl = {w.name: w for w in scenario.workloads}
    rates = {k: r for k, r in row.split if k in mix and r > 0}
    load = {k: rates[k] / mix[k] for k in rates if mix[k] > 0}
    total = sum(load.values())
    if total <= 0:
        return 1.0
    share = {k: v / total for k, v in load.items()}
    key = (
        scenario.engine,
        scenario.offload_mode,
        scenario.profile,
        row.instance_type,
        row.tp,
        row.batch_size,
        round(float(row.offload_fraction), 9),
        tuple(sorted((*_row_key(wl[k], row)[4:], round(share[k], 4), round(mix[k], 6)) for k in share)),
    )
    hit = _CURVES.get(key)
    if hit is not None:
        return hit
    hw = hardware if hardware is not None else _hardware(scenario)
    names = tuple(k for k in wl if k in share)

    def meets(level: float) -> bool:
        split = tuple((k, level * share[k] * mix[k]) for k in names)
        one = dataclasses.replace(row, count=1, replicas=1, split=split)
        fake = Plan(
            fleet=(one,),
            status="",
            cost_usd_per_hour=0,
            total_cost_usd=0,
            objective=0,
            gap=0,
            backend="",
            solve_seconds=0,
        )
        rate = sum(r for _, r in split)
        duration = CURVE_REQUESTS / rate
        res = simulate_component(
            scenario,
            fake,
            Component(names, (0,)),
            hw,
            duration_s=duration,
            warmup_s=duration / 10.0,
            seed=VERIFY_SEED + 7,
        )
        return all(meets_with_margin(r.requests, wl[r.workload].slo) for r in res)

    return _bisect(key, meets, 1.0)


def _attainment(sim: Any) -> dict[str, Any]:
    return {
        "met": sim.met,
        "seed": sim.seed,
        "duration_s": sim.duration_s,
        "workloads": {
            w.workload: {
                "met": w.met,
                "kind": w.kind,
                "goodput": w.goodput,
                "attainment": w.attainment,
                "makespan_h": w.makespan_h,
                "deadline_h": w.deadline_h,
            }
            for w in sim.workloads
        },
    }


def _lower_pool(
    scenario: Scenario, frame: pd.DataFrame, alive: np.ndarray, row: FleetRow, hw: pd.DataFrame
) -> list[str]:
    """Lower every rate of the pools of a failing pooled row by its sustainable load (in place); say what."""
    members = _pool_members(frame, row) & alive
    if not members.any():
        return []
    part = frame.loc[members]
    mix = dict(zip(part["workload"].astype(str), part["rate_rps"].astype(float), strict=True))
    level = sustainable_load(scenario, row, mix, hw)
    classes = "+".join(sorted(mix))
    if level <= 0:  # fails at every load tried: the configuration cannot serve this mix
        alive[members] = False
        return [f"pool {row.instance_type} b{row.batch_size} ({classes}) removed (misses at any load)"]
    factor = level if level < 1 - 1e-9 else DERATE
    frame.loc[members, "rate_rps"] = part["rate_rps"].to_numpy(dtype=float) * factor
    return [f"pool {row.instance_type} b{row.batch_size} ({classes}) rates ×{factor:.3g}"]


def verify_plan(
    plan: Plan,
    scenario: Scenario,
    cands: pd.DataFrame,
    resolve: Callable[[pd.DataFrame], Plan],
    *,
    seed: int = VERIFY_SEED,
    duration_s: float = VERIFY_DURATION_S,
    rounds: int = MAX_ROUNDS,
) -> Plan:
    """Simulate ``plan``; while an online workload misses an SLO, lower its rows' rates and re-solve (module doc).

    ``resolve`` solves the MILP again on a changed candidate table (the planner passes its own solve).
    """
    start = time.perf_counter()
    hw = _hardware(scenario)
    workloads = {w.name: w for w in scenario.workloads}
    frame = cands.reset_index(drop=True)
    alive = np.ones(len(frame), dtype=bool)  # candidates not removed by a re-solve
    sim = simulate(scenario, plan, duration_s=duration_s, seed=seed)
    notes: list[str] = []
    done = 0
    while not sim.met and done < rounds:
        failing = [r for r in sim.workloads if not r.met and r.kind == "online"]
        if not failing:
            break
        if time.perf_counter() - start > BUDGET_S:
            notes.append(f"stopped re-solving after {BUDGET_S:g} s")
            break
        done += 1
        changed: list[str] = []
        lowered: set[int] = set()  # fleet rows already acted on this round (a pool fails for several classes)
        for res in failing:
            w = workloads[res.workload]
            blamed = {b["row"] for b in res.by_row if not b["met"]}
            if not blamed:  # the class fails overall but no row alone does (or it is simulated alone): all its rows
                blamed = {j for j, row in enumerate(plan.fleet) if row.workload == w.name} | {
                    b["row"] for b in res.by_row
                }
            for j in sorted(blamed - lowered):
                lowered.add(j)
                row = plan.fleet[j]
                if row.pool >= 0:
                    changed.extend(_lower_pool(scenario, frame, alive, row, hw))
                    continue
                mask = _matches(frame, row) & alive
                if not mask.any():
                    continue
                current = float(frame.loc[mask, "rate_rps"].max())
                target = sustainable_rate(scenario, w, dataclasses.replace(row, rate_rps=current), hw, margin=True)
                if target <= 0:  # misses even at the lowest rate tried: the configuration cannot serve the class
                    alive[mask] = False
                    changed.append(f"{row.instance_type} b{row.batch_size} removed (misses at any rate)")
                    continue
                new = target if target < current * (1 - 1e-9) else current * DERATE
                frame.loc[mask, "rate_rps"] = np.minimum(frame.loc[mask, "rate_rps"].to_numpy(dtype=float), new)
                changed.append(f"{row.instance_type} b{row.batch_size} {current:.3g}→{new:.3g} req/s")
        names = ", ".join(r.workload for r in failing)
        notes.append(f"round {done}: {names} missed an SLO in simulation; lowered {'; '.join(changed)}; re-solved")
        try:
            candidate = resolve(frame[alive].reset_index(drop=True))
        except InfersaveError as exc:  # lower rates can make limits (budget, quotas) unreachable
            notes.append(f"the re-solve found no plan ({exc}); kept the plan that missed")
            break
        plan = candidate
        sim = simulate(scenario, plan, duration_s=duration_s, seed=seed)
    verdict = "every SLO met" if sim.met else "some SLO still missed"
    summary = f"verified by simulation ({duration_s:g} s, seed {seed}): {verdict}"
    if COLUMN in cands.columns:  # percentile SLOs: the planner lowered rates up front (solver/simulation/capacity.py)
        lower = cands["rate_rps"].to_numpy(dtype=float) < cands[COLUMN].to_numpy(dtype=float) * (1 - 1e-9)
        summary = (
            f"percentile SLOs: {int(lower.sum()):,} of {len(cands):,} candidates' rates lowered to their capacity "
            f"curves (queueing approximation); {summary}"
        )
    if notes:
        summary += f" after {done} re-solve(s)"
    info: dict[str, Any] = {**_attainment(sim), "rounds": done, "notes": notes, "seconds": time.perf_counter() - start}
    message = "; ".join([m for m in (plan.message, summary, *notes) if m])
    return dataclasses.replace(plan, verification=info, message=message)
