"""Solving a min-cost model one group of workloads at a time (``formulations/README.md``, "Solving by workload").

The planner (:mod:`solver.planning.planner`) orchestrates; this module only decomposes: it splits the compiled
model by workload, solves each group's sub-model through the planner's checked solve, merges groups whose plans
together break a relaxable coupling row, and keeps the result only when it is provably an optimal plan of the
whole model. It also holds the time accounting shared with the planner (:class:`Clock`, :func:`tie_break_budget`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from formulations.linear import CompiledModel, ModelBlock
from formulations.model import FleetModel
from formulations.objective import lexicographic_stage
from solver.backends import SolveResult
from solver.backends.base import relative_gap as base_relative_gap
from solver.backends.base import within_gap
from solver.tolerances import FEASIBILITY_TOL, GAP_DENOMINATOR_FLOOR, TIE_BREAK_REL_TOL

TIE_BREAK_TIME_FACTOR = 3.0
"""A tie-break stage may take at most this multiple of its stage one's time (engineering bound, not a model
coefficient)."""
TIE_BREAK_MIN_S = 2.0
"""... but always at least this long (seconds). When a stage stops at its budget the plan says so
(:data:`TIE_BREAK_CUT_NOTE`): on a loaded machine, and on models with shared pools, stages stop there and two
backends may then return different plans of equal cost. It was 1 s; random-scenario oracle seeds 643 and 1601
stopped there on this 2-core machine while other work ran (their stages need 1.1-1.3 s under that load, 0.3 s
alone). A floor of 5 s did not resolve the pooled cases of an earlier round (they were fixed in the tie-break's
secondary instead)."""
TIE_BREAK_CUT_NOTE = (
    "tie-break stopped at its time budget in {cut} of {n} group(s): the plan is optimal, but among plans of "
    "equal cost it may not be the canonical one (another backend or a faster machine may pick another)"
)
"""Said in the plan's message when a tie-break stage stops at its budget."""
MIN_SOLVE_S = 0.05
"""No solver call is started with less time than this left (seconds)."""

Blocks = tuple[list[ModelBlock], np.ndarray]
SolveFn = Callable[..., SolveResult]
"""``solve(model, time limit s, tie_break, start=None)``: a tie-break stage is solved to ``TIE_BREAK_GAP``; ``start`` is
a feasible point given to backends that take a MIP start."""
TrimFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Clock:
    """The whole plan's time limit: every solver call (stages, sub-models, fallbacks) draws on it."""

    limit_s: float
    start: float = field(default_factory=time.perf_counter)

    def spent(self) -> float:
        """Return the seconds since the plan started."""
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Return the seconds left of the limit (never negative)."""
        return max(self.limit_s - self.spent(), 0.0)


def tie_break_budget(stage_one_seconds: float, left: float) -> float:
    """Time for a tie-break stage: at most TIE_BREAK_TIME_FACTOR x its stage one (at least TIE_BREAK_MIN_S).

    The stage only picks among plans of equal cost, so it must not cost many times the solve itself; when it
    stops at this budget its best plan is still kept if it is feasible (equal cost, ties possibly not canonical).
    """
    return min(left, max(TIE_BREAK_MIN_S, TIE_BREAK_TIME_FACTOR * stage_one_seconds))


def _proven_bound(r: SolveResult, relative_gap: float) -> float:
    """Bound of a sub-model's optimum: the reported one, else what its proven gap implies (module docstring)."""
    if math.isfinite(r.bound):
        return min(r.bound, r.objective)
    return r.objective - relative_gap * max(abs(r.objective), GAP_DENOMINATOR_FLOOR)


