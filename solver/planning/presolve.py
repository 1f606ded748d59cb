"""Exact presolve: remove candidates that break a rule, and candidates another candidate dominates.

Both steps keep every optimal plan's cost (proofs in ``formulations/README.md``, "Exact presolve"): a candidate
that breaks a per-candidate rule of :data:`formulations.checks.CANDIDATE_RULES` has ``y_c = 0`` in every
feasible plan, and a dominated candidate's counts and hours move onto its dominator without breaking a row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from formulations import checks
from formulations.billing import batch_requests, capacity_per_instance, min_hours_per_instance
from solver.specs import Scenario
from solver.tolerances import PRESOLVE_REL_TOL

OFFER_WEIGHT = "offers_represented"
"""Candidate column (:func:`solver.planning.candidates.cheapest_offers`): how many offers of the scenario the row
stands for, itself included; removal counts count every one of them."""


def violations(cands: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Per candidate and rule of :data:`formulations.checks.CANDIDATE_RULES`, True where the candidate breaks it.

    These are the candidates whose rows (2)-(7a) and (12) fix ``y_c = 0``; one column per rule, named after it.
    """
    out = pd.DataFrame(index=cands.index)
    for r in checks.rules():
        out[r.name] = r.broken(cands, scenario, PRESOLVE_REL_TOL)
    return out


DOMINANCE_KEY = ("workload", "instance_type", "family", "region", "market", "usd_per_hour")
"""Candidates equal on these columns differ only in capacity (and, offline, lost batch and least hours): every
limit row sees them alike (README, "Exact presolve")."""


def offer_region_classes(scenario: Scenario) -> frozenset[str] | None:
    """Return the regions step 0 keeps apart, or ``None`` when no two offers of a machine are interchangeable.

    Market appears only in (23) ``max_spot_share``, (24) ``min_on_demand_share``, (25) ``max_spot_instances``
    and (26) ``max_spot_instances_per_region``; with any of them set, ``None``. Otherwise region appears only in
    (17) ``max_instances_per_region`` (``formulations/README.md``): every region with a quota of its own is a
    class of its own, all other regions are one class, and within a class the cheapest offer of a machine
    dominates the others (:func:`solver.planning.candidates.cheapest_offers`). The returned set holds the
    regions with a quota (empty: every offer of a machine is one class).
    """
    lim = scenario.limits
    if (
        lim.max_spot_instances
        or lim.max_spot_instances_per_region
        or lim.max_spot_share is not None
        or lim.min_on_demand_share is not None
    ):
        return None
    return frozenset(lim.max_instances_per_region or {})


def offers_interchangeable(scenario: Scenario) -> bool:
    """Whether no row of the model tells two offers of one instance type apart except by their price.

    Region and market appear only in (17) ``max_instances_per_region``, (23) ``max_spot_share``, (24)
    ``min_on_demand_share``, (25) ``max_spot_instances`` and (26) ``max_spot_instances_per_region``
    (``formulations/README.md``); with none of them set, the cheapest offer of a machine dominates the others
    (:func:`solver.planning.candidates.cheapest_offers`; with only (17) set, the cheapest within each region
    class, :func:`offer_region_classes`).
    """
    return offer_region_classes(scenario) == frozenset()


def types_interchangeable(scenario: Scenario) -> bool:
    """Whether no row of the min-cost model tells two online candidates of one workload apart but price and capacity.

    Besides region and market (:func:`offers_interchangeable`), the instance type
    appears in (15) ``max_instances``, (16) ``max_instances_per_family``, (19) ``min_instances`` and (27)
    ``workloads.*.max_instance_types`` (and (28), the no-good cuts of ``plan --top-k``, which callers exclude);
    with none of them set and the objective (O1), an online candidate with a price no higher and a capacity
    per instance no lower dominates (README, "Exact presolve", step 2b).
    """
    lim = scenario.limits
    return (
        scenario.objective == "min_cost"
        and offers_interchangeable(scenario)
        and not (lim.max_instances or lim.max_instances_per_family or lim.min_instances)
        and all(w.max_instance_types is None for w in scenario.workloads)
    )


