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
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from formulations import checks
from formulations.assemble import build
from formulations.billing import offline_hours
from formulations.linear import CompiledModel
from formulations.model import FleetModel
from formulations.objective import lexicographic_stage
from formulations.spot import TypeSet
from solver.backends import Backend, SolveResult, Status, available_backends, get_backend
from solver.backends.base import relative_gap, within_gap
from solver.data.catalog import Catalog
from solver.data.scenario import check_references
from solver.errors import InfeasibleError, SolverError, SolverLimitError
from solver.planning import decompose
from solver.planning.candidates import (
    CandidateSet,
    candidate_set,
    cheapest_offers,
    offers,
    shared_candidates,
    workload_candidates,
)
from solver.planning.classes import expand
from solver.planning.decompose import Clock
from solver.planning.plan import TIE_ORDER, Plan
from solver.planning.polish import polish_continuous
from solver.planning.presolve import OFFER_WEIGHT, reduce_candidates
from solver.specs import Scenario, SolveOptions
from solver.tolerances import ACTIVITY_NOISE, DEMAND_NOISE, ROUNDING_TOL, SOLUTION_TOL, TIE_BREAK_GAP, ceil_int


def plan(
    scenario: Scenario, options: SolveOptions | None = None, catalog: Catalog | None = None, *, verify: bool = False
) -> Plan:
    """Plan the cheapest (or highest-throughput) fleet that meets every workload's SLOs and demand.

    Parameters
    ----------
    scenario
        Workloads, catalog filters, limits, objective and search space.
    options
        Backend, time limit, relative gap, threads, verbosity (default :class:`SolveOptions`).
    catalog
        A catalog to use instead of ``scenario.catalog``.
    verify
        Simulate the plan and, while a workload misses an SLO (percentile or mean), lower the failing
        candidates' rates and solve again (:mod:`solver.simulation.verify`); ``infersave plan`` does by default.

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
    classes = expand(scenario)  # one class per size bucket (a plain workload is its own class)
    sc = classes.scenario
    pooled = pd.DataFrame()
    from solver.simulation import capacity  # percentile SLOs, when verifying: rates read off capacity curves

    curves = verify and capacity.curved(sc)
    if classes.shares or curves:  # shared replicas: pools are formed from every class's full candidate table
        cs = candidate_set(sc, catalog, cheapest=True)
        if classes.shares:  # a verified plan may be re-solved with lowered rates: keep the pools it can bring back
            pooled = shared_candidates(cs.frame, sc, classes.groups(), across=False if verify else None)
    known: dict[str, Any]  # what the candidate table's making found, for the solve's messages and counts
    if curves:
        parts = [cs.frame.assign(pool=-1), pooled] if not pooled.empty else [cs.frame]
        frame, presolved = capacity.apply(pd.concat(parts, ignore_index=True), sc), False
        known = {"candidate_info": cs, "enumerated": _enumerated(cs.frame) + len(pooled)}
    elif pooled.empty:  # no pool: enumerate and presolve one workload at a time (a fraction of the memory)
        red = reduced_candidates(sc, catalog, across_types=False if verify else None)
        frame, presolved = red.table, True
        known = {"candidate_info": red.info, "removed": red.removed, "enumerated": red.enumerated}
    else:  # pooled rows next to every class's own candidates (the presolve keeps pooled rows as they are)
        frame, presolved = pd.concat([cs.frame.assign(pool=-1), pooled], ignore_index=True), False
        known = {"candidate_info": cs, "enumerated": _enumerated(cs.frame) + len(pooled)}
    result = solve_candidates(frame, sc, options, reduce=not presolved, **known)
    if verify:  # simulate the plan; re-solve with lower rates while an SLO is missed (solver/simulation/verify.py)
        from solver.simulation.verify import verify_plan

        result = verify_plan(result, sc, frame, lambda f: solve_candidates(f, sc, options, **known))
    return result


@dataclasses.dataclass(frozen=True)
class ReducedCandidates:
    """The presolved candidate table, built one workload at a time.

    Attributes
    ----------
    table
        The candidates kept by :func:`~solver.planning.presolve.reduce_candidates`, workload after workload.
    removed
        Per workload, rows the presolve removed per reason.
    info
        What the enumeration dropped and considered (its ``frame`` is empty: the full table is never held).
    enumerated
        Candidates enumerated before the presolve (the plan's ``candidates``).
    """

    table: pd.DataFrame
    removed: dict[str, dict[str, int]]
    info: CandidateSet
    enumerated: int


def reduced_candidates(
    scenario: Scenario, catalog: Catalog | None = None, *, across_types: bool | None = None
) -> ReducedCandidates:
    """Enumerate and presolve the candidates one workload at a time (the same table as on the whole at once).

    The presolve is per candidate (rules) and per dominance group, and every group lies in one workload
    (:data:`~solver.planning.presolve.DOMINANCE_KEY`), so reducing each workload's table alone keeps the same rows
    in the same order as reducing their concatenation; peak memory is one workload's full table plus the
    reduced ones, not the full table of every workload (docs/benchmarks.md, peak RSS). ``across_types`` is the
    presolve's (``False``: dominance within one offer only, for a table whose rates may still be lowered).
    """
    if catalog is None:
        check_references(scenario)
    off = cheapest_offers(offers(scenario, catalog), scenario)  # exact: README "Exact presolve", step 0
    frames, removed, dropped, considered, enumerated = [], {}, {}, {}, 0
    for i, w in enumerate(scenario.workloads):
        table, drop, n = workload_candidates(w, off, scenario, i)
        dropped[w.name], considered[w.name] = drop, n
        enumerated += _enumerated(table)
        kept, gone = reduce_candidates(table, scenario, across_types=across_types)
        removed.update(gone)
        frames.append(kept)
        del table
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ReducedCandidates(frame, removed, CandidateSet(pd.DataFrame(), dropped, considered), enumerated)


def _enumerated(table: pd.DataFrame) -> int:
    """Candidates a table stands for: its rows, each counted for every offer it represents (``cheapest_offers``)."""
    if OFFER_WEIGHT in table.columns:
        return int(table[OFFER_WEIGHT].to_numpy(dtype=np.int64).sum())
    return len(table)


def solve_candidates(
    cands: pd.DataFrame,
    scenario: Scenario,
    options: SolveOptions | None = None,
    *,
    reduce: bool = True,
    tie_break: bool | None = None,
    candidate_info: CandidateSet | None = None,
    nogoods: Sequence[TypeSet] = (),
    removed: Mapping[str, Mapping[str, int]] | None = None,
    enumerated: int | None = None,
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
    nogoods
        Sets of (workload, instance type) pairs the plan may not use exactly (``plan --top-k``, README row (28)).
    removed
        With ``reduce=False`` on an already presolved table: what its presolve removed (same message).
    enumerated
        Candidates enumerated before any presolve (default: the rows of ``cands``), reported in the plan.
    """
    options = options or SolveOptions()
    if tie_break is None:
        tie_break = options.tie_break
    clock = Clock(options.time_limit_s)
    removed = removed or {}
    table = cands
    if reduce:  # pooled rows (shared replicas) are kept as they are: the presolve's dominance is per class
        pooled = cands["pool"].to_numpy() >= 0 if "pool" in cands.columns else np.zeros(len(cands), dtype=bool)
        table, removed = reduce_candidates(cands[~pooled], scenario, across_types=False if nogoods else None)
        if pooled.any():
            table = pd.concat([table, cands[pooled]], ignore_index=True)
    n_cands = len(cands) if enumerated is None else enumerated
    _check_coverage(table, scenario, removed, candidate_info)
    table = table.reset_index(drop=True)
    fm = build(table, scenario, nogoods)
    compiled = fm.lm.compile(singletons_as_bounds=True)
    backend = get_backend(options.backend, compiled)
    checked = _CheckedSolve(backend, options, clock)
    ranks = _tie_ranks(fm, compiled) if tie_break else None

    def trim(x: np.ndarray) -> np.ndarray:
        return _trim_offline_counts(fm, compiled, x)

    def clean(x: np.ndarray) -> np.ndarray:
        """Make a solver answer exact: integers rounded, offline counts trimmed, short demand repaired."""
        return _repair_demand(compiled, trim(_round_integers(compiled, x)))

    split = decompose.workload_blocks(fm, compiled)
    by_block = decompose.solve_by_workload(compiled, split, checked, trim, clock, options.relative_gap, ranks, clean)
    x: np.ndarray | None
    if by_block is not None:
        result, x, tie_broken = by_block
    else:
        result = checked(compiled, clock.left())
        x, tie_broken = result.x, False
    if result.status not in ("optimal", "feasible") or x is None:
        _raise_for(dataclasses.replace(result, solve_seconds=clock.spent()), scenario)
    answers = [x]  # the stage-one answer, kept as the fallback of the tie-break
    if ranks is not None and result.status == "optimal" and not tie_broken:
        left = decompose.tie_break_budget(result.solve_seconds, clock.left())
        if left > decompose.MIN_SOLVE_S:
            exact = float(compiled.objective @ clean(x) + compiled.objective_offset)
            cap = max(result.objective, exact) if compiled.sense == "min" else min(result.objective, exact)
            second = checked(lexicographic_stage(compiled, cap, ranks), left, True, clean(x))
            if second.x is not None and second.status in ("optimal", "feasible"):
                answers.insert(0, second.x)
            if second.status != "optimal":
                result = dataclasses.replace(result, message=decompose.TIE_BREAK_CUT_NOTE.format(cut=1, n=1))
    problems: list[str] = []
    for candidate in answers:
        for point in _polished(compiled, _round_integers(compiled, candidate), ranks):
            final = _repair_demand(compiled, trim(point))
            problems = _final_violations(compiled, final)
            if not problems:
                note = "; ".join(filter(None, [checked.note, result.message]))
                return Plan.from_solution(fm, compiled, final, result, clock.spent(), n_cands, note)
    # Still short (online counts cannot be repaired at equal cost): solve once more with the short demand rows'
    # right-hand sides raised past the solver's tolerance, and check the answer against the original rows.
    tight = _tighten_short_demand(compiled, final)
    if tight is not None:
        again = checked(tight, clock.left())
        if again.x is not None and again.status in ("optimal", "feasible"):
            final = _repair_demand(compiled, trim(_round_integers(compiled, again.x)))
            problems = _final_violations(compiled, final)
            if not problems:
                note = "; ".join(filter(None, [checked.note, "demand rows tightened by the solver's tolerance"]))
                # the tightened model is a restriction: only the first solve's bound bounds the original model
                value = float(compiled.objective @ final + compiled.objective_offset)
                gap = relative_gap(value, result.bound)
                status: Status = "optimal" if within_gap(gap, options.relative_gap) else "feasible"
                honest = dataclasses.replace(again, status=status, bound=result.bound, gap=gap)
                return Plan.from_solution(fm, compiled, final, honest, clock.spent(), n_cands, note)
    raise SolverError(f"{result.backend} returned a plan that breaks the model: {'; '.join(problems[:3])}")


def _tighten_short_demand(compiled: CompiledModel, x: np.ndarray) -> CompiledModel | None:
    """Return ``compiled`` with the demand rows ``x`` leaves short raised by ``2 · SOLUTION_TOL · max(1, |lo|)``.

    ``None`` when no demand row is short (something else broke: nothing to tighten).
    """
    rows = _demand_rows(compiled)
    if rows.size == 0:
        return None
    short = rows[_short(compiled, compiled.row_activity(x), rows)]
    if short.size == 0:
        return None
    lo = compiled.row_lo.copy()
    lo[short] += 2.0 * SOLUTION_TOL * np.maximum(1.0, np.abs(lo[short]))
    return dataclasses.replace(compiled, row_lo=lo)


DEMAND_BLOCKS = ("demand.online", "demand.offline_work")
"""Row blocks that must hold exactly (up to :data:`DEMAND_NOISE`): no plan may serve less than asked."""


class _CheckedSolve:
    """The planner's one solve: the chosen backend (whose answers are checked), then another on a doubtful answer.

    Every call draws on the plan's :class:`~solver.planning.decompose.Clock`. When the chosen backend returns a
    solution that breaks its model (status ``error``), or claims the model infeasible (a claim no solution can
    check; a tolerance issue can make one up), the model is solved again with the next available backend in the
    time left. An answer with a checked plan wins, and ``note`` says so (it ends up in the plan's message).
    """

    def __init__(self, backend: Backend, options: SolveOptions, clock: Clock) -> None:
        self.backend, self.options, self.clock = backend, options, clock
        self.note = ""
        self._gap = options.relative_gap

    def __call__(
        self, model: CompiledModel, limit_s: float, tie_break: bool = False, start: np.ndarray | None = None
    ) -> SolveResult:
        """Solve ``model`` within ``limit_s`` (and the plan's time left); ``start``: a MIP start, if any.

        A tie-break stage (``tie_break``) is solved to :data:`~solver.tolerances.TIE_BREAK_GAP`, not the requested
        gap: its weights differ by less than the requested gap of the whole objective, so a gap-sized answer
        could be any of the tied plans.
        """
        self._gap = TIE_BREAK_GAP if tie_break else self.options.relative_gap
        result = self._one(self.backend, model, limit_s, start)
        if result.status not in ("error", "infeasible"):
            return result
        for name in available_backends():
            if name == self.backend.name or self.clock.left() <= decompose.MIN_SOLVE_S:
                continue
            other = self._one(get_backend(name), model, limit_s)
            if other.status in ("optimal", "feasible") or (result.status == "error" and other.status != "error"):
                said = result.message if result.status == "error" else f"{self.backend.name} found it infeasible"
                self.note = f"{said}; solved again with {name}"
                return other
        return result

    def _one(
        self, backend: Backend, model: CompiledModel, limit_s: float, start: np.ndarray | None = None
    ) -> SolveResult:
        """One backend call, its time limit cut to what the plan has left."""
        left = min(limit_s, self.clock.left())
        if left <= decompose.MIN_SOLVE_S:
            return SolveResult("no_solution", None, math.nan, math.nan, math.nan, backend.name, 0.0, "time limit")
        opts = self.options.model_copy(update={"time_limit_s": left, "relative_gap": self._gap})
        return backend.solve(model, opts, start) if start is not None else backend.solve(model, opts)


def _round_integers(compiled: CompiledModel, x: np.ndarray) -> np.ndarray:
    """Return ``x`` cleaned of solver tolerances: integers rounded, clipped to bounds, tiny continuous values zeroed.

    Continuous values within :data:`SOLUTION_TOL` of 0 become 0: instance-hours of ``1e-7`` on a candidate without
    instances keep ``h <= H·n`` within tolerance, yet count as work (a real plan bills at least the minimum).
    """
    out = np.clip(x, compiled.lb, compiled.ub)
    out[compiled.integer] = np.rint(out[compiled.integer])
    out[~compiled.integer & (np.abs(out) <= SOLUTION_TOL)] = 0.0
    return np.clip(out, compiled.lb, compiled.ub)


def _polished(compiled: CompiledModel, x: np.ndarray, ranks: np.ndarray | None) -> list[np.ndarray]:
    """Return the points to try for a rounded answer: its polished form (:mod:`solver.planning.polish`), then itself.

    Only with the tie-break on (``ranks``): polishing is what makes the continuous part canonical.
    """
    if ranks is None:
        return [x]
    polished = polish_continuous(compiled, x, ranks)
    if polished is None or np.array_equal(polished, x):
        return [x]
    return [_round_integers(compiled, polished), x]


def _demand_rows(compiled: CompiledModel) -> np.ndarray:
    """Return the indices of the demand rows (:data:`DEMAND_BLOCKS`)."""
    return np.array([r for r, b in enumerate(compiled.row_block) if b in DEMAND_BLOCKS], dtype=np.int64)


def _repair_demand(compiled: CompiledModel, x: np.ndarray) -> np.ndarray:
    """Raise instance-hours where a demand row is short by any amount (solver tolerances), if every row then holds.

    A short offline-work row gets the missing work on the variable with a positive coefficient (instance-hours)
    whose raise costs least and makes no other row worse (deadline, budgets; not even within the tolerance, so
    hours are never added to a candidate without instances); integer hours are raised to the next integer. Rows
    that cannot be repaired this way are left short (and the answer is then refused).
    """
    rows = _demand_rows(compiled)
    if rows.size == 0:
        return x
    act = compiled.row_activity(x)
    out = x.copy()
    every = np.arange(compiled.n_rows)
    for r in rows[_short(compiled, act, rows)]:
        online = compiled.row_block[r] != "demand.offline_work"
        deficit = (compiled.row_lo[r] - act[r]) + DEMAND_NOISE * max(1.0, abs(compiled.row_lo[r]))
        a, b = compiled.indptr[r], compiled.indptr[r + 1]
        cols, coefs = compiled.indices[a:b], compiled.data[a:b]
        pos = coefs > 0
        if online:  # integer counts cannot be raised at equal cost; shares of a pool (sharing) can, within (20)
            pos &= ~compiled.integer[cols]
            if not pos.any():
                continue
        # cheapest raise first; among equal ones (a pool's shares cost nothing) the largest share, the class's
        # main route, so that a tolerance's worth of rate is never routed to a pool it does not otherwise use
        order = np.lexsort((-out[cols[pos]], compiled.objective[cols[pos]] / coefs[pos]))
        for j, c in zip(cols[pos][order], coefs[pos][order], strict=True):
            trial = out.copy()
            step = deficit / c
            trial[j] = math.ceil(trial[j] + step - ROUNDING_TOL) if compiled.integer[j] else trial[j] + step
            worse = compiled.row_violation(trial, every) > compiled.row_violation(out, every) + ACTIVITY_NOISE
            # a pool's share raised by the solver's tolerance may leave its row (20) within that tolerance
            # (as every row but demand may): the raise costs nothing and serves the class exactly
            within = online and not compiled.violations(trial, SOLUTION_TOL)
            if within or (not worse[np.setdiff1d(every, [r])].any() and not compiled.violations(trial, SOLUTION_TOL)):
                out = trial
                break
    return out


def _final_violations(compiled: CompiledModel, x: np.ndarray) -> list[str]:
    """Return what the final (rounded, trimmed, repaired) answer breaks: rows at the tolerance, demand exactly."""
    problems = compiled.violations(x, SOLUTION_TOL)
    rows = _demand_rows(compiled)
    if rows.size:
        act = compiled.row_activity(x)
        for r in rows[_short(compiled, act, rows)]:
            problems.append(f"row {r} ({compiled.row_block[r]}) serves {act[r]:.9g} of {compiled.row_lo[r]:.9g}")
    return problems


def _short(compiled: CompiledModel, act: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return a mask over ``rows``: activity below the row's lower side by more than :data:`DEMAND_NOISE`."""
    lo = compiled.row_lo[rows]
    return act[rows] < lo - DEMAND_NOISE * np.maximum(1.0, np.abs(lo))


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
        need = np.where(hours > 0, ceil_int(np.maximum(h, 0.0) / hours), x[n_idx])
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
        if np.all(compiled.row_violation(out, rows) <= before + ACTIVITY_NOISE):
            return out
    return x


def _tie_ranks(fm: FleetModel, compiled: CompiledModel) -> np.ndarray:
    """Secondary objective coefficients: ``|o_j| · rank_c`` on ``n_c``, ``h_c`` (and a pool's ``N_p``).

    ``rank_c = 1 + (i_c / (N + 1))^2`` orders the candidates by :data:`TIE_ORDER`, the price descending (so
    that of two plans of one cost the one with fewer, larger instances wins; quadratic, so that equal sums of
    ranks over different fleets are rare). Each rank multiplies the variable's primary objective
    coefficient ``o_j`` (its price): the secondary is then the cost with every candidate's price scaled by at
    most 2, so the stage's relaxation stays as tight as stage one's and its search about as short. With plain
    ranks (``rank_c`` alone) the stage had to prove an exact-cost knapsack from a weak relaxation, and on pooled
    models it stopped at its time budget without a plan (random-scenario oracle, seeds 248, 456, 935, 2158).
    Variables without a price (a pool's shares, offline counts) get ``1e-6 · mean price · rank``: a preference
    a million times weaker.
    """
    keys = [k for k in TIE_ORDER if k in fm.cands.columns]
    ascending = [k != "usd_per_hour" for k in keys]  # pricier first: of equal costs, fewer and larger instances
    order = fm.cands.sort_values(keys, ascending=ascending, kind="stable").index.to_numpy()
    rank = np.empty(len(order), dtype=float)
    rank[order] = 1.0 + (np.arange(1, len(order) + 1, dtype=float) / (len(order) + 1)) ** 2
    coef = np.zeros(compiled.n_vars)
    coef[fm.family("n").index] = rank
    if fm.pool_n is not None and fm.pool_of is not None:  # shared pools: N_p weighted like its first row
        pooled = np.flatnonzero(fm.pool_of >= 0)
        first = np.full(fm.pool_n.size, np.inf)
        np.minimum.at(first, fm.pool_of[pooled], rank[pooled])
        coef[fm.pool_n.index] = first
    h = fm.family("h")
    coef[h.index] = rank[fm.offline_idx]
    price = np.abs(compiled.objective)
    priced = price > 0
    scale = float(price[priced].mean()) if priced.any() else 1.0
    return np.where(priced, price, 1e-6 * scale) * coef


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
        set_limits = checks.limit_paths_set(scenario)
        if any(w.deadline_h is not None for w in scenario.workloads):
            set_limits.append("workloads.*.deadline_h")
        raise InfeasibleError(
            f"every workload has candidates, but no fleet meets all demands within {' / '.join(set_limits)}",
            [f"relax {' / '.join(set_limits)} (raise a budget, quota or share cap; lower a floor)"],
            diagnosis={"limits": set_limits},
        )
    if result.status == "no_solution":
        raise SolverLimitError(
            f"{result.backend} stopped after {result.solve_seconds:.1f} s without a plan", option="time_limit_s"
        )
    if result.status == "unbounded":
        raise SolverError(f"{result.backend}: the model is unbounded (set a budget or quota)")
    raise SolverError(f"{result.backend} failed: {result.message or result.status}")