def workload_blocks(fm: FleetModel, compiled: CompiledModel) -> Blocks | None:
    """Split the compiled model by workload (min-cost models with two or more workloads only)."""
    n_w = len(fm.scenario.workloads)
    if compiled.sense != "min" or compiled.objective_offset != 0.0 or n_w < 2:
        return None
    code, _ = fm.workload_code()
    workload_block = np.arange(n_w, dtype=np.int64)  # workload -> block (several when they share a pool)
    # --- shared replicas (formulations/sharing.py): workloads that share a pool are one block ------------
    if fm.pool_n is not None and fm.pool_of is not None:
        original = code
        code, n_w = _pool_blocks(code, fm.pool_of, n_w)
        workload_block[original] = code
    # ----------------------------------------------------------------------------------------------------
    var_block = np.empty(compiled.n_vars, dtype=np.int64)
    var_block[fm.family("n").index] = code
    var_block[fm.family("y").index] = code
    var_block[fm.family("h").index] = code[fm.offline_idx]
    if fm.pool_n is not None and fm.pool_of is not None:  # a pool's count goes with its classes' block
        pooled = fm.pool_of >= 0
        var_block[fm.pool_n.index[fm.pool_of[pooled]]] = code[pooled]
    for name, owner in fm.owners.items():  # other families (type binaries z): their workload's block
        var_block[fm.lm.families[name].index] = workload_block[owner]
    if n_w < 2:
        return None
    blocks, coupling = compiled.split(var_block, n_w)
    if any(b.cols.size == 0 for b in blocks):
        return None
    return blocks, coupling


def _pool_blocks(code: np.ndarray, pool_of: np.ndarray, n_w: int) -> tuple[np.ndarray, int]:
    """Per candidate, a block number such that workloads sharing a pool are in one block; and the block count."""
    parent = list(range(n_w))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pooled = np.flatnonzero(pool_of >= 0)
    first: dict[int, int] = {}
    for c in pooled.tolist():
        p, w = int(pool_of[c]), int(code[c])
        if p in first:
            parent[find(w)] = find(first[p])
        else:
            first[p] = w
    roots = np.array([find(i) for i in range(n_w)], dtype=np.int64)
    _, block = np.unique(roots, return_inverse=True)
    return block[code], int(block.max()) + 1 if n_w else 0


