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
TIE_BREAK_MIN_S = 1.0
"""... but always at least this long (seconds)."""
MIN_SOLVE_S = 0.05
"""No solver call is started with less time than this left (seconds)."""

Blocks = tuple[list[ModelBlock], np.ndarray]
SolveFn = Callable[[CompiledModel, float, bool], SolveResult]
"""``solve(model, time limit s, tie_break)``: a tie-break stage is solved to a zero gap."""
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
        merged = merge_groups(compiled, groups, workload_blocks, broken, relaxable, x)
        if merged is None:
            return None
        groups = merged
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
    v_w = np.array(
        [
            max(float(blk.model.objective @ x[blk.cols]), float(blk.model.objective @ x_exact[blk.cols]))
            for blk in blocks
        ]
    )
    share = np.maximum(1.0, np.abs(v_w))
    share = tol * share / share.sum()
    x2 = x.copy()
    for blk, cap, first_s in zip(blocks, v_w + share, stage_one_seconds, strict=True):
        left = tie_break_budget(first_s, clock.left())
        if left <= MIN_SOLVE_S:
            return result, x, False
        stage = lexicographic_stage(blk.model, cap, ranks[blk.cols], rel_tol=0.0)
        r2 = solve(stage, left, True)
        if r2.x is None or r2.status not in ("optimal", "feasible"):
            return result, x, False
        x2[blk.cols] = r2.x
    cost = float(compiled.objective @ x2)
    if compiled.rows_hold(x2, coupling, FEASIBILITY_TOL) and cost <= value + tol + FEASIBILITY_TOL * max(1.0, value):
        return dataclasses.replace(result, solve_seconds=clock.spent()), x2, True
    return result, x, False


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
