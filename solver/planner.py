"""Plan a fleet: candidates → exact presolve → MILP (formulations) → backend → :class:`~solver.plan.Plan`.

Ties between plans of equal primary objective are broken deterministically by a second, lexicographic
stage (``formulations/README.md``, "Tie-break"): the primary objective is held within 1e-9 (relative) of
stage one's value and ``sum_c w_c · (n_c + h_c)`` is minimised with ``w_c = 1 + (k_c / (m + 1))²``, ``k_c``
being the candidate's position among ``m`` in a fixed order (price, instance type, region, market, workload,
tp, batch, offload): fewer instances first, then earlier candidates. The same input then gives the same plan
on every backend whenever stage one proves optimality, except for plans that tie on this weighted sum too
(or differ by less than the solver's tolerances: on very large tables the weights get close).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NoReturn

import numpy as np
import pandas as pd

from formulations.assemble import build
from formulations.bigm import capacity_per_instance
from formulations.linear import CompiledModel
from formulations.model import FleetModel
from formulations.objective import lexicographic_stage
from solver.backends import SolveResult, get_backend
from solver.candidates import CandidateSet, candidate_set, reduce_candidates
from solver.catalog import Catalog
from solver.errors import InfeasibleError, SolverError, SolverLimitError
from solver.plan import FleetRow, Plan
from solver.specs import Scenario, SolveOptions

TIE_ORDER = ("usd_per_hour", "instance_type", "region", "market", "workload", "tp", "batch_size", "offload_fraction")
"""Candidate order that defines ``rank_c`` of the tie-break stage."""


def build_candidates(scenario: Scenario, catalog: Catalog | None = None) -> pd.DataFrame:
    """Return the scenario's candidate table (one row per workload × offer × TP × batch × offload).

    Parameters
    ----------
    scenario
        The planning problem.
    catalog
        A catalog to use instead of ``scenario.catalog``.
    """
    return candidate_set(scenario, catalog).frame


def plan(scenario: Scenario, options: SolveOptions | None = None, catalog: Catalog | None = None) -> Plan:
    """Plan the cheapest (or highest-throughput) fleet that meets every workload's SLOs and demand.

    Parameters
    ----------
    scenario
        Workloads, catalog filters, limits, objective and search space.
    options
        Backend, time limit, relative gap, threads, verbosity (default :class:`SolveOptions`).
    catalog
        A catalog to use instead of ``scenario.catalog``.

    Returns
    -------
    Plan
        Status ``optimal`` or ``feasible`` (stopped at the time limit with a plan and its gap).

    Raises
    ------
    InfeasibleError
        No plan exists; the message names what blocked (rows removed per reason, or the limits).
    SolverLimitError
        The time limit was reached before any plan was found.
    SolverError
        The backend failed or is unavailable.
    """
    cs = candidate_set(scenario, catalog)
    return solve_candidates(cs.frame, scenario, options, candidate_info=cs)


def solve_candidates(
    cands: pd.DataFrame,
    scenario: Scenario,
    options: SolveOptions | None = None,
    *,
    reduce: bool = True,
    tie_break: bool | None = None,
    candidate_info: CandidateSet | None = None,
) -> Plan:
    """Solve the fleet MILP on a given candidate table (the planner's core; used by tests and benchmarks).

    Parameters
    ----------
    cands
        Candidate table with :data:`formulations.CANDIDATE_COLUMNS`.
    scenario
        The scenario the candidates belong to.
    options
        Solver options.
    reduce
        Apply the exact presolve :func:`solver.candidates.reduce_candidates` first.
    tie_break
        Run the lexicographic tie-break stage after a proven optimum (default: ``options.tie_break``).
    candidate_info
        What was dropped while enumerating (for the infeasibility message).
    """
    options = options or SolveOptions()
    if tie_break is None:
        tie_break = options.tie_break
    removed: Mapping[str, Mapping[str, int]] = {}
    table = cands
    if reduce:
        table, removed = reduce_candidates(cands, scenario)
    _check_coverage(table, scenario, removed, candidate_info)
    table = table.reset_index(drop=True)
    fm = build(table, scenario)
    compiled = fm.lm.compile(singletons_as_bounds=True)
    backend = get_backend(options.backend, compiled)
    result = backend.solve(compiled, options)
    seconds = result.solve_seconds
    if result.status not in ("optimal", "feasible") or result.x is None:
        _raise_for(result, scenario)
    x = result.x
    if tie_break and result.status == "optimal":
        left = options.time_limit_s - seconds
        if left > 0.05:
            stage = lexicographic_stage(compiled, result.objective, _tie_ranks(fm, compiled))
            second = backend.solve(stage, options.model_copy(update={"time_limit_s": left}))
            seconds += second.solve_seconds
            if second.x is not None and second.status in ("optimal", "feasible"):
                x = second.x
    return _make_plan(fm, compiled, x, result, seconds, len(cands))


def _tie_ranks(fm: FleetModel, compiled: CompiledModel) -> np.ndarray:
    """Secondary objective coefficients: ``rank_c`` on ``n_c`` and on ``h_c``."""
    order = fm.cands.sort_values(list(TIE_ORDER), kind="stable").index.to_numpy()
    rank = np.empty(len(order), dtype=float)
    rank[order] = 1.0 + (np.arange(1, len(order) + 1, dtype=float) / (len(order) + 1)) ** 2
    coef = np.zeros(compiled.n_vars)
    coef[fm.family("n").index] = rank
    h = fm.family("h")
    coef[h.index] = rank[fm.offline_idx]
    return coef


def _check_coverage(
    table: pd.DataFrame,
    scenario: Scenario,
    removed: Mapping[str, Mapping[str, int]],
    info: CandidateSet | None,
) -> None:
    """Raise InfeasibleError naming the filters when a workload (or a min_instances type) has no candidate."""
    present = set(table["workload"]) if not table.empty else set()
    for w in scenario.workloads:
        if w.name in present:
            continue
        counts: dict[str, int] = {}
        if info is not None:
            counts.update({k: v for k, v in info.dropped.get(w.name, {}).items() if v})
        for k, v in removed.get(w.name, {}).items():
            counts[k] = counts.get(k, 0) + v
        considered = info.considered.get(w.name) if info is not None else None
        what = ", ".join(f"{v} by {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        total = f"all {considered} candidate configurations" if considered is not None else "every candidate"
        raise InfeasibleError(
            f"workload {w.name!r}: {total} were removed ({what or 'no instance offered'}); "
            "to fix: relax the SLO that removes most, allow larger instances, regions or markets",
            diagnosis={"workload": w.name, "removed": counts, "considered": considered},
        )
    have = set(table["instance_type"]) if not table.empty else set()
    for itype, floor in scenario.limits.min_instances.items():
        if floor > 0 and itype not in have:
            raise InfeasibleError(
                f"limits.min_instances: {itype} needs at least {floor} instance(s) but no candidate of that type "
                "meets the SLOs and memory of any workload",
                diagnosis={"min_instances": itype},
            )


def _raise_for(result: SolveResult, scenario: Scenario) -> NoReturn:
    """Turn a solve without a plan into the matching error."""
    if result.status == "infeasible":
        lim = scenario.limits
        set_limits = [
            name
            for name, value in (
                ("budget_usd_per_hour", lim.budget_usd_per_hour),
                ("budget_usd", lim.budget_usd),
                ("max_instances", lim.max_instances),
                ("max_instances_per_family", lim.max_instances_per_family),
                ("max_instances_per_region", lim.max_instances_per_region),
                ("max_total_instances", lim.max_total_instances),
                ("min_instances", lim.min_instances),
            )
            if value not in (None, {}, 0)
        ]
        hint = f"limits.{' / limits.'.join(set_limits)}" if set_limits else "the offline deadlines"
        raise InfeasibleError(
            f"every workload has candidates, but no fleet meets all demands within {hint}; to fix: raise them",
            diagnosis={"limits": set_limits},
        )
    if result.status == "no_solution":
        raise SolverLimitError(
            f"{result.backend} stopped after {result.solve_seconds:.1f} s without a plan; to fix: raise --time-limit"
        )
    if result.status == "unbounded":
        raise SolverError(f"{result.backend}: the model is unbounded (set a budget or quota)")
    raise SolverError(f"{result.backend} failed: {result.message or result.status}")


def _make_plan(
    fm: FleetModel, compiled: CompiledModel, x: np.ndarray, result: SolveResult, seconds: float, n_cands: int
) -> Plan:
    """Read the plan off the variable values."""
    scenario = fm.scenario
    cands = fm.cands
    n = np.rint(x[fm.family("n").index]).astype(np.int64)
    h_all = np.zeros(len(cands))
    hfam = fm.family("h")
    h_vals = x[hfam.index]
    if hfam.integer:
        h_vals = np.rint(h_vals)
    h_all[fm.offline_idx] = np.maximum(h_vals, 0.0)
    used = np.flatnonzero(n > 0)
    wl = fm.workloads
    cap = capacity_per_instance(cands, scenario)
    full = cands["rate_rps"].to_numpy(dtype=float) * cands["replicas"].to_numpy(dtype=float)
    horizon = scenario.effective_horizon_h
    # workload utilisation: demand over the full capacity of its rows
    util: dict[str, float] = {}
    for name, w in wl.items():
        rows = used[cands["workload"].to_numpy()[used] == name]
        if w.kind == "online":
            capacity = float((full[rows] * n[rows]).sum())
            util[name] = float(w.rate_rps or 0.0) / capacity if capacity > 0 else math.nan
        else:
            work = float((cap[rows] * h_all[rows]).sum())
            util[name] = float(w.requests or 0) / work if work > 0 else math.nan
    fleet = []
    order = sorted(used, key=lambda i: (cands.at[i, "workload"], *(cands.at[i, k] for k in TIE_ORDER)))
    for i in order:
        r = cands.iloc[i]
        w = wl[str(r["workload"])]
        online = w.kind == "online"
        price = float(r["usd_per_hour"])
        hours = math.nan if online else float(h_all[i])
        fleet.append(
            FleetRow(
                workload=str(r["workload"]),
                instance_type=str(r["instance_type"]),
                market=str(r["market"]),
                region=str(r["region"]),
                count=int(n[i]),
                tp=int(r["tp"]),
                batch_size=int(r["batch_size"]),
                offload_fraction=float(r["offload_fraction"]),
                usd_per_hour=price,
                ttft_ms=float(r["ttft_ms"]),
                tpot_ms=float(r["tpot_ms"]),
                tps=float(r["tps"]),
                utilisation=util[w.name],
                kind=w.kind,
                gpu=str(r.get("gpu", "")),
                replicas=int(r["replicas"]),
                e2e_s=float(r["e2e_s"]),
                rate_rps=float(r["rate_rps"]),
                capacity_rps=float(full[i] * n[i]),
                output_tokens_per_s=float(full[i] * n[i] * w.output_tokens),
                instance_hours=hours,
                cost_usd=price * n[i] * horizon if online else price * hours,
            )
        )
    per_hour = float(sum(r.usd_per_hour * r.count for r in fleet))
    total = float(sum(r.cost_usd for r in fleet))
    objective = float(compiled.objective @ x + compiled.objective_offset)
    return Plan(
        fleet=tuple(fleet),
        status=result.status,
        cost_usd_per_hour=per_hour,
        total_cost_usd=total,
        objective=objective,
        gap=result.gap,
        backend=result.backend,
        solve_seconds=seconds,
        objective_name=scenario.objective,
        horizon_h=horizon,
        model_size={**fm.lm.summary(), "compiled_rows": compiled.n_rows},
        candidates=n_cands,
    )