def solve_by_workload(
    compiled: CompiledModel,
    split: Blocks | None,
    solve: SolveFn,
    trim: TrimFn,
    clock: Clock,
    relative_gap: float,
    ranks: np.ndarray | None,
    exact: TrimFn | None = None,
) -> tuple[SolveResult, np.ndarray, bool] | None:
    """Solve workloads in groups; return (stage-one result, x, tie-broken), or ``None``: solve the whole model.

    ``formulations/README.md``, "Solving by workload". Each group's model (its workloads' rows plus the
    relaxable coupling rows restricted to it) relaxes the whole model projected onto the group, so the sum
    of the groups' bounds bounds the whole model; when the groups' optimal plans together keep the coupling
    rows, they form an optimal plan. Offline counts are first trimmed to ``ceil(h_c / H_w)`` (same cost,
    checked against every row). Groups that use a broken relaxable row are merged and re-solved; any other
    broken row gives ``None``. Stage two minimises each group's tie-break sum with its cost held within its
    share of the tolerance (shares add up to ``tol``), and is kept when the groups' plans together keep the
    coupling rows. Otherwise ``None`` (or, for stage two, no tie-break yet): the caller solves the whole model.

    ``solve(model, limit_s)`` is the planner's checked solve (an answer that breaks its model comes back as
    ``error``); ``trim`` lowers offline counts; ``clock`` holds the whole plan's time limit. A sub-model's bound is
    the one its solver reported; without one, a proven optimum (status ``optimal``) is within ``relative_gap`` of
    its bound, so ``objective − relative_gap · |objective|`` bounds it. Never the objective itself.
    """
    if split is None:
        return None
    workload_blocks, coupling = split
    relaxable = compiled.relaxable_rows(coupling)
    groups: list[tuple[int, ...]] = [(k,) for k in range(len(workload_blocks))]
    solved: dict[tuple[int, ...], tuple[ModelBlock, SolveResult]] = {}
    by_columns: tuple[np.ndarray, float, float, list[tuple[ModelBlock, float]], list[int]] | None = None
    columns_started, one_row_integral = 0.0, True
    while True:
        x = np.zeros(compiled.n_vars)
        for g in groups:
            if g not in solved:
                if clock.left() <= MIN_SOLVE_S:
                    return None
                blk = group_model(compiled, workload_blocks, g, coupling, relaxable)
                r = solve(blk.model, clock.left(), False)
                if r.status != "optimal" or r.x is None:
                    return None
                solved[g] = (blk, r)
            blk, r = solved[g]
            x[blk.cols] = r.x
        x = trim(x)
        broken = coupling[compiled.row_violation(x, coupling) > FEASIBILITY_TOL]
        if broken.size == 0:
            break
        one_row = broken.size == 1 and np.isin(broken, relaxable).all()
        if one_row and all(len(g) == 1 for g in groups):
            base = {g[0]: solved[g] for g in groups}
            columns_started, one_row_integral = clock.spent(), _row_integral(compiled, int(broken[0]))
            by_columns = solve_one_row(
                compiled, workload_blocks, int(broken[0]), base, solve, trim, clock, relative_gap
            )
            if by_columns is not None and compiled.rows_hold(by_columns[0], coupling, FEASIBILITY_TOL):
                break
            by_columns = None
        merged = merge_groups(compiled, groups, workload_blocks, broken, relaxable, x)
        if merged is None:
            return None
        groups = merged
    if by_columns is not None:
        x, value, bound, parts, on_row = by_columns
        n_on = len(on_row)
        blocks = [b for b, _s in parts[: len(parts) - n_on]]
        stage_one_seconds = [s for _b, s in parts[: len(parts) - n_on]]
        members: list[tuple[int, ...]] = [(k,) for k in sorted(set(range(len(workload_blocks))) - set(on_row))]
        capped = [False] * len(members)
        if ranks is not None and one_row_integral:
            # a quota: the workloads on the row are tie-broken together, on their merged model (the row with all
            # its terms), each workload's cost held at its column's (below)
            blocks.append(group_model(compiled, workload_blocks, tuple(on_row), coupling, relaxable))
            # its stage one: the first solves of its workloads and the whole column method
            columns_s = clock.spent() - columns_started
            stage_one_seconds.append(columns_s + sum(solved[(k,)][1].solve_seconds for k in on_row))
            members.append(tuple(on_row))
            capped.append(True)  # the canonical master fixed each workload's cost: hold it there
        else:
            # a budget: one by one, each on its level model (its usage at most its pick's plus its share of the
            # row's slack), its cost held at its pick's (below): the usages add up to at most the limit
            blocks += [b for b, _s in parts[len(parts) - n_on :]]
            stage_one_seconds += [s for _b, s in parts[len(parts) - n_on :]]
            members += [(k,) for k in on_row]
            capped += [False] * n_on
        results = [solved[groups[0]][1]]
    else:
        # a merged group keeps one cap: how stage one split its cost between its workloads is the backend's
        members = list(groups)
        capped = [False] * len(members)
        blocks = [solved[g][0] for g in groups]
        results = [solved[g][1] for g in groups]
        bounds = [_proven_bound(r, relative_gap) for r in results]
        stage_one_seconds = [r.solve_seconds for r in results]
        value = float(compiled.objective @ x)
        bound = float(sum(bounds))
    gap = base_relative_gap(value, bound)
    if not within_gap(gap, relative_gap):
        return None
    first = results[0]
    result = SolveResult("optimal", x, value, bound, gap, first.backend, clock.spent(), "", first.solver_version)
    if ranks is None:
        return result, x, False
    # the caps come from the answer made exact (``exact``: rounded, demand repaired): a solver's answer may be
    # short of demand by its tolerance, so cheaper than the exact optimum, and a cap below that optimum would
    # exclude the canonical plan
    x_exact = exact(x) if exact is not None else x
    value = max(value, float(compiled.objective @ x_exact))
    tol = TIE_BREAK_REL_TOL * max(1.0, abs(value))
    # each workload block's cost cap: its stage-one cost plus its share of the tolerance (shares add up to tol)
    v_k = np.array(
        [
            max(float(compiled.objective[b.cols] @ x[b.cols]), float(compiled.objective[b.cols] @ x_exact[b.cols]))
            for b in workload_blocks
        ]
    )
    weight = np.maximum(1.0, np.abs(v_k))
    cap_k = v_k + tol * weight / weight.sum()
    x2 = x.copy()
    cut = 0
    for blk, group, hold, first_s in zip(blocks, members, capped, stage_one_seconds, strict=True):
        left = tie_break_budget(first_s, clock.left())
        if left <= MIN_SOLVE_S:
            return result, x, False
        stage = lexicographic_stage(
            blk.model,
            float(cap_k[list(group)].sum()),
            ranks[blk.cols],
            0.0,
            _part_caps(blk, workload_blocks, group, cap_k) if hold else (),
        )
        r2 = solve(stage, left, True, x_exact[blk.cols])
        cut += r2.status != "optimal"
        if r2.x is None or r2.status not in ("optimal", "feasible"):
            # stopped at its time limit without a better plan: the stage-one plan of the group is its incumbent
            # (a feasible plan of the stage), kept as the whole-model stage keeps its best plan at its limit
            continue
        x2[blk.cols] = r2.x
    cost = float(compiled.objective @ x2)
    if compiled.rows_hold(x2, coupling, FEASIBILITY_TOL) and cost <= value + tol + FEASIBILITY_TOL * max(1.0, value):
        note = TIE_BREAK_CUT_NOTE.format(cut=cut, n=len(blocks)) if cut else ""
        return dataclasses.replace(result, solve_seconds=clock.spent(), message=note), x2, True
    return result, x, False


