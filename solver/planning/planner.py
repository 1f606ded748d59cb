"""Plan a fleet: candidates → exact presolve → MILP (formulations) → backend → :class:`~solver.planning.plan.Plan`.

Ties between plans of equal primary objective are broken deterministically by a second, lexicographic
stage (``formulations/README.md``, "Tie-break"): the primary objective is held within 1e-9 (relative) of
stage one's value and ``sum_c w_c · (n_c + h_c)`` is minimised with ``w_c = 1 + (k_c / (m + 1))²``, ``k_c``
being the candidate's position among ``m`` in a fixed order (price, instance type, region, market, workload,
tp, batch, offload). The weights lie in (1, 2] and grow along that order, so what the stage guarantees is the
least weighted sum: among equal-cost plans it prefers earlier candidates at equal totals ``sum (n_c + h_c)``,
and a plan whose total is less than half another's always wins; it does *not* guarantee fewer instances in
general (three instances of an early candidate can beat two of a late one). The same input then gives the
same plan on every backend whenever stage one proves optimality, except for plans that tie on this weighted
sum too (or differ by less than the solver's tolerances: on very large tables the weights get close).

Offline instance counts carry no cost of their own, so every returned plan has each offline count lowered to
``ceil(h_c / H_w)``, the fewest its hours need, wherever no row gets worse (``_trim_offline_counts``).

Min-cost models with several workloads are first solved one workload at a time (both stages); the result
is kept only when it is provably a plan of the whole model (``formulations/README.md``, "Solving by
workload"), else the whole model is solved as one MILP.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import NoReturn

import numpy as np
import pandas as pd

from formulations import checks
from formulations.assemble import build
from formulations.billing import billed_horizon_h, capacity_per_instance, offline_hours
from formulations.linear import CompiledModel, ModelBlock
from formulations.model import FleetModel
from formulations.objective import TIE_BREAK_REL_TOL, lexicographic_stage
from solver.backends import Backend, SolveResult, get_backend
from solver.backends.base import relative_gap
from solver.data.catalog import Catalog
from solver.errors import InfeasibleError, SolverError, SolverLimitError
from solver.planning.candidates import CandidateSet, candidate_set
from solver.planning.plan import FleetRow, Plan
from solver.planning.presolve import reduce_candidates
from solver.specs import Scenario, SolveOptions

TIE_ORDER = ("usd_per_hour", "instance_type", "region", "market", "workload", "tp", "batch_size", "offload_fraction")
"""Candidate order that defines ``rank_c`` of the tie-break stage."""


FEASIBILITY_TOL = 1e-7
"""Relative tolerance when checking a row on plans assembled from per-workload solves: CBC's default primal
tolerance (SCIP's ``numerics/feastol`` is 1e-6), so assembled plans are held to what a whole-model solve keeps."""


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
        Apply the exact presolve :func:`solver.planning.candidates.reduce_candidates` first.
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
    blocks = _workload_blocks(fm, compiled)
    ranks = _tie_ranks(fm, compiled) if tie_break else None
    by_block, seconds = _solve_by_workload(fm, blocks, compiled, backend, options, ranks)
    x: np.ndarray | None
    if by_block is not None:
        result, x, tie_broken = by_block
    else:
        left = max(options.time_limit_s - seconds, 0.05)
        result = backend.solve(compiled, options.model_copy(update={"time_limit_s": left}))
        seconds += result.solve_seconds
        x, tie_broken = result.x, False
    if result.status not in ("optimal", "feasible") or x is None:
        _raise_for(dataclasses.replace(result, solve_seconds=seconds), scenario)
    if ranks is not None and result.status == "optimal" and not tie_broken:
        left = _tie_break_budget(result.solve_seconds, options.time_limit_s - seconds)
        if left > 0.05:
            stage = lexicographic_stage(compiled, result.objective, ranks)
            second = backend.solve(stage, options.model_copy(update={"time_limit_s": left}))
            seconds += second.solve_seconds
            if second.x is not None and second.status in ("optimal", "feasible"):
                x = second.x
    x = _trim_offline_counts(fm, compiled, x)
    return _make_plan(fm, compiled, x, result, seconds, len(cands))


TIE_BREAK_TIME_FACTOR = 3.0
"""A tie-break stage may take at most this multiple of its stage one's time (engineering bound, not a model
coefficient)."""
TIE_BREAK_MIN_S = 1.0
"""... but always at least this long (seconds)."""

Blocks = tuple[list[ModelBlock], np.ndarray]


def _workload_blocks(fm: FleetModel, compiled: CompiledModel) -> Blocks | None:
    """Split the compiled model by workload (min-cost models with two or more workloads only)."""
    n_w = len(fm.scenario.workloads)
    if compiled.sense != "min" or compiled.objective_offset != 0.0 or n_w < 2:
        return None
    code, _ = fm.workload_code()
    var_block = np.empty(compiled.n_vars, dtype=np.int64)
    var_block[fm.family("n").index] = code
    var_block[fm.family("y").index] = code
    var_block[fm.family("h").index] = code[fm.offline_idx]
    blocks, coupling = compiled.split(var_block, n_w)
    if any(b.cols.size == 0 for b in blocks):
        return None
    return blocks, coupling


def _solve_by_workload(
    fm: FleetModel,
    split: Blocks | None,
    compiled: CompiledModel,
    backend: Backend,
    options: SolveOptions,
    ranks: np.ndarray | None,
) -> tuple[tuple[SolveResult, np.ndarray, bool] | None, float]:
    """Solve workloads in groups; return ((stage-one result, x, tie-broken) or None, seconds spent).

    ``formulations/README.md``, "Solving by workload". Each group's model (its workloads' rows plus the
    relaxable coupling rows restricted to it) relaxes the whole model projected onto the group, so the sum
    of the groups' bounds bounds the whole model; when the groups' optimal plans together keep the coupling
    rows, they form an optimal plan. Offline counts are first trimmed to ``ceil(h_c / H_w)`` (same cost,
    checked against every row). Groups that use a broken relaxable row are merged and re-solved; any other
    broken row gives ``None``. Stage two minimises each group's tie-break sum with its cost held within its
    share of the tolerance (shares add up to ``tol``), and is kept when the groups' plans together keep the
    coupling rows. Otherwise ``None`` (or, for stage two, no tie-break yet): the caller solves the whole model.
    """
    if split is None:
        return None, 0.0
    workload_blocks, coupling = split
    relaxable = compiled.relaxable_rows(coupling)
    groups: list[tuple[int, ...]] = [(k,) for k in range(len(workload_blocks))]
    solved: dict[tuple[int, ...], tuple[ModelBlock, SolveResult]] = {}
    seconds = 0.0
    while True:
        x = np.zeros(compiled.n_vars)
        for g in groups:
            if g not in solved:
                left = options.time_limit_s - seconds
                if left <= 0.05:
                    return None, seconds
                blk = _group_model(compiled, workload_blocks, g, coupling, relaxable)
                r = backend.solve(blk.model, options.model_copy(update={"time_limit_s": left}))
                seconds += r.solve_seconds
                if r.status != "optimal" or r.x is None:
                    return None, seconds
                solved[g] = (blk, r)
            blk, r = solved[g]
            x[blk.cols] = r.x
        x = _trim_offline_counts(fm, compiled, x)
        broken = coupling[compiled.row_violation(x, coupling) > FEASIBILITY_TOL]
        if broken.size == 0:
            break
        merged = _merge_groups(compiled, groups, workload_blocks, broken, relaxable, x)
        if merged is None:
            return None, seconds
        groups = merged
    blocks = [solved[g][0] for g in groups]
    results = [solved[g][1] for g in groups]
    bounds = [min(r.bound, r.objective) if math.isfinite(r.bound) else r.objective for r in results]
    stage_one_seconds = [r.solve_seconds for r in results]
    value = float(compiled.objective @ x)
    bound = float(sum(bounds))
    gap = relative_gap(value, bound)
    if not gap <= options.relative_gap * 1.000001 + 1e-12:
        return None, seconds
    result = SolveResult("optimal", x, value, bound, gap, backend.name, seconds)
    if ranks is None:
        return (result, x, False), seconds
    tol = TIE_BREAK_REL_TOL * max(1.0, abs(value))
    v_w = np.array([float(blk.model.objective @ x[blk.cols]) for blk in blocks])
    share = np.maximum(1.0, np.abs(v_w))
    share = tol * share / share.sum()
    x2 = x.copy()
    for blk, cap, first in zip(blocks, v_w + share, stage_one_seconds, strict=True):
        left = _tie_break_budget(first, options.time_limit_s - seconds)
        if left <= 0.05:
            return (result, x, False), seconds
        stage = lexicographic_stage(blk.model, cap, ranks[blk.cols], rel_tol=0.0)
        r2 = backend.solve(stage, options.model_copy(update={"time_limit_s": left}))
        seconds += r2.solve_seconds
        if r2.x is None or r2.status not in ("optimal", "feasible"):
            return (result, x, False), seconds
        x2[blk.cols] = r2.x
    cost = float(compiled.objective @ x2)
    if compiled.rows_hold(x2, coupling, FEASIBILITY_TOL) and cost <= value + tol + FEASIBILITY_TOL * max(1.0, value):
        return (dataclasses.replace(result, solve_seconds=seconds), x2, True), seconds
    return (result, x, False), seconds


def _group_model(
    compiled: CompiledModel,
    workload_blocks: list[ModelBlock],
    group: tuple[int, ...],
    coupling: np.ndarray,
    relaxable: np.ndarray,
) -> ModelBlock:
    """Return the sub-model of a group of workloads (own rows, coupling rows wholly on them, relaxable ones cut).

    A relaxable coupling row (quota, budget: ``sum a·x <= b``, ``a >= 0``) restricted to the group's variables is
    implied by the full row, so the group's model stays a relaxation of the whole model projected onto it.
    """
    cols = np.concatenate([workload_blocks[k].cols for k in group])
    own = np.concatenate([workload_blocks[k].rows for k in group])
    in_group = np.zeros(compiled.n_vars, dtype=bool)
    in_group[cols] = True
    lengths = np.diff(compiled.indptr)
    row_of = np.repeat(np.arange(compiled.n_rows), lengths)
    hits = np.bincount(row_of[in_group[compiled.indices]], minlength=compiled.n_rows)
    inside = coupling[(hits[coupling] == lengths[coupling]) & (lengths[coupling] > 0)]
    touching = relaxable[hits[relaxable] > 0]
    rows = np.unique(np.concatenate([own, inside, touching]))
    return compiled.restrict(cols, rows)


def _merge_groups(
    compiled: CompiledModel,
    groups: list[tuple[int, ...]],
    workload_blocks: list[ModelBlock],
    broken: np.ndarray,
    relaxable: np.ndarray,
    x: np.ndarray,
) -> list[tuple[int, ...]] | None:
    """Merge the groups that use a broken coupling row; ``None`` when that cannot help (solve the whole model).

    Only relaxable rows are repaired this way: a broken row of another kind (``min_instances``), or a merge that
    would leave a single group, hands over to the whole-model solve.
    """
    if np.setdiff1d(broken, relaxable).size or len(groups) < 2:
        return None
    group_of = np.empty(compiled.n_vars, dtype=np.int64)
    for gi, g in enumerate(groups):
        for k in g:
            group_of[workload_blocks[k].cols] = gi
    parent = list(range(len(groups)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in broken:
        cols = compiled.indices[compiled.indptr[r] : compiled.indptr[r + 1]]
        active = np.unique(group_of[cols[x[cols] > 0]])
        for gi in active[1:]:
            parent[find(int(gi))] = find(int(active[0]))
    merged: dict[int, list[int]] = {}
    for gi, g in enumerate(groups):
        merged.setdefault(find(gi), []).extend(g)
    out = [tuple(sorted(m)) for m in merged.values()]
    if len(out) == len(groups) or len(out) < 2:
        return None
    return sorted(out)


def _tie_break_budget(stage_one_seconds: float, left: float) -> float:
    """Time for a tie-break stage: at most TIE_BREAK_TIME_FACTOR x its stage one (at least TIE_BREAK_MIN_S).

    The stage only picks among plans of equal cost, so it must not cost many times the solve itself; when it
    stops at this budget its best plan is still kept if it is feasible (equal cost, ties possibly not canonical).
    """
    return min(left, max(TIE_BREAK_MIN_S, TIE_BREAK_TIME_FACTOR * stage_one_seconds))


def _trim_offline_counts(fm: FleetModel, compiled: CompiledModel, x: np.ndarray) -> np.ndarray:
    """Return ``x`` with offline counts lowered to ``ceil(h_c / H_w)`` where no row of the model gets worse.

    Lowering ``n_c`` keeps the cost and every row but a ``min_instances`` floor: all offline counts are
    trimmed when that keeps every row's violation; else only those of types without a floor; else none.
    """
    off = fm.offline_idx
    if off.size == 0:
        return x
    code, names = fm.workload_code()
    wl = fm.workloads
    per_w = np.array([offline_hours(fm.scenario, wl[nm])[0] if wl[nm].kind == "offline" else 0.0 for nm in names])
    hours = per_w[code[off]]
    n_idx = fm.family("n").index[off]
    h = x[fm.family("h").index]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(hours > 0, np.ceil(np.maximum(h, 0.0) / hours - 1e-9), x[n_idx])
    target = np.minimum(x[n_idx], np.maximum(need, compiled.lb[n_idx]))
    if np.array_equal(target, x[n_idx]):
        return x
    rows = np.arange(compiled.n_rows)
    before = compiled.row_violation(x, rows)
    floors = set(fm.scenario.limits.min_instances)
    no_floor = ~np.isin(fm.cands["instance_type"].to_numpy()[off], list(floors))
    for mask in (np.ones(off.size, dtype=bool), no_floor):
        out = x.copy()
        out[n_idx[mask]] = target[mask]
        if np.all(compiled.row_violation(out, rows) <= before + 1e-12):
            return out
    return x


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
    """Raise InfeasibleError naming the rules and filters when a workload (or a min_instances type) has no candidate.

    The removal counts are keyed by the names of :mod:`formulations.checks`, which also give each fix.
    """
    present = set(table["workload"]) if not table.empty else set()
    for index, w in enumerate(scenario.workloads):
        if w.name in present:
            continue
        counts: dict[str, int] = {}
        if info is not None:
            counts.update({k: v for k, v in info.dropped.get(w.name, {}).items() if v})
        for k, v in removed.get(w.name, {}).items():
            counts[k] = counts.get(k, 0) + v
        considered = info.considered.get(w.name) if info is not None else None
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        what = ", ".join(f"{v} by {k}" for k, v in ranked)
        total = f"all {considered} candidate configurations" if considered is not None else "every candidate"
        names = [k for k, _v in ranked]
        if "search.tp_degrees" in names:  # the listed degrees left nothing: name that field first
            names.insert(0, names.pop(names.index("search.tp_degrees")))
        fixes = [f for f in (checks.hint(k, index) for k in names) if f]
        raise InfeasibleError(
            f"workload {w.name!r}: {total} were removed ({what or 'no instance offered'})",
            list(dict.fromkeys(fixes)) or ["allow more instance types, regions or markets"],
            diagnosis={"workload": w.name, "removed": counts, "considered": considered},
        )
    have = set(table["instance_type"]) if not table.empty else set()
    for itype, floor in scenario.limits.min_instances.items():
        if floor > 0 and itype not in have:
            raise InfeasibleError(
                f"limits.min_instances: {itype} needs at least {floor} instance(s) but no candidate of that type "
                "meets the SLOs and memory of any workload",
                [f"remove {itype} from limits.min_instances, or relax the workloads it should serve"],
                diagnosis={"min_instances": itype},
            )


def _raise_for(result: SolveResult, scenario: Scenario) -> NoReturn:
    """Turn a solve without a plan into the matching error."""
    if result.status == "infeasible":
        set_limits = [fl.path for fl in checks.fleet_limits_set(scenario.limits)]
        if any(w.deadline_h is not None for w in scenario.workloads):
            set_limits.append("workloads.*.deadline_h")
        raise InfeasibleError(
            f"every workload has candidates, but no fleet meets all demands within {' / '.join(set_limits)}",
            [f"raise {' / '.join(set_limits)}"],
            diagnosis={"limits": set_limits},
        )
    if result.status == "no_solution":
        raise SolverLimitError(
            f"{result.backend} stopped after {result.solve_seconds:.1f} s without a plan", option="time_limit_s"
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
    billed = billed_horizon_h(scenario)
    names = cands["workload"].to_numpy()
    # workload utilisation: demand over the full capacity of its rows
    util: dict[str, float] = {}
    for name, w in wl.items():
        rows = used[names[used] == name]
        if w.kind == "online":
            capacity = float((full[rows] * n[rows]).sum())
            util[name] = float(w.rate_rps or 0.0) / capacity if capacity > 0 else math.nan
        else:
            work = float((cap[rows] * h_all[rows]).sum())
            util[name] = float(w.requests or 0) / work if work > 0 else math.nan
    fleet = []
    sub = cands.iloc[used]
    order = used[np.asarray(sub.reset_index(drop=True).sort_values(["workload", *TIE_ORDER], kind="stable").index)]
    picked = cands.iloc[order]
    columns = {
        k: picked[k].tolist()
        for k in (
            "workload",
            "instance_type",
            "market",
            "region",
            "tp",
            "batch_size",
            "offload_fraction",
            "usd_per_hour",
            "ttft_ms",
            "tpot_ms",
            "tps",
            "replicas",
            "e2e_s",
            "rate_rps",
        )
    }
    gpus = picked["gpu"].tolist() if "gpu" in picked.columns else [""] * len(order)
    for j, i in enumerate(order):
        w = wl[str(columns["workload"][j])]
        online = w.kind == "online"
        price = float(columns["usd_per_hour"][j])
        hours = math.nan if online else float(h_all[i])
        fleet.append(
            FleetRow(
                workload=str(columns["workload"][j]),
                instance_type=str(columns["instance_type"][j]),
                market=str(columns["market"][j]),
                region=str(columns["region"][j]),
                count=int(n[i]),
                tp=int(columns["tp"][j]),
                batch_size=int(columns["batch_size"][j]),
                offload_fraction=float(columns["offload_fraction"][j]),
                usd_per_hour=price,
                ttft_ms=float(columns["ttft_ms"][j]),
                tpot_ms=float(columns["tpot_ms"][j]),
                tps=float(columns["tps"][j]),
                utilisation=util[w.name],
                kind=w.kind,
                gpu=str(gpus[j]),
                replicas=int(columns["replicas"][j]),
                e2e_s=float(columns["e2e_s"][j]),
                rate_rps=float(columns["rate_rps"][j]),
                capacity_rps=float(full[i] * n[i]),
                output_tokens_per_s=float(full[i] * n[i] * w.output_tokens),
                instance_hours=hours,
                cost_usd=price * n[i] * billed if online else price * hours,
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
