"""Planning candidates: one row per (workload, instance offer, TP degree, batch size, KV offload fraction).

Every nonlinear quantity (memory, TTFT, TPOT, end-to-end time, TPS) is computed here, before the MILP, by
one vectorised :func:`solver.performance.model.predict_frame` call per workload (two when ``search.offload_grid``
adds offload fractions). The MILP then sees constants only (``formulations/README.md``).

Per candidate ``c``: ``replicas`` (``rho_c``) = floor(GPUs / tp) model copies per instance (1 on a GPU
slice); ``rate_rps`` (``r_c``) = ``batch_size / e2e_s``, one replica's sustainable request rate (Little's
law with ``batch_size`` requests in flight); offline work per instance-hour = 3600 · rho_c · r_c.

Batching (:func:`batching_mode`): online workloads are served with continuous batching at concurrency ``b``
(vLLM, TGI, TensorRT-LLM and the generic profile all serve online traffic that way), so their TTFT, TPOT,
end-to-end time and rate come from ``predict_frame(..., batching="continuous")``; offline workloads, and
every workload on FlexGen (a static-batch offline runtime), use static batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from formulations.bigm import batch_requests, capacity_per_instance, min_hours_per_instance, worked_seconds
from solver.data.catalog import Catalog, load_catalog
from solver.data.models import get_model
from solver.data.scenario import check_references
from solver.performance.calibration import CalibrationProfile, load_profile
from solver.performance.memory import tp_shardable
from solver.specs import ModelSpec, Scenario, Workload

SLO_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("ttft_ms", "ttft_ms", "<="),
    ("tpot_ms", "tpot_ms", "<="),
    ("e2e_s", "e2e_s", "<="),
    ("tps", "tps", ">="),
)
"""(SLO field, candidate column, sense) of every latency SLO, in the order of constraints (4)-(7)."""

OFFLOAD_TOL = 1e-12

CONTINUOUS_BATCHING_ENGINES: tuple[str, ...] = ("vllm", "tgi", "trtllm", "generic")
"""Engines that serve online traffic with continuous batching (FlexGen runs static batches only)."""

TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
"""TP degrees enumerated: powers of two (an instance's GPU count must be a multiple)."""

DROP_REASONS: dict[str, str] = {
    "price_cap": "raise limits.max_price_usd_per_hour",
    "tp_degrees": "add degrees to search.tp_degrees (or remove it)",
    "tp_heads": "use instances whose GPU count allows a TP degree that shards the model",
    "memory": "allow larger instances, regions or markets, or a smaller dtype",
    "deadline": "extend the workload's deadline_h (one static batch must end before it)",
}
"""Reasons a candidate is removed before the MILP, and what would bring it back (SLO reasons: relax the SLO)."""


@dataclass(frozen=True)
class CandidateSet:
    """Candidates and what was dropped before the MILP.

    Attributes
    ----------
    frame
        One row per candidate (columns: :data:`formulations.CANDIDATE_COLUMNS` and more).
    dropped
        Per workload, rows removed per reason: ``price_cap`` (instance dearer than
        ``limits.max_price_usd_per_hour``), ``tp_heads`` (the TP degree does not shard the model,
        :func:`solver.performance.memory.tp_shardable`), ``tp_degrees`` (a degree that shards the model but is not in
        ``search.tp_degrees``), ``memory`` (no offload fraction in [0, 1] fits GPU and host memory).
    considered
        Per workload, rows enumerated before any filter.
    """

    frame: pd.DataFrame
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    considered: dict[str, int] = field(default_factory=dict)


def scenario_catalog(scenario: Scenario, catalog: Catalog | None = None) -> Catalog:
    """Return the scenario's catalog filtered by its regions and instance list."""
    cat = catalog if catalog is not None else load_catalog(scenario.catalog)
    return cat.filter(regions=scenario.regions, instances=scenario.instances)


def offers(scenario: Scenario, catalog: Catalog | None = None) -> pd.DataFrame:
    """One row per (instance type, region, market) of the scenario with hardware and ``usd_per_hour``."""
    cat = scenario_catalog(scenario, catalog)
    return cat.offers(scenario.markets, scenario.spot_price)


def tp_options(gpu_count: np.ndarray, wanted: list[int] | None) -> list[np.ndarray]:
    """Per offer, the TP degrees: powers of two dividing the GPU count (GPU slices: 1), within ``wanted``."""
    per_count: dict[float, np.ndarray] = {}
    for g in np.unique(np.asarray(gpu_count, dtype=float)).tolist():
        if g < 1:
            degrees = [1]
        else:
            gi = round(g)
            degrees = [t for t in TP_DEGREES if t <= gi and gi % t == 0]
        if wanted is not None:
            degrees = [t for t in degrees if t in wanted]
        per_count[g] = np.array(degrees, dtype=np.int64)
    return [per_count[g] for g in np.asarray(gpu_count, dtype=float).tolist()]


def _grid(off: pd.DataFrame, tps: list[np.ndarray], batches: list[int]) -> pd.DataFrame:
    """Cross product offers × own TP degrees × batch sizes (vectorised with numpy repeats)."""
    n_tp = np.array([t.size for t in tps], dtype=np.int64)
    rep = np.repeat(np.arange(len(off)), n_tp)
    tp = np.concatenate(tps) if tps else np.zeros(0, dtype=np.int64)
    base = off.iloc[rep].reset_index(drop=True)
    base["tp"] = tp
    nb = len(batches)
    grid = base.iloc[np.repeat(np.arange(len(base)), nb)].reset_index(drop=True)
    grid["batch_size"] = np.tile(np.asarray(batches, dtype=np.int64), len(base))
    return grid


def batching_mode(workload: Workload, engine: str) -> str:
    """Return the batching ``predict_frame`` models for ``workload`` on ``engine``: continuous or static.

    Online workloads on an engine of :data:`CONTINUOUS_BATCHING_ENGINES` are served with continuous batching
    (their TTFT includes the interleaving with the other requests' decode steps, not the wait to fill a static
    batch); offline workloads, and everything on FlexGen, run static batches.
    """
    return "continuous" if workload.kind == "online" and engine in CONTINUOUS_BATCHING_ENGINES else "static"


def predict_workload(
    frame: pd.DataFrame, w: Workload, scenario: Scenario, field: str = "workloads.model", model: ModelSpec | None = None
) -> pd.DataFrame:
    """Run the performance model on ``frame`` for workload ``w`` of ``scenario`` (its engine, profile, batching).

    The one place where a workload becomes a :func:`solver.performance.model.predict_frame` call: the candidates and
    the evaluator both go through it. ``field`` names the workload's model in errors; ``model`` skips the look-up.
    """
    from solver.performance.model import predict_frame

    return predict_frame(
        frame,
        model if model is not None else get_model(w.model, field=field),
        input_tokens=w.input_tokens,
        output_tokens=w.output_tokens,
        dtype=w.dtype,
        kv_dtype=w.kv_dtype,
        engine=scenario.engine,
        offload_mode=scenario.offload_mode,
        profile=_profile(scenario),
        batching=batching_mode(w, scenario.engine),
    )


def _profile(scenario: Scenario) -> CalibrationProfile | None:
    """Load the scenario's calibration profile (``None``: the engine's shipped one)."""
    if scenario.profile is None:
        return None
    return load_profile(scenario.profile)


def workload_candidates(
    w: Workload, off: pd.DataFrame, scenario: Scenario, index: int = 0
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Candidates of workload ``index`` (``w``): (table, rows dropped per reason, rows considered)."""
    field = f"workloads.{index}.model"
    model = get_model(w.model, field=field)
    batches = sorted(set(w.batch_sizes or scenario.search.batch_sizes))
    tps = tp_options(off["gpu_count"].to_numpy(dtype=float), None)
    grid = _grid(off, tps, batches)
    considered = len(grid)
    dropped = {"price_cap": 0, "tp_heads": 0, "tp_degrees": 0, "memory": 0}
    cap = scenario.limits.max_price_usd_per_hour
    if cap is not None:
        keep = grid["usd_per_hour"].to_numpy(dtype=float) <= cap
        dropped["price_cap"] = int((~keep).sum())
        grid = grid[keep].reset_index(drop=True)
    heads_ok = tp_shardable(model, grid["tp"].to_numpy(dtype=np.int64))
    dropped["tp_heads"] = int((~heads_ok).sum())
    grid = grid[heads_ok].reset_index(drop=True)
    wanted = scenario.search.tp_degrees
    if wanted is not None:
        listed = np.isin(grid["tp"].to_numpy(dtype=np.int64), np.asarray(list(wanted), dtype=np.int64))
        dropped["tp_degrees"] = int((~listed).sum())
        grid = grid[listed].reset_index(drop=True)
    if grid.empty:
        return grid, dropped, considered
    first = predict_workload(grid.assign(offload_fraction=np.nan), w, scenario, model=model)
    fits = first["fits"].to_numpy(dtype=bool)
    dropped["memory"] = int((~fits).sum())
    first = first[fits].reset_index(drop=True)
    frames = [first]
    extra = [g for g in scenario.search.offload_grid]
    if extra and not first.empty:
        fmin = first["offload_fraction"].to_numpy(dtype=float)
        base = first[[*off.columns, "tp", "batch_size"]]
        parts = []
        for g in extra:
            sel = g > fmin + OFFLOAD_TOL
            if sel.any():
                parts.append(base[sel].assign(offload_fraction=float(g)))
        if parts:
            frames.append(predict_workload(pd.concat(parts, ignore_index=True), w, scenario, model=model))
    table = pd.concat(frames, ignore_index=True)
    gpu_count = table["gpu_count"].to_numpy(dtype=float)
    tp = table["tp"].to_numpy(dtype=float)
    table["replicas"] = np.where(gpu_count < 1, 1, np.floor(gpu_count / tp + 1e-9)).astype(np.int64)
    table["rate_rps"] = table["batch_size"].to_numpy(dtype=float) / table["e2e_s"].to_numpy(dtype=float)
    table.insert(0, "workload", w.name)
    table.insert(1, "kind", w.kind)
    return table, dropped, considered


def candidate_set(scenario: Scenario, catalog: Catalog | None = None) -> CandidateSet:
    """Enumerate and evaluate the candidates of every workload of ``scenario``.

    Parameters
    ----------
    scenario
        The planning problem (catalog, filters, workloads, search space, limits).
    catalog
        A catalog to use instead of ``scenario.catalog``.

    Returns
    -------
    CandidateSet
        The candidate table and the per-reason counts of rows dropped before the MILP.

    Raises
    ------
    InputError
        From :func:`solver.data.scenario.check_references` (unknown model, engine or quota key, a context window
        overflow; checked when no ``catalog`` is passed, since those checks read ``scenario.catalog``).
    """
    if catalog is None:
        check_references(scenario)
    off = offers(scenario, catalog)
    frames, dropped, considered = [], {}, {}
    for i, w in enumerate(scenario.workloads):
        table, drop, n = workload_candidates(w, off, scenario, i)
        frames.append(table)
        dropped[w.name] = drop
        considered[w.name] = n
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return CandidateSet(frame, dropped, considered)


def build_candidates(scenario: Scenario, catalog: Catalog | None = None) -> pd.DataFrame:
    """Return the candidate table of ``scenario`` (see :func:`candidate_set` for what was dropped)."""
    return candidate_set(scenario, catalog).frame


# ---- exact presolve ----------------------------------------------------------------------------------
def violations(cands: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Per candidate and check (memory, price cap, each SLO, offline batch time), True where it breaks.

    These are the candidates whose ``y_c`` constraints (2)-(7), (7a) and (12) fix ``y_c = 0``. Column
    ``deadline`` (7a): an offline candidate whose static batch takes longer (``e2e_s``) than one instance can
    work before the deadline, ``3600 · theta_w · H_w`` seconds (:func:`formulations.bigm.worked_seconds`).
    """
    wl = {w.name: w for w in scenario.workloads}
    code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
    out = pd.DataFrame(index=cands.index)
    out["memory.gpu"] = cands["total_gpu_gib"].to_numpy(dtype=float) > cands["available_gpu_gib"].to_numpy(
        dtype=float
    ) * (1 + 1e-12)
    out["memory.host"] = cands["offloaded_kv_gib"].to_numpy(dtype=float) > cands["host_available_gib"].to_numpy(
        dtype=float
    ) * (1 + 1e-12)
    cap = scenario.limits.max_price_usd_per_hour
    out["price_cap"] = (cands["usd_per_hour"].to_numpy(dtype=float) > cap) if cap is not None else False
    for slo_field, column, sense in SLO_CHECKS:
        per_workload = np.array([getattr(wl[n].slo, slo_field) or np.nan for n in uniques], dtype=float)
        limit = per_workload[code] if len(uniques) else np.zeros(0)
        value = cands[column].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = value > limit if sense == "<=" else value < limit
        out[f"slo.{slo_field}"] = np.isfinite(limit) & (bad | ~np.isfinite(value))
    window = np.array(
        [worked_seconds(scenario, wl[n]) if wl[n].kind == "offline" else np.inf for n in uniques], dtype=float
    )
    limit = window[code] if len(uniques) else np.zeros(0)
    e2e = cands["e2e_s"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        out["deadline"] = np.isfinite(limit) & ~(e2e <= limit * (1 + 1e-12))
    return out


DOMINANCE_KEY = ("workload", "instance_type", "family", "region", "market", "usd_per_hour")
"""Candidates equal on these columns differ only in capacity (and, offline, lost batch and least hours): every
limit row sees them alike (README, "Exact presolve")."""


def reduce_candidates(cands: pd.DataFrame, scenario: Scenario) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
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
    per_check = np.zeros((n_w, flags.shape[1] + 1), dtype=np.int64)
    np.add.at(per_check, (code, first + 1), 1)
    for k, wname in enumerate(uniques):
        counts = {col: int(per_check[k, j + 1]) for j, col in enumerate(bad.columns)}
        removed[str(wname)] = {key: v for key, v in counts.items() if v}
    kept = np.flatnonzero(~any_bad)
    kinds = np.array([w.kind == "offline" for w in scenario.workloads], dtype=bool)
    pos = {w.name: i for i, w in enumerate(scenario.workloads)}
    is_off = kinds[np.array([pos[str(u)] for u in uniques], dtype=np.int64)][code] if n_w else np.zeros(0, dtype=bool)
    on_rows = kept[~is_off[kept]]
    off_rows = kept[is_off[kept]]
    best = np.concatenate(
        [
            on_rows[_dominance_winners(cands, on_rows)],
            off_rows[_offline_winners(cands, off_rows, scenario)],
        ]
    )
    n_kept = np.bincount(code[kept], minlength=n_w)
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