def _part_caps(
    blk: ModelBlock, workload_blocks: list[ModelBlock], group: tuple[int, ...], cap_k: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """Per-workload cost caps of the one-row method's tie-break stage (local column indices of ``blk``, cap).

    The workloads on the row are tie-broken on their merged model with each workload's cost held at its pick
    of the canonical upper master: the stage then only picks among plans that split the cost that way, which
    keeps its relaxation as tight as the per-workload stages' (one cap on the sum lets the relaxation move cost
    between workloads, and on pooled models the stage then rarely closed its gap in its budget). Groups merged
    by :func:`merge_groups` keep one cap: how their stage one split the cost is the backend's choice.
    """
    if len(group) < 2:
        return []
    pos = np.full(int(blk.cols.max()) + 1, -1, dtype=np.int64)
    pos[blk.cols] = np.arange(blk.cols.size)
    return [(pos[workload_blocks[k].cols], float(cap_k[k])) for k in group]


def group_model(
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


def merge_groups(
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


# ---- one broken coupling row: per-workload fleet columns and a multiple-choice master -------------------------
COLUMN_STEP_REL = 1e-5
"""On a row with a fractional coefficient (a budget), the next column of a workload is asked to use at most its
last column's usage ``u`` minus this share of ``max(1, |u|)`` (README, "One coupling row"). It is ten times the
tolerance an answer of that level model is checked at (``SOLUTION_TOL``, relative to the level), so every new
column uses strictly less. Relative to the workload's own usage, not to the row's limit: the lower master gives
every pick this much slack, and over n workloads the slack adds up to about ``1e-5 · (limit + n)`` instead of
``n · 1e-5 · limit`` (at 300 workloads that was a gap of 9e-6 on a budget)."""
MAX_COLUMN_ROUNDS = 10_000
"""Engineering stop of the column loop (each round adds a column to at least one workload, so it ends anyway)."""


@dataclass
class _Column:
    """A per-workload fleet: its values on the block, cost, proven bound and usage of the coupling row."""

    x: np.ndarray
    cost: float
    bound: float
    usage: float
    seconds: float


@dataclass
class _Frontier:
    """A workload's columns, from its unconstrained optimum downwards in usage; ``open`` while lower ones may exist."""

    block: ModelBlock
    local: int
    columns: list[_Column]
    open: bool
    trim: TrimFn


def _row_integral(compiled: CompiledModel, r: int) -> bool:
    """Whether the row is integral: integer coefficients on integer variables only (usages are integers)."""
    a, b = compiled.indptr[r], compiled.indptr[r + 1]
    cols, coefs = compiled.indices[a:b], compiled.data[a:b]
    return bool(np.all(compiled.integer[cols]) and np.all(coefs == np.rint(coefs)))


def _step(usage: float, integral: bool) -> float:
    """Step below a column's usage to the next level: 1 on an integral row, else ``COLUMN_STEP_REL · max(1, |u|)``."""
    return 1.0 if integral else COLUMN_STEP_REL * max(1.0, abs(usage))


def _column(front: _Frontier, r: SolveResult, relative_gap: float) -> _Column:
    """Return a checked answer of a level model as a column (rounded, offline counts trimmed, usage after that)."""
    assert r.x is not None
    sub = front.block.model
    x = r.x.copy()
    x[sub.integer] = np.rint(x[sub.integer])
    x = front.trim(np.clip(x, sub.lb, sub.ub))
    usage = float(sub.row_activity(x)[front.local])
    return _Column(x, float(sub.objective @ x), _proven_bound(r, relative_gap), usage, r.solve_seconds)


def _master(
    fronts: list[_Frontier],
    hi: float,
    integral: bool,
    lower: bool,
    solve: SolveFn,
    clock: Clock,
) -> tuple[float, list[int]] | None:
    """Solve the multiple-choice master: one column per workload, total usage ``<= hi``; (value, pick per workload).

    ``lower``: costs are the columns' proven bounds, a fractional row's usages are lowered by their step, and every
    open frontier gets a *pseudo-column* (cost: its last column's bound, usage 0), which makes the master a
    relaxation of the coupled model (README, "One coupling row"). Pick ``len(columns)`` is the pseudo-column.
    Otherwise costs and usages are the columns' own. ``None`` when the master has no answer.
    """
    costs, usages, owner = [], [], []
    for i, f in enumerate(fronts):
        for c in f.columns:
            costs.append(c.bound if lower else c.cost)
            usages.append(c.usage - (_step(c.usage, integral) if lower and not integral else 0.0))
            owner.append(i)
        if lower and f.open:
            costs.append(f.columns[-1].bound)
            usages.append(0.0)
            owner.append(i)
    m = len(costs)
    own = np.asarray(owner, dtype=np.int64)
    n_f = len(fronts)
    # rows: one "choose one" row per workload (sorted by owner: CSR in order), then the usage row
    order = np.argsort(own, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(own, minlength=n_f)), [m + m]]).astype(np.int64)
    indices = np.concatenate([order, np.arange(m)]).astype(np.int64)
    data = np.concatenate([np.ones(m), np.maximum(np.asarray(usages), 0.0)])
    model = CompiledModel(
        "min",
        np.zeros(m),
        np.ones(m),
        np.ones(m, dtype=bool),
        np.asarray(costs, dtype=float),
        0.0,
        indptr,
        indices,
        data,
        np.concatenate([np.ones(n_f), [-np.inf]]),
        np.concatenate([np.ones(n_f), [hi]]),
        ["master.choose"] * n_f + ["master.usage"],
    )
    res = solve(model, clock.left(), True)  # at TIE_BREAK_GAP: the master is small
    if res.status != "optimal" or res.x is None:
        return None
    value = float(res.objective)
    if not lower:
        # equal-cost picks: one canonical pick whatever the backend (the tie-break of the workloads on the row
        # then holds each workload's cost at its pick's, decompose.solve_by_workload)
        canonical = solve(
            lexicographic_stage(model, value, _master_ranks(np.asarray(costs), usages, own, n_f)), clock.left(), True
        )
        if canonical.status == "optimal" and canonical.x is not None:
            res = canonical
    assert res.x is not None
    chosen = np.flatnonzero(np.rint(res.x) > 0.5)
    picks = [0] * n_f
    starts = np.concatenate([[0], np.cumsum([len(f.columns) + (1 if lower and f.open else 0) for f in fronts])])
    for j in chosen:
        i = int(own[j])
        picks[i] = int(j - starts[i])
    return value, picks


def _master_ranks(costs: np.ndarray, usages: list[float], owner: np.ndarray, n_f: int) -> np.ndarray:
    """Secondary objective of the upper master: among picks of equal total cost, a canonical one.

    Workload ``i``'s pick is weighed by ``(1 + ((i + 1) / (n + 1))^2) · cost`` (its cost share, distinct weights
    per workload, so equal totals split differently differ), plus a usage term a million times smaller, so that
    of two columns of one cost the one leaving more of the row wins.
    """
    weight = 1.0 + ((owner + 1.0) / (n_f + 1.0)) ** 2
    use = np.maximum(np.asarray(usages, dtype=float), 0.0)
    scale = max(float(np.abs(costs).max(initial=0.0)), 1.0) / max(float(use.max(initial=0.0)), 1.0)
    return weight * costs + 1e-6 * scale * use


def solve_one_row(
    compiled: CompiledModel,
    blocks: list[ModelBlock],
    row: int,
    base: dict[int, tuple[ModelBlock, SolveResult]],
    solve: SolveFn,
    trim: TrimFn,
    clock: Clock,
    relative_gap: float,
) -> tuple[np.ndarray, float, float, list[tuple[ModelBlock, float]], list[int]] | None:
    """Exact solve when one relaxable coupling row ``row`` is broken: (x, value, bound, [(level model, seconds)]).

    README, "One coupling row". Each workload on the row gets columns: its optimum with the row restricted to
    it, then the optimum with its usage at most the last column's usage minus a step, and so on while the
    lower master asks. The lower master (columns at their bounds, pseudo-columns for what is not yet
    computed) bounds the whole model; once it picks only computed columns, the upper master (columns at their
    costs) gives the plan. ``None`` when the row is not of the method's kind, time runs out, or the gap is not
    closed: the caller merges groups instead.
    """
    integral = _row_integral(compiled, row)
    hi = float(compiled.row_hi[row])
    fronts: list[_Frontier] = []
    fixed_x = np.zeros(compiled.n_vars)
    fixed_bound = 0.0
    for _k, (blk, r) in sorted(base.items()):
        assert r.x is not None
        hit = np.searchsorted(blk.rows, row)
        on_row = hit < blk.rows.size and blk.rows[hit] == row

        def trim_block(xb: np.ndarray, blk: ModelBlock = blk) -> np.ndarray:
            full = np.zeros(compiled.n_vars)
            full[blk.cols] = xb
            return trim(full)[blk.cols]

        if not on_row:
            xb = trim_block(r.x)
            fixed_x[blk.cols] = xb
            fixed_bound += _proven_bound(r, relative_gap)
            continue
        front = _Frontier(blk, int(hit), [], True, trim_block)
        front.columns.append(_column(front, r, relative_gap))
        front.open = front.columns[0].usage > 0.0
        fronts.append(front)
    if not fronts:
        return None
    for _ in range(MAX_COLUMN_ROUNDS):
        low = _master(fronts, hi, integral, True, solve, clock)
        if low is None:
            return None
        pseudo = [i for i, p in enumerate(low[1]) if p == len(fronts[i].columns)]
        if not pseudo:
            break
        for i in pseudo:
            f = fronts[i]
            if clock.left() <= MIN_SOLVE_S:
                return None
            step = _step(f.columns[-1].usage, integral)
            level = f.columns[-1].usage - step
            sub = f.block.model
            row_hi = sub.row_hi.copy()
            row_hi[f.local] = min(row_hi[f.local], level)
            level_model = dataclasses.replace(sub, row_hi=row_hi)
            r = solve(level_model, clock.left(), False)
            if r.status == "infeasible":
                f.open = False
                continue
            if r.status != "optimal" or r.x is None:
                return None
            col = _column(f, r, relative_gap)
            if col.usage > f.columns[-1].usage - step / 2:
                return None  # no progress (a solver answer above its level by its tolerance): merge instead
            f.columns.append(col)
            f.open = col.usage > 0.0
    else:
        return None
    upper = _master(fronts, hi, integral, False, solve, clock)
    if upper is None:
        return None
    x = fixed_x.copy()
    levels = []
    picked = [f.columns[p] for f, p in zip(fronts, upper[1], strict=True)]
    share = max(0.0, hi - sum(c.usage for c in picked)) / len(fronts)  # the row's slack, shared for the tie-break
    for f, col in zip(fronts, picked, strict=True):
        x[f.block.cols] = col.x
        row_hi = f.block.model.row_hi.copy()
        row_hi[f.local] = col.usage + (0.0 if integral else share) + FEASIBILITY_TOL * max(1.0, abs(col.usage))
        levels.append(ModelBlock(f.block.cols, f.block.rows, dataclasses.replace(f.block.model, row_hi=row_hi)))
    value = float(compiled.objective @ x)
    bound = low[0] + fixed_bound
    on = {id(f.block) for f in fronts}
    fixed = [(blk, r.solve_seconds) for _k, (blk, r) in sorted(base.items()) if id(blk) not in on]
    chosen = [(lv, f.columns[p].seconds) for lv, f, p in zip(levels, fronts, upper[1], strict=True)]
    ks = [k for k, (blk, _r) in sorted(base.items()) if id(blk) in on]
    return x, value, min(bound, value), [*fixed, *chosen], ks
