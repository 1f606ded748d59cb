"""Planning candidates: one row per (workload, instance offer, TP degree, batch size, KV offload fraction).

Every nonlinear quantity (memory, TTFT, TPOT, end-to-end time, TPS) is computed here, before the MILP, by
one vectorised :func:`solver.performance.model.predict_frame` call per workload (two when ``search.offload_grid``
adds offload fractions). The MILP then sees constants only (``formulations/README.md``).

Per candidate ``c``: ``replicas`` (``rho_c``) = floor(GPUs / tp) model copies per instance (1 on a GPU
slice); ``rate_rps`` (``r_c``) = ``batch_size / e2e_s``, one replica's sustainable request rate (Little's
law with ``batch_size`` requests in flight); offline work per instance-hour = 3600 · rho_c · r_c.

Batching (:func:`batching_mode`): online workloads are served the way the engine serves online traffic
(``online_batching`` in ``instances/engines.csv``: continuous for vLLM, TGI, TensorRT-LLM and generic), so
their TTFT, TPOT, end-to-end time and rate come from ``predict_frame(..., batching="continuous")`` at
concurrency ``b`` (the serving model of :mod:`solver.performance.serving`); offline workloads, and every
workload on FlexGen (a static-batch offline runtime), use static batches.

KV offload (``offloads_kv`` in ``instances/engines.csv``): engines that keep the KV cache on the GPU (vLLM,
TGI, TensorRT-LLM) get no offloaded candidates: their rows have offload fraction 0, ``search.offload_grid`` is
not enumerated for them, and under continuous batching the requests that do not fit in KV memory wait for a
slot (KV-capacity admission) instead of being offloaded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations import checks
from solver.data.catalog import Catalog, load_catalog
from solver.data.engines import engine_capabilities
from solver.data.models import get_model
from solver.data.scenario import check_references
from solver.performance.calibration import CalibrationProfile, load_profile
from solver.performance.ctcf import ENGINES
from solver.performance.memory import tp_shardable
from solver.planning.presolve import (
    OFFER_WEIGHT,
    offer_region_classes,
    types_interchangeable,
    violations,
)
from solver.specs import ModelSpec, Scenario, Workload
from solver.tolerances import OFFLOAD_GRID_TOL, PRESOLVE_REL_TOL, floor_int

CONTINUOUS_BATCHING_ENGINES: tuple[str, ...] = tuple(
    e for e in ENGINES if engine_capabilities(e).online_batching == "continuous"
)
"""Engines that serve online traffic with continuous batching (``instances/engines.csv``; FlexGen: static only)."""

TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
"""TP degrees enumerated: powers of two (an instance's GPU count must be a multiple)."""


@dataclass(frozen=True)
class CandidateSet:
    """Candidates and what was dropped before the MILP.

    Attributes
    ----------
    frame
        One row per candidate (columns: :data:`formulations.CANDIDATE_COLUMNS` and more).
    dropped
        Per workload, rows removed per reason: the price cap rule ``limits.max_price_usd_per_hour`` and the
        enumeration filters of :data:`formulations.checks.ENUMERATION_FILTERS` (``tp_heads``,
        ``search.tp_degrees``, ``memory``).
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


PRICE_COLUMNS: tuple[str, ...] = ("region", "market", "usd_per_hour")
"""Offer columns that are not hardware: offers equal on every other column are the same machine."""


def cheapest_offers(off: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Keep, of the offers of one machine, the cheapest; column :data:`OFFER_WEIGHT` counts the offers it stands for.

    Offers are one machine when they agree on every column but :data:`PRICE_COLUMNS` (instance type, family and
    hardware). Exact under :func:`~solver.planning.presolve.offers_interchangeable` (``formulations/README.md``,
    "Exact presolve", step 0): every candidate and pool of a dearer offer has the same predictions, rules (the
    price cap aside, which the cheaper one meets whenever the dearer does) and limit coefficients as the same
    configuration of the cheapest, whose price is no higher, so its counts, hours and shares move there without
    raising a row or the cost. With region quotas (17) and no spot row, the same holds within each region class
    of :func:`~solver.planning.presolve.offer_region_classes` (a region with a quota; all other regions
    together): the cheapest offer of a machine is kept per class. Offers above the price cap (12) are kept
    apart, one per machine (and class): their rows are only counted. Ties in price keep the offer first by
    (region, market), the tie-break stage's order. Without interchangeable offers (a spot row), every offer is
    kept with weight 1.
    """
    classes = offer_region_classes(scenario) if not off.empty else None
    if classes is None:
        return off.assign(**{OFFER_WEIGHT: 1})
    price_cap = checks.rule("limits.max_price_usd_per_hour")
    name = scenario.workloads[0].name if scenario.workloads else ""
    capped = price_cap.broken(off.assign(workload=name), scenario, PRESOLVE_REL_TOL)
    machine = [c for c in off.columns if c not in PRICE_COLUMNS]
    region_class = off["region"].where(off["region"].isin(sorted(classes)), "")
    key = off[machine].assign(_capped=capped, _region_class=region_class)
    code = _combined_codes(key, [*machine, "_capped", "_region_class"])
    order = np.lexsort(
        (
            off["market"].to_numpy(dtype=str),
            off["region"].to_numpy(dtype=str),
            off["usd_per_hour"].to_numpy(dtype=float),
            code,
        )
    )
    first = order[np.r_[True, code[order][1:] != code[order][:-1]]]
    weight = np.bincount(code, minlength=int(code.max()) + 1)
    kept = off.iloc[np.sort(first)]
    return kept.assign(**{OFFER_WEIGHT: weight[code[np.sort(first)]]}).reset_index(drop=True)


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
    (their TTFT includes waiting for a KV slot and the interleaving with the other requests' decode steps, not
    the wait to fill a static batch); offline workloads, and everything on FlexGen, run static batches.
    """
    return "continuous" if workload.kind == "online" and engine in CONTINUOUS_BATCHING_ENGINES else "static"


def predict_workload(
    frame: pd.DataFrame,
    w: Workload,
    scenario: Scenario,
    field: str = "workloads.model",
    model: ModelSpec | None = None,
    batching: str | None = None,
) -> pd.DataFrame:
    """Run the performance model on ``frame`` for workload ``w`` of ``scenario`` (its engine, profile, batching).

    The one place where a workload becomes a :func:`solver.performance.model.predict_frame` call: the candidates and
    the evaluator and ``recommend`` go through it. ``field`` names the workload's model in errors; ``model`` skips
    the look-up; ``batching`` overrides :func:`batching_mode` (InferSave's question is about static batches).
    """
    from solver.performance.model import predict_frame
    from solver.performance.uncertainty import apply_confidence

    mode = batching or batching_mode(w, scenario.engine)
    pred = predict_frame(
        frame,
        model if model is not None else get_model(w.model, field=field),
        input_tokens=w.input_tokens,
        output_tokens=w.output_tokens,
        dtype=w.dtype,
        kv_dtype=w.kv_dtype,
        engine=scenario.engine,
        offload_mode=scenario.offload_mode,
        profile=_profile(scenario),
        batching=mode,
    )
    return apply_confidence(pred, scenario.engine, mode, scenario.search.slo_confidence)  # search.slo_confidence


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

    def count(mask: np.ndarray) -> int:
        """Rows of ``mask``, each counted for the offers it stands for (:func:`cheapest_offers`)."""
        if OFFER_WEIGHT not in grid.columns:
            return int(mask.sum())
        return int(grid[OFFER_WEIGHT].to_numpy(dtype=np.int64)[mask].sum())

    considered = count(np.ones(len(grid), dtype=bool))
    price_cap = checks.rule("limits.max_price_usd_per_hour")
    dropped = {price_cap.name: 0, "tp_heads": 0, "search.tp_degrees": 0, "memory": 0}
    too_dear = price_cap.broken(grid.assign(workload=w.name), scenario, PRESOLVE_REL_TOL)
    dropped[price_cap.name] = count(too_dear)
    grid = grid[~too_dear].reset_index(drop=True)
    heads_ok = tp_shardable(model, grid["tp"].to_numpy(dtype=np.int64))
    dropped["tp_heads"] = count(~heads_ok)
    grid = grid[heads_ok].reset_index(drop=True)
    wanted = scenario.search.tp_degrees
    if wanted is not None:
        listed = np.isin(grid["tp"].to_numpy(dtype=np.int64), np.asarray(list(wanted), dtype=np.int64))
        dropped["search.tp_degrees"] = count(~listed)
        grid = grid[listed].reset_index(drop=True)
    grid = expert_parallel_rows(grid, model)
    if grid.empty:
        return grid, dropped, considered
    first = predict_workload(grid.assign(offload_fraction=np.nan), w, scenario, model=model)
    fits = first["fits"].to_numpy(dtype=bool)
    dropped["memory"] = count(~fits)
    first = first[fits].reset_index(drop=True)
    frames = [first]
    extra = [g for g in scenario.search.offload_grid] if engine_capabilities(scenario.engine).offloads_kv else []
    if extra and not first.empty:
        fmin = first["offload_fraction"].to_numpy(dtype=float)
        base = first[[*off.columns, "tp", "ep", "batch_size"]]
        parts = []
        for g in extra:
            sel = g > fmin + OFFLOAD_GRID_TOL
            if sel.any():
                parts.append(base[sel].assign(offload_fraction=float(g)))
        if parts:
            frames.append(predict_workload(pd.concat(parts, ignore_index=True), w, scenario, model=model))
    table = pd.concat(frames, ignore_index=True)
    table["replicas"] = replicas_per_instance(table).astype(np.int64)
    table["rate_rps"] = table["batch_size"].to_numpy(dtype=float) / table["e2e_s"].to_numpy(dtype=float)
    table.insert(0, "workload", w.name)
    table.insert(1, "kind", w.kind)
    return table, dropped, considered


def expert_parallel_rows(grid: pd.DataFrame, model: ModelSpec) -> pd.DataFrame:
    """Add the expert-parallel dimension (``ep``) to the enumeration grid.

    Column ``ep`` = 1 on every row, and for a mixture-of-experts model a copy with ``ep = tp`` of each row with
    1 < tp <= routed experts (whole experts spread over the replica's GPUs instead of every expert sharded by
    TP; :mod:`solver.performance.latency`).
    """
    out = grid.assign(ep=np.ones(len(grid), dtype=np.int64))
    if not model.is_moe or grid.empty:
        return out
    tp = grid["tp"].to_numpy(dtype=np.int64)
    wide = grid[(tp > 1) & (tp <= model.num_experts)]
    return pd.concat([out, wide.assign(ep=wide["tp"].to_numpy(dtype=np.int64))], ignore_index=True)


def replicas_per_instance(frame: pd.DataFrame) -> np.ndarray:
    """Per row, ``rho``: model copies per instance, ``floor(gpu_count / tp)`` (1 on a GPU slice; NaN where unknown)."""
    gpu_count = frame["gpu_count"].to_numpy(dtype=float)
    return np.where(gpu_count < 1, 1.0, floor_int(gpu_count / frame["tp"].to_numpy(dtype=float)))


def candidate_set(scenario: Scenario, catalog: Catalog | None = None, *, cheapest: bool = False) -> CandidateSet:
    """Enumerate and evaluate the candidates of every workload of ``scenario``.

    Parameters
    ----------
    scenario
        The planning problem (catalog, filters, workloads, search space, limits).
    catalog
        A catalog to use instead of ``scenario.catalog``.
    cheapest
        Enumerate only the cheapest offer of each machine (:func:`cheapest_offers`, exact for planning); the
        rows then carry :data:`OFFER_WEIGHT` and the counts of ``dropped`` and ``considered`` every offer.

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
    if cheapest:
        off = cheapest_offers(off, scenario)
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


# --------------------------------------------------------------------------------------------------
# Shared replicas (formulations/sharing.py): one pool per configuration two or more classes may share
# --------------------------------------------------------------------------------------------------
POOL_CONFIG: tuple[str, ...] = ("instance_type", "region", "market", "tp", "ep", "batch_size", "offload_fraction")
"""A pool's configuration: classes routed to one pool run on replicas of exactly this."""
POOLS_PER_CLASS = 8
"""Pools kept per class: the ones where it costs least per request/s (``price / (rho · r_{k,p})``). A cap on the
size of the shared model (engineering bound, not a coefficient): plans can only get cheaper with more pools, and
never dearer than without sharing, since every class keeps its own candidates."""
MEMORY_COLUMNS: tuple[str, ...] = ("total_gpu_gib", "available_gpu_gib", "offloaded_kv_gib", "host_available_gib")


def mixed_tokens(ceiling_in: int, ceiling_out: int, own_out: int) -> int:
    """Prompt length that sizes a class with ``own_out`` output tokens mixed with co-tenants up to the ceiling.

    The class is predicted with this prompt and its own output: its prefill interference is that of a prompt
    of at least ``ceiling_in`` tokens, and its mean decode context ``prompt + own_out / 2`` equals the
    ceiling's ``ceiling_in + ceiling_out / 2`` (``formulations/README.md``, "Shared replicas", (21)).
    """
    return ceiling_in + max(0, -(-(ceiling_out - own_out) // 2))


def shared_candidates(
    frame: pd.DataFrame, scenario: Scenario, groups: dict[str, list[str]], *, across: bool | None = None
) -> pd.DataFrame:
    """Pooled candidate rows: per configuration that two or more classes of a sharing group may use.

    Parameters
    ----------
    frame
        The per-class candidate table of the class scenario (:func:`candidate_set` of
        :func:`solver.data.traffic.expand`'s scenario).
    scenario
        That class scenario.
    groups
        Sharing groups: key → class names (:meth:`solver.data.traffic.Classes.groups`).
    across
        Drop pools dominated by a no dearer pool of another offer (README "Exact presolve", step 2c); default
        :func:`~solver.planning.presolve.types_interchangeable`. Pass ``False`` when the table will be changed
        before it is solved (rows removed, rates lowered), where a dominated pool may come back into play.

    Returns
    -------
    pandas.DataFrame
        The frame's columns plus ``pool``: for every configuration (:data:`POOL_CONFIG`) where two or more classes
        of one group meet every per-candidate rule on their own, one row per such class predicted *in the
        mix* — its prompt raised by :func:`mixed_tokens` to the pool's ceiling (the longest prompt and output
        among those classes), its memory columns those of the pool's most demanding class — kept when the class
        still meets its rules; pools left with fewer than two classes are dropped, and so is a pool another one
        of the same offer dominates (serves a superset of its classes, each at a capacity per instance at least
        as large). Empty when nothing can be shared.
    """
    columns = [*frame.columns, "pool"]
    if frame.empty or not groups:
        return pd.DataFrame(columns=columns)
    wl = {w.name: w for w in scenario.workloads}
    group_of = {name: key for key, names in groups.items() for name in names}
    code, names = pd.factorize(frame["workload"], sort=False)
    in_group = np.array([str(k) in group_of for k in names], dtype=bool)
    part = frame[in_group[code]] if len(names) else frame
    part = part[~violations(part, scenario).any(axis=1).to_numpy()]
    if part.empty:
        return pd.DataFrame(columns=columns)
    code, names = pd.factorize(part["workload"], sort=False)
    part = part.assign(
        _group=np.array([group_of[str(k)] for k in names], dtype=object)[code],
        _in=np.array([wl[str(k)].input_tokens for k in names], dtype=np.int64)[code],
        _out=np.array([wl[str(k)].output_tokens for k in names], dtype=np.int64)[code],
    )
    # integer codes: the offer (type, region, market) and the configuration (offer, TP, batch, offload)
    offer = _combined_codes(part, ["instance_type", "region", "market"])
    group = pd.factorize(part["_group"], sort=False)[0]
    config = _combined_codes(
        pd.DataFrame(
            {
                "g": group,
                "o": offer,
                "tp": part["tp"].to_numpy(),
                "ep": part["ep"].to_numpy() if "ep" in part else np.ones(len(part), dtype=np.int64),
                "b": part["batch_size"].to_numpy(),
                "f": part["offload_fraction"].to_numpy(),
            }
        ),
        ["g", "o", "tp", "ep", "b", "f"],
    )
    # pools only at configurations where some class of the group has its largest capacity per instance on that
    # offer (the configuration the presolve keeps for it alone): a restriction of the shared model, never of
    # the classes' own candidates, so it cannot make a plan dearer than planning without sharing
    cap = part["replicas"].to_numpy(dtype=float) * part["rate_rps"].to_numpy(dtype=float)
    wcode = pd.factorize(part["workload"], sort=False)[0]
    class_offer = _combined_codes(pd.DataFrame({"w": wcode, "o": offer}), ["w", "o"])
    best = np.full(int(class_offer.max()) + 1, -np.inf)
    np.maximum.at(best, class_offer, cap)
    chosen = np.zeros(int(config.max()) + 1, dtype=bool)
    chosen[config[cap >= best[class_offer]]] = True
    keep = chosen[config]
    members = np.bincount(config[keep], minlength=chosen.size)
    keep &= members[config] >= 2
    part = part[keep]
    if part.empty:
        return pd.DataFrame(columns=columns)
    part = part.assign(_pool=pd.factorize(config[keep], sort=False)[0])
    ceiling_in = part.groupby("_pool")["_in"].transform("max").to_numpy(dtype=np.int64)
    ceiling_out = part.groupby("_pool")["_out"].transform("max").to_numpy(dtype=np.int64)
    # memory of the mix: at most the most demanding class's (b sequences of the longest context), which fits
    worst = part.groupby("_pool")["total_gpu_gib"].transform("idxmax")
    memory = frame.loc[worst.to_numpy(), list(MEMORY_COLUMNS)].to_numpy(dtype=float)
    prompt = np.array(
        [mixed_tokens(int(i), int(o), int(k)) for i, o, k in zip(ceiling_in, ceiling_out, part["_out"], strict=True)]
    )
    part = part.assign(_prompt=prompt)
    part[list(MEMORY_COLUMNS)] = memory
    out = part.assign(**_mixed_predictions(part, wl, scenario))
    # InferSave's TPS counts the class's own tokens, not the ceiling's
    own = out["_in"].to_numpy(dtype=float) + out["_out"].to_numpy(dtype=float)
    out["tps"] = out["batch_size"].to_numpy(dtype=float) * own / out["e2e_s"].to_numpy(dtype=float)
    out["rate_rps"] = out["batch_size"].to_numpy(dtype=float) / out["e2e_s"].to_numpy(dtype=float)
    out = out[~violations(out, scenario).any(axis=1).to_numpy()]
    members = out.groupby("_pool")["workload"].transform("size").to_numpy()
    out = out[members >= 2]
    out = _drop_dominated_pools(out)
    out = _cheapest_pools(out, POOLS_PER_CLASS)
    if across is None:
        across = types_interchangeable(scenario)
    if across:  # exact: a dominated pool's shares move onto a kept, no dearer one
        out = _drop_dominated_pools(out, across=True)
    if out.empty:
        return pd.DataFrame(columns=columns)
    out["pool"] = pd.factorize(out["_pool"], sort=False)[0].astype(np.int64)
    return out[columns].reset_index(drop=True)


MIXED_COLUMNS: tuple[str, ...] = (
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
    "tps",
    "ttft_model_ms",
    "tpot_model_ms",
    "output_tokens_per_s",
)
"""Columns re-predicted for a class in a mix (row (21)); memory is the pool's most demanding class's."""


def _mixed_predictions(part: pd.DataFrame, wl: dict[str, Workload], scenario: Scenario) -> dict[str, np.ndarray]:
    """Per pooled row, :data:`MIXED_COLUMNS` of its class at the row's configuration with the prompt ``_prompt``.

    The performance model sees a workload only through its model, dtypes, kind (batching) and lengths, and a row
    only through :data:`solver.performance.model.INPUT_COLUMNS`: rows are predicted once per distinct
    (model, dtype, KV dtype, kind, prompt, output) and, within it, per distinct configuration (the same
    numbers as predicting every row of every class on its own, with a fraction of the calls).
    """
    from solver.performance.model import INPUT_COLUMNS

    names = part["workload"].to_numpy()
    wcode, wnames = pd.factorize(names, sort=False)
    keys = [(wl[str(n)].model, wl[str(n)].dtype, wl[str(n)].kv_dtype, wl[str(n)].kind) for n in wnames]
    kcode = pd.factorize(pd.Series(keys, dtype=object), sort=False)[0][wcode]
    code = _combined_codes(
        pd.DataFrame({"k": kcode, "p": part["_prompt"].to_numpy(), "o": part["_out"].to_numpy()}), ["k", "p", "o"]
    )
    values = {c: np.full(len(part), np.nan) for c in MIXED_COLUMNS}
    order = np.argsort(code, kind="stable")
    bounds = np.flatnonzero(np.r_[True, code[order][1:] != code[order][:-1], True])
    prompt = part["_prompt"].to_numpy(dtype=np.int64)
    inputs = part[list(INPUT_COLUMNS)]
    cards: dict[str, ModelSpec] = {}
    for a, b in itertools.pairwise(bounds.tolist()):
        idx = order[a:b]
        w = wl[str(names[idx[0]])].model_copy(update={"input_tokens": int(prompt[idx[0]])})
        unique, back = _distinct_rows(inputs.iloc[idx].reset_index(drop=True), INPUT_COLUMNS)
        if w.model not in cards:
            cards[w.model] = get_model(w.model)
        pred = predict_workload(unique, w, scenario, model=cards[w.model])
        for col in MIXED_COLUMNS:
            if col in pred.columns:
                got = pred[col].to_numpy(dtype=float)
                values[col][idx] = got if back is None else got[back]
    return {c: v for c, v in values.items() if not np.isnan(v).all()}


def _distinct_rows(frame: pd.DataFrame, cols: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Return the distinct rows of ``frame`` on ``cols`` (first occurrences) and each row's position among them.

    ``None`` instead of positions when every row is distinct.
    """
    if len(frame) < 2:
        return frame, None
    code = _combined_codes(frame, list(cols))
    n = int(code.max()) + 1
    if n == len(frame):
        return frame, None
    first = np.full(n, len(frame), dtype=np.int64)
    np.minimum.at(first, code, np.arange(len(frame)))
    return frame.iloc[first].reset_index(drop=True), code


def _cheapest_pools(rows: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """Keep the pools that are among the ``per_class`` cheapest per request/s for at least one of their classes."""
    if rows.empty:
        return rows
    unit = rows["usd_per_hour"].to_numpy(dtype=float) / (
        rows["replicas"].to_numpy(dtype=float) * rows["rate_rps"].to_numpy(dtype=float)
    )
    ranked = rows.assign(_unit=unit).sort_values(["workload", "_unit"], kind="stable")
    top = ranked.groupby("workload", sort=False).head(per_class)["_pool"].unique()
    return rows[rows["_pool"].isin(top)]


def _combined_codes(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One integer code per distinct combination of ``cols`` (factorised column by column)."""
    out = np.zeros(len(frame), dtype=np.int64)
    for col in cols:
        code, uniques = pd.factorize(frame[col], sort=False)
        out = pd.factorize(out * (len(uniques) + 1) + code, sort=False)[0].astype(np.int64)
    return out


def _drop_dominated_pools(rows: pd.DataFrame, across: bool = False) -> pd.DataFrame:
    """Drop a pool when another pool of the same offer and group serves every class of it at least as well.

    Capacity per instance ``rho · r_{k,p}``; a dominated pool's shares move onto the dominating pool without
    raising its row (20) count beyond the moved pool's, every other row seeing the same type, region and price.
    With ``across`` (only under :func:`solver.planning.presolve.types_interchangeable`), pools of every offer of
    the group are compared and the dominating pool must also be no dearer per instance (README, "Exact
    presolve", step 2c). Ties keep the cheaper pool, then the one with the larger total capacity, then the first.
    """
    if rows.empty:
        return rows
    cap = rows["replicas"].to_numpy(dtype=float) * rows["rate_rps"].to_numpy(dtype=float)
    pool_code, pools = pd.factorize(rows["_pool"], sort=False)
    class_code, _classes = pd.factorize(rows["workload"], sort=False)
    mat = np.zeros((pools.size, int(class_code.max()) + 1))
    np.maximum.at(mat, (pool_code, class_code), cap)
    first = np.zeros(pools.size, dtype=np.int64)
    first[pool_code[::-1]] = np.arange(len(rows))[::-1]
    keys = ["_group"] if across else ["_group", "instance_type", "region", "market", "usd_per_hour"]
    offer_key = rows[keys].iloc[first]
    offer, _ = pd.factorize(pd.MultiIndex.from_frame(offer_key), sort=False)
    price = rows["usd_per_hour"].to_numpy(dtype=float)[first]
    order = np.lexsort((-mat.sum(axis=1), price, offer))
    alive = np.ones(pools.size, dtype=bool)
    bounds = np.flatnonzero(np.diff(offer[order], prepend=-1, append=-2) != 0)
    for a, b in itertools.pairwise(bounds):
        seg = order[a:b]
        if seg.size < 2:
            continue
        m = mat[seg]
        dom = np.all(m[:, None, :] >= m[None, :, :], axis=2)  # dom[i, j]: i serves everything j does, as well
        dom &= price[seg][:, None] <= price[seg][None, :]  # ... and is no dearer (always so within one offer)
        np.fill_diagonal(dom, False)
        earlier = np.tri(seg.size, k=-1, dtype=bool).T  # i before j in the order
        equal = dom & dom.T
        beaten = (dom & ~equal).any(axis=0) | (equal & earlier).any(axis=0)
        alive[seg[beaten]] = False
    return rows[alive[pool_code]]