def reduce_candidates(
    cands: pd.DataFrame, scenario: Scenario, *, across_types: bool | None = None
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Exact presolve: drop candidates fixed to zero and candidates another one dominates.

    1. A candidate that breaks memory, the price cap, an SLO or its offline batch time has ``y_c = 0``
       (rows 2-7, 7a, 12), so
       ``n_c = h_c = 0``: removing it changes no feasible plan.
    2. Among candidates of one workload with the same instance type, region, market and price (every limit
       row sees them alike), online, a candidate ``d`` dominates ``c`` when its capacity per instance
       ``rho · r`` is at least ``c``'s: only the largest is kept (ties: smaller TP degree, batch, offload).
       Offline, with ``g = 3600 · theta_w · r · rho`` (work per billed hour, row 9), ``l = b · rho`` (the
       batch row 9 does not count per instance) and ``m`` the least billed hours (row 11), ``d`` dominates
       ``c`` when ``g_d >= g_c``, ``m_d <= m_c`` and ``l_d - l_c <= (g_d - g_c) · m_c``: the counts and
       hours of ``c`` moved onto ``d`` keep rows (10), (11), every limit row and the cost, and complete at
       least as many requests, since ``h_c >= m_c · n_c`` (README, "Exact presolve"). Every removed
       candidate has a kept one that dominates it (:func:`_offline_winners`).
    3. With ``across_types`` (default :func:`types_interchangeable`; pass ``False`` with no-good cuts), online
       candidates of one workload are compared across instance types, regions and markets: one with a price no
       higher and a capacity per instance no lower dominates (:func:`_pareto_winners`, README step 2b).

    Returns
    -------
    (table, removed)
        The reduced table (original index kept) and, per workload, rows removed per reason (the first
        broken check of each row counts, in the order of :func:`violations`, then ``dominated``).
    """
    if cands.empty:
        return cands, {}
    bad = violations(cands, scenario)
    flags = bad.to_numpy(dtype=bool)
    any_bad = flags.any(axis=1)
    first = np.where(any_bad, flags.argmax(axis=1), -1)
    code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
    n_w = len(uniques)
    removed: dict[str, dict[str, int]] = {}
    # a row enumerated for the cheapest offer of a machine counts for every offer it stands for
    weight = (
        cands[OFFER_WEIGHT].to_numpy(dtype=np.int64)
        if OFFER_WEIGHT in cands.columns
        else np.ones(len(cands), dtype=np.int64)
    )
    per_check = np.zeros((n_w, flags.shape[1] + 1), dtype=np.int64)
    np.add.at(per_check, (code, first + 1), weight)
    for k, wname in enumerate(uniques):
        counts = {col: int(per_check[k, j + 1]) for j, col in enumerate(bad.columns)}
        removed[str(wname)] = {key: v for key, v in counts.items() if v}
    kept = np.flatnonzero(~any_bad)
    kinds = np.array([w.kind == "offline" for w in scenario.workloads], dtype=bool)
    pos = {w.name: i for i, w in enumerate(scenario.workloads)}
    is_off = kinds[np.array([pos[str(u)] for u in uniques], dtype=np.int64)][code] if n_w else np.zeros(0, dtype=bool)
    # (23) caps the spot share of capacity: more capacity on one spot instance is not better, so spot rows
    # are kept whole when it is set (README, "Exact presolve")
    exempt = (
        kept[cands["market"].to_numpy()[kept] == "spot"] if scenario.limits.max_spot_share is not None else kept[:0]
    )
    kept_dom = np.setdiff1d(kept, exempt)
    on_rows = kept_dom[~is_off[kept_dom]]
    off_rows = kept_dom[is_off[kept_dom]]
    best = np.concatenate(
        [
            on_rows[_dominance_winners(cands, on_rows)],
            off_rows[_offline_winners(cands, off_rows, scenario)],
            exempt,
        ]
    )
    if across_types is None:
        across_types = types_interchangeable(scenario)
    if across_types and scenario.limits.max_spot_share is None:
        on_best = best[~is_off[best]]
        best = np.concatenate([best[is_off[best]], on_best[_pareto_winners(cands, on_best)]])
    n_kept = np.bincount(code[kept], weights=weight[kept], minlength=n_w).astype(np.int64)
    n_best = np.bincount(code[best], minlength=n_w)
    for d in np.flatnonzero(n_kept - n_best):
        removed.setdefault(str(uniques[int(d)]), {})["dominated"] = int(n_kept[d] - n_best[d])
    return cands.iloc[np.sort(best)], removed


def _group_codes(cands: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Integer code of each row's :data:`DOMINANCE_KEY` group (``pandas.factorize``, no string sort)."""
    group = np.zeros(rows.size, dtype=np.int64)
    for name in DOMINANCE_KEY:
        codes, uniq = pd.factorize(cands[name].to_numpy()[rows], use_na_sentinel=False)
        group, _ = pd.factorize(group * len(uniq) + codes.astype(np.int64))
        group = group.astype(np.int64)
    return group


def _offline_winners(cands: pd.DataFrame, rows: np.ndarray, scenario: Scenario) -> np.ndarray:
    """Positions (in ``rows``, offline candidates) of the rows kept by the offline dominance rule.

    ``d`` dominates ``c`` (same :data:`DOMINANCE_KEY` group) when ``g_d >= g_c``, ``m_d <= m_c`` and
    ``l_d - l_c <= (g_d - g_c) · m_c`` (``g`` work per billed hour, ``l`` lost batch, ``m`` least billed hours;
    :func:`reduce_candidates`). Rows are sorted by ``(group, -g, l, m, tp, batch_size, offload_fraction)``, so
    in exact arithmetic every dominator of a row comes before it or dominates it both ways; a row is dropped
    when some earlier row of its group dominates it (all pairs, vectorised). The rule is transitive, so each
    dropped row then has a kept dominator; that is checked in floating point, and a group where it fails is
    redone greedily (a row is compared with the kept rows before it only).
    """
    m = rows.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    sub = cands.iloc[rows]
    work = capacity_per_instance(sub, scenario)
    lost = batch_requests(sub)
    least = min_hours_per_instance(sub, scenario)
    group = _group_codes(cands, rows)
    order = np.lexsort(
        (
            np.arange(m),
            sub["offload_fraction"].to_numpy(dtype=float),
            sub["batch_size"].to_numpy(),
            sub["tp"].to_numpy(),
            least,
            lost,
            -work,
            group,
        )
    )
    g, w, ls, mh = group[order], work[order], lost[order], least[order]
    head = np.ones(m, dtype=bool)
    head[1:] = g[1:] != g[:-1]
    starts = np.flatnonzero(head)
    rank = np.arange(m) - np.repeat(starts, np.diff(np.append(starts, m)))
    # every pair (i, j), i before j in the same group
    j = np.repeat(np.arange(m), rank)
    i = j - (np.arange(j.size) - np.repeat(np.cumsum(rank) - rank, rank) + 1)
    dom = _dominates(w[i], ls[i], mh[i], w[j], ls[j], mh[j])
    dropped = np.bincount(j[dom], minlength=m) > 0
    witnessed = np.bincount(j[dom & ~dropped[i]], minlength=m) > 0
    for gid in np.unique(g[dropped & ~witnessed]):
        sel = np.flatnonzero(g == gid)
        keep: list[int] = []
        for c in sel.tolist():
            k = np.asarray(keep, dtype=np.int64)
            dropped[c] = bool(_dominates(w[k], ls[k], mh[k], w[c], ls[c], mh[c]).any())
            if not dropped[c]:
                keep.append(c)
    return np.sort(order[~dropped])


def _dominates(
    work_d: np.ndarray, lost_d: np.ndarray, least_d: np.ndarray, work_c: Any, lost_c: Any, least_c: Any
) -> np.ndarray:
    """Elementwise: offline ``d`` dominates ``c`` (``g_d >= g_c``, ``m_d <= m_c``, ``l_d - l_c <= (g_d - g_c) m_c``)."""
    return (work_d >= work_c) & (least_d <= least_c) & (lost_d - lost_c <= (work_d - work_c) * least_c)


def _dominance_winners(cands: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Positions (in ``rows``, online candidates) of the largest capacity ``rho · r`` of each group.

    Rows are sorted stably by ``(*DOMINANCE_KEY, -capacity, tp, batch_size, offload_fraction)`` (integer group
    codes from :func:`_group_codes` and one ``numpy.lexsort`` instead of a sort on string columns); the first
    row of each group is kept.
    """
    m = rows.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)

    def col(name: str) -> np.ndarray:
        """Column ``name`` at ``rows``."""
        return cands[name].to_numpy()[rows]

    group = _group_codes(cands, rows)
    capacity = col("rate_rps").astype(float) * col("replicas").astype(float)
    order = np.lexsort(
        (np.arange(m), col("offload_fraction").astype(float), col("batch_size"), col("tp"), -capacity, group)
    )
    g = group[order]
    head = np.ones(m, dtype=bool)
    head[1:] = g[1:] != g[:-1]
    return order[head]


def _pareto_winners(cands: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Positions (in ``rows``, online candidates) on each workload's front of price (down) and capacity (up).

    Rows are sorted by (workload, price, -capacity, then the tie-break order: type, region, market, TP, batch,
    offload); a row is kept when its capacity ``rho · r`` is larger than that of every row before it in its
    workload, so each dropped row has an earlier, kept row with a price no higher and a capacity no lower.
    """
    m = rows.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)

    def col(name: str) -> np.ndarray:
        """Column ``name`` at ``rows``."""
        return cands[name].to_numpy()[rows]

    wcode = pd.factorize(col("workload"), use_na_sentinel=False)[0]
    capacity = col("rate_rps").astype(float) * col("replicas").astype(float)
    order = np.lexsort(
        (
            np.arange(m),
            col("offload_fraction").astype(float),
            col("batch_size"),
            col("tp"),
            col("market").astype(str),
            col("region").astype(str),
            col("instance_type").astype(str),
            -capacity,
            col("usd_per_hour").astype(float),
            wcode,
        )
    )
    w, cap = wcode[order], capacity[order]
    keep = np.zeros(m, dtype=bool)
    head = np.r_[True, w[1:] != w[:-1]]
    starts = np.flatnonzero(head)
    ends = np.r_[starts[1:], m]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        seg = cap[a:b]
        before = np.maximum.accumulate(np.r_[-np.inf, seg[:-1]])
        keep[a:b] = seg > before
    return np.sort(order[keep])
