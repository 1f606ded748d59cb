"""Calibration from measurements: the measurement table, the per-GPU CTCF fit with its errors, ``calibrate``.

A measurement row may give any subset of ``ttft_ms``, ``tpot_ms`` and ``e2e_s``; :func:`calibrate` models every
row (:func:`solver.performance.measurements.model_measurements`) and fits one CTCF per GPU
(:func:`solver.performance.ctcf.fit_ctcf`, where the equations and constraints are). The CTCF itself, its
profiles, the identity profile and profile files are in :mod:`solver.performance.ctcf`; the names a caller of
calibration needs from there are re-exported here.

Measurement table schema (CSV, one row per measured run; ``infersave calibrate`` reads it):

============  =====================================================================================
column        meaning
============  =====================================================================================
gpu           GPU name or alias (``instances/gpus.csv``)                                   required
model         shipped model name or HF id (``infersave models``)                            required
tp            tensor-parallel degree (GPUs per replica)                                    default 1
dtype         weight dtype fp16|bf16|fp8|int8|int4                            default: the model's
kv_dtype      KV-cache dtype                                                    default: from dtype
engine        serving engine (vllm, tgi, trtllm, flexgen, generic)                      default vllm
batch         sequences in the batch (static) or concurrency (continuous)                 required
input         prompt tokens per sequence                                                  required
output        generated tokens per sequence                                               required
ttft_ms       measured time to first token                                                optional
tpot_ms       measured time per output token                                              optional
e2e_s         measured end-to-end time of the batch                                       optional
batching      ``static`` (default) or ``continuous`` (serving benchmark at fixed concurrency)
offload       KV offload fraction (default 0)                   offload_mode: copy|cpu_attention
dataset       free label, used by leave-one-dataset-out validation                        optional
============  =====================================================================================

At least one of ttft_ms, tpot_ms, e2e_s must be present in each row. A mixture-of-experts row may also give
``expert_routing`` (``uniform`` or ``same_experts``): how its benchmark routed, default the model card's
(:mod:`solver.performance.measurements`); a continuous-batching row ``arrivals`` (``steady``, ``cohort`` or
``burst``): how its benchmark's clients sent requests, default ``steady`` (:mod:`solver.performance.serving`).

GPUs without measurements take the fit of the nearest measured GPU by spec in the same profile
(:func:`solver.performance.ctcf.nearest_measured_gpu`). The ``generic`` profile pools every engine's measurements
per GPU.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solver.data.gpus import get_gpu
from solver.errors import InputError, UnknownNameError
from solver.performance import ctcf
from solver.performance.ctcf import (
    DEFAULT_ENGINE,
    ENGINES,
    CalibrationProfile,
    FitError,
    GPUCalibration,
    PhaseFit,
    check_fit_bounds,
    fit_ctcf,
    fit_identifiability,
    load_profile,
    nearest_measured_gpu,
    resolve_profile,
    save_profile,
    shipped_profile,
)
from solver.performance.measurements import model_measurements, serving_calibrated
from solver.specs import MAX_BATCH, MAX_TOKENS

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "MEASURED",
    "CalibrationProfile",
    "abs_pct_errors",
    "calibrate",
    "calibrated",
    "check_measurements",
    "fit_ctcf",
    "fit_errors",
    "fit_profile",
    "load_profile",
    "nearest_measured_gpu",
    "read_measurements",
    "resolve_profile",
    "save_profile",
    "shipped_profile",
]

MEASURED = ("ttft_ms", "tpot_ms", "e2e_s")
REQUIRED_COLUMNS = ("gpu", "model", "batch", "input", "output")
TP_DEGREES = tuple(2**k for k in range(7))
"""Tensor-parallel degrees a measurement may have: the planner's (powers of two up to 64, ``search.tp_degrees``)."""
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "tp": 1,
    "dtype": None,
    "kv_dtype": None,
    "engine": DEFAULT_ENGINE,
    "batching": "static",
    "offload": 0.0,
    "offload_mode": "copy",
    "dataset": "user",
}


# ---- measurement tables ------------------------------------------------------------------------------
def read_measurements(path: str | Path, field: str = "measurements") -> pd.DataFrame:
    """Read and check a measurement CSV (schema in the module docstring); fills defaults of optional columns."""
    p = Path(path).expanduser()
    try:
        frame = pd.read_csv(p)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(p)!r} as CSV: {str(exc).splitlines()[0]}") from None
    return check_measurements(frame, field=f"{field} ({p.name})")


def check_measurements(frame: pd.DataFrame, field: str = "measurements") -> pd.DataFrame:
    """Validate a measurement table and return a normalised copy (canonical GPU names, defaults filled)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(field, f"missing required column(s) {', '.join(missing)}")
    if not any(c in frame.columns for c in MEASURED):
        raise InputError(field, "needs at least one measured column: ttft_ms, tpot_ms or e2e_s")
    if frame.empty:
        raise InputError(field, "has no rows")
    out = frame.copy()
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in out.columns:
            out[col] = default
        elif default is not None:
            out[col] = out[col].where(out[col].notna(), default)
    for col in MEASURED:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="coerce")
    for col, lo, hi, integer in (
        ("batch", 1, MAX_BATCH, True),
        ("input", 1, MAX_TOKENS, True),
        ("output", 1, MAX_TOKENS, True),
        ("tp", 1, max(TP_DEGREES), True),
        ("offload", 0, 1, False),
    ):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values < lo) | (values > hi)
        if integer:
            bad |= values.fillna(0) % 1 != 0
        if col == "tp":
            bad |= ~values.isin(TP_DEGREES)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            kind = "an integer" if integer else "a number"
            allowed = f"one of {', '.join(map(str, TP_DEGREES))}" if col == "tp" else f"{kind} in [{lo:,}, {hi:,}]"
            raise InputError(f"{field} row {i + 2}: {col}", f"must be {allowed}, got {frame[col].iloc[i]!r}")
        out[col] = values
    measured = out[list(MEASURED)]
    if ((measured <= 0) & measured.notna()).any().any():
        raise InputError(field, "measured times must be positive")
    infinite = np.isinf(measured.to_numpy(dtype=float)).any(axis=1)
    if infinite.any():
        i = int(np.flatnonzero(infinite)[0])
        raise InputError(f"{field} row {i + 2}", "measured times must be finite (got inf)")
    empty = measured.isna().all(axis=1)
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError(f"{field} row {i + 2}", "has none of ttft_ms, tpot_ms, e2e_s")
    out["gpu"] = [get_gpu(str(g), field=f"{field}: gpu").name for g in out["gpu"]]
    for eng in out["engine"].unique():
        if eng not in ENGINES:
            raise UnknownNameError(f"{field}: engine", "engine", str(eng), ENGINES)
    bad_batching = ~out["batching"].isin(["static", "continuous"])
    if bad_batching.any():
        raise InputError(f"{field}: batching", "must be 'static' or 'continuous'")
    return out.reset_index(drop=True)


# ---- the fit and its errors ---------------------------------------------------------------------------
def abs_pct_errors(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Absolute percentage errors ``|pred - meas| / meas · 100`` of the rows where both are finite.

    Parameters
    ----------
    pred, meas
        Predicted and measured values (NaN where not measured).

    Returns
    -------
    numpy.ndarray
        One error per row with a finite measurement and prediction, percent.
    """
    ok = np.isfinite(meas) & np.isfinite(pred)
    return np.abs(pred[ok] - meas[ok]) / meas[ok] * 100.0


SERVING_STEP_FIT = True
"""Fit and apply the decode CTCF of serving rows on the decode step (as the serving model applies it) rather than on
the serving model's composed TPOT (False: as before). Evaluated in docs/accuracy.md (ablations)."""


def decode_stretch(modelled: pd.DataFrame) -> np.ndarray:
    """Return ``tpot_model_ms / step_model_ms`` per row (1 for static batches or without ``step_model_ms``).

    Under continuous batching it is the serving model's stretch of the decode step by the other requests' prefills
    (``1 / (1 - X·q')``, :mod:`solver.performance.serving`).

    The decode CTCF applies to the step, as in :func:`solver.performance.model.predict_frame`; a serving row's TPOT
    is then that calibrated step times the stretch of the raw model (linearised: the stretch is not recomputed at
    the calibrated times).
    """
    tpot = modelled["tpot_model_ms"].to_numpy(dtype=float)
    if "step_model_ms" not in modelled or not SERVING_STEP_FIT:
        return np.ones_like(tpot)
    step = modelled["step_model_ms"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = tpot / step
    return np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)


def _running(modelled: pd.DataFrame) -> np.ndarray:
    """Sequences in each row's decode step: ``running`` (continuous batching), else the batch."""
    batch = modelled["batch"].to_numpy(dtype=float)
    if "running" not in modelled:
        return batch
    run = modelled["running"].to_numpy(dtype=float)
    return np.where(np.isfinite(run) & (run > 0), run, batch)


COMPOSED_SERVING = True
"""Score serving rows (continuous batching) as ``infersave predict`` computes them: the serving model composed from
the calibrated phase times (:func:`solver.performance.measurements.serving_calibrated`). False: the raw model's
stretch times the calibrated decode step (the fit's linearisation; how they were scored before). Used where
:func:`calibrated` is called with ``composed=True`` (``infersave validate``, the profiles' in-sample errors);
evaluated in docs/accuracy.md (ablations)."""


def calibrated(modelled: pd.DataFrame, profile: CalibrationProfile, *, composed: bool = False) -> pd.DataFrame:
    """Calibrated times of modelled measurement rows under ``profile`` (each row's GPU, with fallback).

    Parameters
    ----------
    modelled
        Measurement rows with ``gpu``, ``output``, ``ttft_model_ms`` and ``tpot_model_ms``.
    profile
        The profile applied (:func:`solver.performance.ctcf.apply_ctcf`).
    composed
        Serving rows (``batching`` continuous) as predict computes them (:data:`COMPOSED_SERVING`); default the
        linearisation the fit uses (static rows are the same either way).

    Returns
    -------
    pandas.DataFrame
        ``ttft_cal_ms``, ``tpot_cal_ms`` and ``e2e_cal_s`` (``(ttft + output · tpot) / 1000``), on the index
        of ``modelled``.
    """
    gpus = modelled["gpu"].to_numpy()
    layers = modelled["num_layers"].to_numpy(dtype=float) if "num_layers" in modelled else 0.0
    stretch = decode_stretch(modelled)
    step = modelled["tpot_model_ms"].to_numpy(dtype=float) / stretch
    seqs = _running(modelled)
    ttft, tpot = ctcf.apply_ctcf(profile, gpus, modelled["ttft_model_ms"], step, layers, running=seqs)
    tpot = tpot * stretch
    out = pd.DataFrame({"ttft_cal_ms": ttft, "tpot_cal_ms": tpot}, index=modelled.index)
    serving = modelled["batching"].to_numpy() == "continuous" if "batching" in modelled else np.zeros(len(out), bool)
    if composed and COMPOSED_SERVING and serving.any():
        exact = serving_calibrated(modelled[serving], profile)
        out.loc[exact.index, ["ttft_cal_ms", "tpot_cal_ms"]] = exact[["ttft_cal_ms", "tpot_cal_ms"]].to_numpy()
    out["e2e_cal_s"] = (out["ttft_cal_ms"] + modelled["output"].to_numpy(dtype=float) * out["tpot_cal_ms"]) / 1000.0
    return out


def fit_errors(rows: pd.DataFrame, cal: pd.DataFrame) -> dict[str, FitError]:
    """In-sample MAPE before/after CTCF and worst error after, for each measured metric.

    Parameters
    ----------
    rows
        Modelled measurement rows (measured and ``*_model_*`` columns).
    cal
        Their calibrated times (:func:`calibrated`), on the same rows.

    Returns
    -------
    dict
        Metric (``ttft_ms``, ``tpot_ms``, ``e2e_s``; only those measured) to its :class:`FitError`.
    """
    errs: dict[str, FitError] = {}
    for meas, model_col, cal_col in (
        ("ttft_ms", "ttft_model_ms", "ttft_cal_ms"),
        ("tpot_ms", "tpot_model_ms", "tpot_cal_ms"),
        ("e2e_s", "e2e_model_s", "e2e_cal_s"),
    ):
        m = rows[meas].to_numpy(dtype=float)
        n = int(np.isfinite(m).sum())
        if n == 0:
            continue
        before = abs_pct_errors(rows[model_col].to_numpy(dtype=float), m)
        after = abs_pct_errors(cal[cal_col].to_numpy(dtype=float), m)
        errs[meas] = FitError(
            rows=n,
            mape_before_pct=round(float(before.mean()), 2),
            mape_after_pct=round(float(after.mean()), 2),
            worst_after_pct=round(float(after.max()), 2),
        )
    return errs


def fit_profile(
    modelled: pd.DataFrame,
    *,
    name: str,
    engine: str,
    description: str = "",
    rows_used: list[str] | None = None,
) -> CalibrationProfile:
    """Fit one CTCF per GPU on a modelled measurement table, with each GPU's in-sample errors.

    Parameters
    ----------
    modelled
        Measurement rows with ``ttft_model_ms``, ``tpot_model_ms``, ``e2e_model_s`` columns added
        (:func:`solver.performance.measurements.model_measurements`).
    name, engine, description, rows_used
        Recorded in the profile.

    Returns
    -------
    CalibrationProfile
        One :class:`~solver.performance.ctcf.GPUCalibration` per GPU of ``modelled``.
    """
    groups = {str(gpu): pos for gpu, pos in modelled.groupby("gpu", sort=True).indices.items()}
    fits: dict[str, GPUCalibration] = {}
    for gpu in sorted(groups):
        rows = modelled.iloc[groups[gpu]]
        prefill, decode, shared = fit_ctcf(rows)
        fits[gpu] = GPUCalibration(
            prefill=prefill,
            decode=decode,
            rows=len(rows),
            datasets=sorted(str(d) for d in rows["dataset"].unique()),
            shared_scale=shared,
        )
    profile = CalibrationProfile(
        name=name,
        engine=engine,
        created=_dt.date.today().isoformat(),
        description=description,
        rows_used=rows_used or [],
        gpus=fits,
    )
    cal = calibrated(modelled, profile)
    errors = {
        gpu: fit.model_copy(update={"errors": fit_errors(modelled.iloc[groups[gpu]], cal.iloc[groups[gpu]])})
        for gpu, fit in fits.items()
    }
    return profile.model_copy(update={"gpus": errors})


def calibrate(
    measurements: str | Path | pd.DataFrame,
    *,
    name: str | None = None,
    engine: str | None = None,
) -> CalibrationProfile:
    """Fit a calibration profile on a measurement table (CSV path or DataFrame); the ``calibrate`` command.

    Parameters
    ----------
    measurements
        A CSV in the schema of the module docstring, or the same as a DataFrame.
    name
        Profile name (default: the file's stem).
    engine
        Engine recorded in the profile (default: the table's single engine, else ``generic``).

    Returns
    -------
    CalibrationProfile
        One CTCF per GPU in the table, with in-sample errors.
    """
    if isinstance(measurements, pd.DataFrame):
        table = check_measurements(measurements)
        label = name or "custom"
    else:
        table = read_measurements(measurements)
        label = name or Path(measurements).stem
    engines = sorted(table["engine"].unique())
    eng = engine or (engines[0] if len(engines) == 1 else "generic")
    if eng not in ENGINES:
        raise UnknownNameError("engine", "engine", eng, ENGINES)
    modelled = model_measurements(table)
    source = str(measurements) if not isinstance(measurements, pd.DataFrame) else "DataFrame"
    checked: dict[str, tuple[int, int]] = {}
    for gpu, rows in modelled.groupby("gpu", sort=True):
        rank, params, weak = fit_identifiability(rows)
        if rank < params:
            raise InputError(
                f"measurements: gpu {gpu}",
                f"{len(rows)} row(s) give {rank} independent equation(s) for {params} CTCF parameters "
                f"({' and '.join(weak)} under-determined); measure at least 2 settings of batch, input or output",
            )
        checked[str(gpu)] = (rank, params)
    profile = fit_profile(
        modelled,
        name=label,
        engine=eng,
        description=f"fitted by infersave calibrate on {source}",
        rows_used=[f"all {len(table)} rows of {source}"],
    )
    gpus = {}
    for gpu, cal in profile.gpus.items():
        rank, params = checked[gpu]
        gpus[gpu] = cal.model_copy(update={"rank": rank, "parameters": params})
        check_fit_bounds(gpus[gpu], f"measurements (fit of gpus.{gpu}")
    return profile.model_copy(update={"gpus": gpus})


# ---- the hierarchical fit of the shipped profiles -------------------------------------------------------
ALPHA_MIN = 0.8
"""Smallest alpha a shipped profile may have, both phases: ``max(MEMORY_BW_EFFICIENCY, COMPUTE_EFFICIENCY)``.

The raw roofline runs at 0.8 of peak bandwidth and 0.73 of peak FLOPS; alpha >= 0.8 means the calibrated time is
never below bytes / peak bandwidth nor FLOPs / peak FLOPS (achieved fractions at most 1)."""
ALPHA_MAX = 20.0
"""Largest alpha of the hierarchical fit (a bound, not a prior; no shipped fit reaches it)."""
PRIOR_ROWS = 10.0
"""Partial pooling: a level's alpha is pulled toward its parent's with the weight of this many measurement rows
(each row weighs 1 in relative-error units), so a GPU with n rows keeps about n / (n + 10) of its own estimate."""
PER_SEQUENCE_FIT = True
"""Fit an engine's decode cost per sequence per step (``beta_per_sequence_ms``); evaluated in docs/accuracy.md."""
SEQ_PRIOR_SCALE_MS = 0.05
"""Scale of the ridge pulling the per-sequence cost to 0 (ms per sequence per step; vLLM's Python scheduler and
sampler cost tens of microseconds per sequence per step)."""
BETA_PRIOR_SCALE_MS = 10.0
"""An engine's per-step overhead is pulled toward the pooled one with the weight of one row per 10 ms of difference."""
LAYER_PRIOR_SCALE_MS = 0.1
"""An engine's per-layer overhead is pulled toward the pooled one with one row's weight per 0.1 ms of difference."""
MONOTONE_IN_DATASHEET = True
"""Order alpha by datasheet dominance (:func:`_make_monotone`); False only to measure what the order costs."""
MIN_ROWS_TO_SEPARATE = 4
"""Rows of a (GPU, phase) below which its alpha is not fitted but taken from its class (and the profile says so)."""
PHASES = ("prefill", "decode")
GRAM_JITTER = 1e-10
"""Added to the diagonal of A'A before its Cholesky factor is taken (the pooling rows already make it definite)."""


def _phase_rows(modelled: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row masks of the equations each phase gets: static TTFT (prefill), TPOT (decode), e2e-only rows (both).

    Serving TTFT (continuous batching) includes waiting for a slot, which the roofline does not model, so it is not
    fitted (it is scored by ``validate``).
    """
    static = modelled["batching"].to_numpy() == "static"
    ttft = modelled["ttft_ms"].notna().to_numpy() & static
    tpot = modelled["tpot_ms"].notna().to_numpy()
    e2e_only = modelled["e2e_s"].notna().to_numpy() & ~ttft & ~tpot
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e_only}


class _Vars:
    """Column index of each unknown of the hierarchical least-squares problem."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, ...], int] = {}

    def __call__(self, *key: str) -> int:
        if key not in self.index:
            self.index[key] = len(self.index)
        return self.index[key]


def fit_hierarchical(modelled: pd.DataFrame) -> dict[str, Any]:
    """Fit alpha per (engine, GPU, phase) with partial pooling and beta per (engine, phase), on modelled rows.

    The equations (each divided by its measured value, so that relative errors are minimised)::

        ttft_ms (static)  = a[e,g,prefill] · ttft_model_ms + b[e,prefill] + L · l[e,prefill]
        tpot_ms           = k · (a[e,g,decode] · step_model_ms + b[e,decode] + L · l[e,decode])
                            (k = decode_stretch: 1 for static batches; serving rows: the CTCF applies to the
                            decode step, as the serving model applies it)
        e2e_s · 1000      = a[e,g,decode] · (ttft_model_ms + n · tpot_model_ms) + n · (b[e,decode] + L · l[e,decode])
                            (rows that measured only e2e: one scale for both phases, as they cannot separate them)

    and the pooling (ridge rows of weight :data:`PRIOR_ROWS`): ``a[e,g] ≈ a[e,class(g)] ≈ a[e] ≈ a_global`` per
    phase, and ``a_global ≈ 1`` (the raw roofline where nothing is measured). With :data:`SOURCE_EFFECTS`, a row of
    source file ``f`` has ``a[e,g] + d[e,f]`` in place of ``a[e,g]`` in a phase that two or more sources of the
    engine measure, with ``d[e,f] ≈ 0`` (a random effect per engine version; the profiles keep ``a[e,g]``, the
    sources' average); ``b[e] ≈ b_global ≈ 0``,
    ``l[e] ≈ l_global ≈ 0`` (:data:`BETA_PRIOR_SCALE_MS`, :data:`LAYER_PRIOR_SCALE_MS`).
    Bounds: every alpha in [:data:`ALPHA_MIN`, :data:`ALPHA_MAX`], every beta >= 0
    (``scipy.optimize.lsq_linear``, bounded-variable least squares). A (GPU, phase) with fewer than
    :data:`MIN_ROWS_TO_SEPARATE` rows, or whose modelled times do not vary, takes its class's alpha; a GPU whose rows
    measured only end-to-end times takes its class's prefill alpha.

    Parameters
    ----------
    modelled
        Modelled measurement rows (:func:`solver.performance.measurements.model_measurements`).

    Returns
    -------
    dict
        ``alpha`` ({(engine, gpu, phase): value} for fitted GPUs), ``class_alpha`` ({(engine, class, phase)}),
        ``engine_alpha``, ``global_alpha``, ``beta_ms`` and ``beta_per_layer_ms`` ({(engine, phase)}),
        ``source_offset`` ({(engine, source file, phase)}: ``d``, :data:`SOURCE_EFFECTS`), ``pooled``
        ({(engine, gpu): [phases pooled]}), ``rows`` ({(engine, gpu): rows}), ``loss``.
    """
    from scipy.optimize import lsq_linear

    from solver.performance.hardware import gpu_class

    rows = modelled.reset_index(drop=True)
    masks = _phase_rows(rows)
    eng = rows["engine"].astype(str).to_numpy()
    gpu = rows["gpu"].astype(str).to_numpy()
    cls = np.array([gpu_class(g) for g in gpu], dtype=object)
    layers = rows["num_layers"].to_numpy(dtype=float)
    n_out = rows["output"].to_numpy(dtype=float)
    tm = rows["ttft_model_ms"].to_numpy(dtype=float)
    dm = rows["tpot_model_ms"].to_numpy(dtype=float)
    stretch = decode_stretch(rows)
    step = dm / stretch
    seqs = _running(rows)
    var = _Vars()
    # which (engine, gpu, phase) get their own alpha
    own: dict[tuple[str, str, str], bool] = {}
    pooled: dict[tuple[str, str], list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    groups: dict[Any, Any] = pd.DataFrame({"e": eng, "g": gpu}).groupby(["e", "g"]).indices
    for key, positions in groups.items():
        e, g = str(key[0]), str(key[1])
        idx = np.asarray(positions, dtype=np.int64)
        counts[(e, g)] = len(idx)
        for phase, mask, t in (("prefill", masks["ttft"], tm), ("decode", masks["tpot"], dm)):
            sel = idx[mask[idx]]
            if phase == "decode" and sel.size == 0:
                sel = idx[masks["e2e"][idx]]  # e2e-only rows: one scale for both phases
                t = tm + n_out * dm
            varies = sel.size > 0 and float(np.ptp(t[sel])) > 1e-9 * float(np.abs(t[sel]).max())
            own[(e, g, phase)] = bool(sel.size >= MIN_ROWS_TO_SEPARATE and varies)
            if not own[(e, g, phase)]:
                pooled.setdefault((e, g), []).append(phase)

    def alpha_col(e: str, g: str, c: str, phase: str) -> int:
        return var("a", e, g, phase) if own.get((e, g, phase), False) else var("ac", e, c, phase)

    # source offsets on alpha (an engine version per source file): only where two sources or more of an engine
    # have equations of the phase (one source alone: its offset would just be its alpha)
    src = rows["file"].astype(str).to_numpy() if SOURCE_EFFECTS and "file" in rows else None
    multi: set[tuple[str, str]] = set()
    if src is not None:
        for phase, mask in (("prefill", masks["ttft"]), ("decode", masks["tpot"] | masks["e2e"])):
            for e in set(eng):
                if len(set(src[mask & (eng == e)])) >= 2:
                    multi.add((e, phase))

    def with_source(line: dict[int, float], alpha: int, i: int, phase: str) -> dict[int, float]:
        if src is not None and (eng[i], phase) in multi:
            line[var("d", eng[i], src[i], phase)] = line[alpha]
        return line

    y_ttft = rows["ttft_ms"].to_numpy(dtype=float)
    y_tpot = rows["tpot_ms"].to_numpy(dtype=float)
    y_e2e = rows["e2e_s"].to_numpy(dtype=float) * 1000.0
    eqs: list[tuple[dict[int, float], float]] = []  # (coefficients, measured value) of each equation
    eq_rows: list[int] = []  # the measurement row of each equation
    for i in range(len(rows)):
        e, g, c, lay = eng[i], gpu[i], cls[i], layers[i]
        if masks["ttft"][i]:
            col = alpha_col(e, g, c, "prefill")
            eqs.append((with_source(_line(var, col, e, "prefill", tm[i], lay, 1.0), col, i, "prefill"), y_ttft[i]))
            eq_rows.append(i)
        if masks["tpot"][i]:  # serving rows: the stretched step, stretch · (a · step + b + L · l)
            col = alpha_col(e, g, c, "decode")
            line = _line(var, col, e, "decode", step[i], lay, stretch[i], seqs[i])
            eqs.append((with_source(line, col, i, "decode"), y_tpot[i]))
            eq_rows.append(i)
        if masks["e2e"][i]:  # one scale for both phases (the rows cannot separate them); prefill beta not fitted
            col = alpha_col(e, g, c, "decode")
            line = _line(var, col, e, "decode", dm[i], lay, n_out[i], seqs[i])
            line[col] += tm[i]
            eqs.append((with_source(line, col, i, "decode"), y_e2e[i]))
            eq_rows.append(i)
    # pooling rows: gpu -> class -> engine -> global (alpha); engine -> global (beta per step and per layer)
    prior: list[tuple[dict[int, float], float]] = []
    w = float(np.sqrt(PRIOR_ROWS))
    for (e, g, phase), mine in own.items():
        if mine:
            prior.append(({var("a", e, g, phase): w, var("ac", e, gpu_class(g), phase): -w}, 0.0))
    for key in list(var.index):
        if key[0] == "ac":
            _, e, c, phase = key
            prior.append(({var("ac", e, c, phase): w, var("ae", e, phase): -w}, 0.0))
    for key in list(var.index):  # source offsets: a random effect around the engine's average version
        if key[0] == "d":
            prior.append(({var(*key): w}, 0.0))
    for phase in PHASES:  # without data: the raw roofline (alpha 1, no overhead)
        prior.append(({var("ag", phase): w}, w))
        prior.append(({var("bg", phase): 1.0 / BETA_PRIOR_SCALE_MS}, 0.0))
        prior.append(({var("lg", phase): 1.0 / LAYER_PRIOR_SCALE_MS}, 0.0))
    for e in sorted(set(eng)):
        for phase in PHASES:
            prior.append(({var("ae", e, phase): w, var("ag", phase): -w}, 0.0))
            prior.append(({var("b", e, phase): 1 / BETA_PRIOR_SCALE_MS, var("bg", phase): -1 / BETA_PRIOR_SCALE_MS}, 0))
            prior.append(
                ({var("l", e, phase): 1 / LAYER_PRIOR_SCALE_MS, var("lg", phase): -1 / LAYER_PRIOR_SCALE_MS}, 0)
            )
        if PER_SEQUENCE_FIT:  # per sequence per decode step: engine -> global -> 0
            prior.append(({var("s", e, "decode"): 1 / SEQ_PRIOR_SCALE_MS, var("sg"): -1 / SEQ_PRIOR_SCALE_MS}, 0))
    if PER_SEQUENCE_FIT:
        prior.append(({var("sg"): 1 / SEQ_PRIOR_SCALE_MS}, 0.0))
    # every class of every engine exists (a class without rows is its engine's alpha through the prior)
    n_var = len(var.index)
    a = np.zeros((len(eqs) + len(prior), n_var))
    y = np.zeros(len(eqs) + len(prior))
    weight = _equation_weights(rows, np.asarray(eq_rows, dtype=np.int64))
    for r, (coef, target) in enumerate(eqs):
        for k, v in coef.items():
            a[r, k] = weight[r] * v / target
        y[r] = weight[r]
    for r, (coef, target) in enumerate(prior, start=len(eqs)):
        for k, v in coef.items():
            a[r, k] = v
        y[r] = target
    lo = np.array([ALPHA_MIN if k[0].startswith("a") else -np.inf if k[0] == "d" else 0.0 for k in var.index])
    hi = np.array([ALPHA_MAX if k[0].startswith("a") else np.inf for k in var.index])
    # the same least-squares problem on its n x n triangular factor (A'A = R'R): far fewer rows for the solver
    gram = a.T @ a + GRAM_JITTER * np.eye(n_var)
    factor = np.asarray(np.linalg.cholesky(gram).T, dtype=float)
    z = np.linalg.solve(factor.T, np.asarray(a.T @ y, dtype=float))
    x = lsq_linear(factor, z, bounds=(lo, hi), method="bvls").x
    get = {k: float(x[i]) for k, i in var.index.items()}
    engines = sorted(set(eng))
    return {
        "alpha": {(k[1], k[2], k[3]): v for k, v in get.items() if k[0] == "a"},
        "class_alpha": {(k[1], k[2], k[3]): v for k, v in get.items() if k[0] == "ac"},
        "engine_alpha": {(k[1], k[2]): v for k, v in get.items() if k[0] == "ae"},
        "global_alpha": {k[1]: v for k, v in get.items() if k[0] == "ag"},
        "beta_ms": {(e, p): get.get(("b", e, p), 0.0) for e in engines for p in PHASES},
        "beta_per_layer_ms": {(e, p): get.get(("l", e, p), 0.0) for e in engines for p in PHASES},
        "beta_per_sequence_ms": {e: get.get(("s", e, "decode"), 0.0) for e in engines},
        "source_offset": {(k[1], k[2], k[3]): v for k, v in get.items() if k[0] == "d"},
        "pooled": pooled,
        "rows": counts,
        "equations": len(eqs),
        "loss": float(np.sum((a[: len(eqs)] @ x - 1.0) ** 2)),
    }


SOURCE_EFFECTS = True
"""Give each source file an offset on alpha in a phase that two or more source files of the engine measure (ridge
toward 0 with :data:`PRIOR_ROWS`), so that a GPU measured by one source only is not confounded with that source's
engine version (TensorRT-LLM 0.9 in ``nvidia_dli``, 1.x in ``aiconfigurator``); the shipped alpha is the sources'
average, what a user's unknown version gets. Evaluated in docs/accuracy.md (ablations: without it, as before)."""

EQUAL_SOURCE_WEIGHT = False
"""Weight equations so that every (engine, source file) carries the same total (False: every row weighs 1).
Evaluated in docs/accuracy.md (ablations) and not kept: LOSO TPOT 17.0 % against 16.5 % with equal rows."""


def _equation_weights(rows: pd.DataFrame, eq_rows: np.ndarray) -> np.ndarray:
    """Weight of each equation (row ``eq_rows[k]``): 1, or each (engine, source file) carrying the same total."""
    if not EQUAL_SOURCE_WEIGHT or "file" not in rows:
        return np.ones(len(eq_rows))
    keys = (rows["engine"].astype(str) + "|" + rows["file"].astype(str)).to_numpy()[eq_rows]
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return np.asarray(np.sqrt(counts.mean() / counts[inv]), dtype=float)


def _line(
    var: _Vars, alpha: int, engine: str, phase: str, t_ms: float, layers: float, mult: float, seqs: float = 0.0
) -> dict[int, float]:
    """Coefficients of ``mult · (alpha · t_ms + b[engine, phase] + layers · l[engine, phase] + seqs · s[engine])``.

    ``s`` (per sequence per decode step) only where ``PER_SEQUENCE_FIT`` and ``seqs`` > 0 (decode equations).
    """
    line = {alpha: mult * t_ms, var("b", engine, phase): mult, var("l", engine, phase): mult * layers}
    if PER_SEQUENCE_FIT and seqs > 0:
        line[var("s", engine, phase)] = mult * seqs
    return line


def _alpha_for(fit: dict[str, Any], engine: str, gpu: str, phase: str) -> tuple[float, str]:
    """Alpha of (engine, gpu, phase) from a hierarchical fit, and the level it came from."""
    from solver.performance.hardware import gpu_class

    if (engine, gpu, phase) in fit["alpha"]:
        return fit["alpha"][(engine, gpu, phase)], "fitted"
    c = gpu_class(gpu)
    if (engine, c, phase) in fit["class_alpha"]:
        return fit["class_alpha"][(engine, c, phase)], f"pooled ({c} class of {engine})"
    if (engine, phase) in fit["engine_alpha"]:
        return fit["engine_alpha"][(engine, phase)], f"pooled (engine {engine}, no {c} GPU measured)"
    return fit["global_alpha"][phase], "pooled (all engines)"


def _make_monotone(
    alpha: dict[tuple[str, str], float],
    notes: dict[tuple[str, str], str],
    gpus: list[str],
    measured: set[str],
    dominates: Any,
) -> None:
    """Order alpha by datasheet dominance, per phase, in place: ``dominates(a, b)`` implies alpha[a] <= alpha[b].

    Measured GPUs keep their fit where they can: (1) a measured GPU is capped at the alpha of any measured GPU it
    dominates; (2) an unmeasured GPU's pooled alpha is clipped into [largest alpha of the measured GPUs dominating
    it, smallest alpha of the measured GPUs it dominates] (non-empty after step 1, dominance being transitive);
    (3) remaining violations, among unmeasured GPUs only, are removed by capping.
    """
    for phase in PHASES:

        def cap(pool: list[str], targets: list[str], phase: str = phase) -> None:
            changed = True
            while changed:
                changed = False
                for g in pool:
                    lower = [(alpha[(h, phase)], h) for h in targets if dominates(g, h)]
                    if lower and min(lower)[0] < alpha[(g, phase)] - 1e-12:
                        alpha[(g, phase)], by = min(lower)
                        notes[(g, phase)] += f", capped at {by}'s alpha (dominates it on the datasheet)"
                        changed = True

        known = [g for g in gpus if g in measured]
        cap(known, known)
        for g in gpus:
            if g in measured:
                continue
            lo = [alpha[(h, phase)] for h in known if dominates(h, g)]
            hi = [alpha[(h, phase)] for h in known if dominates(g, h)]
            value = alpha[(g, phase)]
            if lo and value < max(lo):
                alpha[(g, phase)] = max(lo)
                notes[(g, phase)] += ", raised to the largest alpha of the measured GPUs that dominate it"
            if hi and alpha[(g, phase)] > min(hi):
                alpha[(g, phase)] = min(hi)
                notes[(g, phase)] += ", capped at the smallest alpha of the measured GPUs it dominates"
        cap([g for g in gpus if g not in measured], gpus)


def hierarchical_profiles(modelled: pd.DataFrame, *, engines: list[str] | None = None) -> dict[str, CalibrationProfile]:
    """Profiles of every engine with rows (and ``generic``, all rows pooled as one engine) for every GPU.

    Every GPU of instances/gpus.csv gets an entry: measured GPUs their shrunk fit, the others their class's
    pooled alpha (``source`` says which). Then, per engine and phase, alpha is made monotone in the datasheet
    (:func:`_make_monotone`): a GPU that :func:`solver.performance.hardware.dominates` another never gets a larger
    alpha (beta is the engine's, the same for every GPU), so with the raw roofline's own monotonicity it is never
    predicted slower.

    Parameters
    ----------
    modelled
        Modelled measurement rows with ``file`` and ``dataset``.
    engines
        Engines to return (default: those in ``modelled``, plus ``generic``).

    Returns
    -------
    dict
        Engine name to profile.
    """
    from solver.data.gpus import load_gpus
    from solver.performance.hardware import dominates
    from solver.performance.latency import COMPUTE_EFFICIENCY, MEMORY_BW_EFFICIENCY

    all_gpus = sorted(load_gpus())
    fits = {"by_engine": fit_hierarchical(modelled), "generic": fit_hierarchical(modelled.assign(engine="generic"))}
    wanted = engines or [*sorted(modelled["engine"].astype(str).unique()), "generic"]
    profiles: dict[str, CalibrationProfile] = {}
    for engine in wanted:
        fit = fits["generic"] if engine == "generic" else fits["by_engine"]
        rows = modelled if engine == "generic" else modelled[modelled["engine"] == engine]
        alpha: dict[tuple[str, str], float] = {}
        notes: dict[tuple[str, str], str] = {}
        for g in all_gpus:
            for phase in PHASES:
                alpha[(g, phase)], notes[(g, phase)] = _alpha_for(fit, engine, g, phase)
        measured = {g for g in all_gpus if _alpha_for(fit, engine, g, "decode")[1] == "fitted"} | {
            g for g in all_gpus if _alpha_for(fit, engine, g, "prefill")[1] == "fitted"
        }
        if MONOTONE_IN_DATASHEET:
            _make_monotone(alpha, notes, all_gpus, measured, dominates)
        groups = rows.groupby("gpu").indices
        gpus: dict[str, GPUCalibration] = {}
        for g in all_gpus:
            n_rows = len(groups.get(g, []))
            fitted = {
                p: PhaseFit(
                    alpha=alpha[(g, p)],
                    # the bounded solver returns its lower bound 0 up to round-off (-1e-33): clip to the bound
                    beta_ms=max(0.0, fit["beta_ms"].get((engine, p), 0.0)),
                    beta_per_layer_ms=max(0.0, fit["beta_per_layer_ms"].get((engine, p), 0.0)),
                    beta_per_sequence_ms=max(0.0, fit["beta_per_sequence_ms"].get(engine, 0.0)) * (p == "decode"),
                )
                for p in PHASES
            }
            pooled = fit["pooled"].get((engine, g), []) if n_rows else list(PHASES)
            source = "; ".join(f"{p} {notes[(g, p)]}" for p in PHASES)
            gpus[g] = GPUCalibration(
                prefill=fitted["prefill"],
                decode=fitted["decode"],
                rows=n_rows,
                datasets=sorted(str(d) for d in rows.iloc[groups[g]]["dataset"].unique()) if n_rows else [],
                pooled=sorted(pooled),
                source=(f"{n_rows} rows; " if n_rows else "no rows; ") + source,
                achieved_bw_fraction=round(MEMORY_BW_EFFICIENCY / alpha[(g, "decode")], 4),
                achieved_flops_fraction=round(COMPUTE_EFFICIENCY / alpha[(g, "prefill")], 4),
            )
        record: dict[str, float | int | str] = {
            "method": "hierarchical partial pooling (calibration.fit_hierarchical)",
            "prior_rows": PRIOR_ROWS,
            "alpha_min": ALPHA_MIN,
            "equations": int(fit["equations"]),
        }
        for p in PHASES:
            key = engine if engine != "generic" else "generic"
            record[f"{p}_beta_ms"] = round(fit["beta_ms"].get((key, p), 0.0), 4)
            record[f"{p}_beta_per_layer_ms"] = round(fit["beta_per_layer_ms"].get((key, p), 0.0), 5)
            if p == "decode":
                record["decode_beta_per_sequence_ms"] = round(fit["beta_per_sequence_ms"].get(key, 0.0), 5)
            if (key, p) in fit["engine_alpha"]:
                record[f"{p}_engine_alpha"] = round(fit["engine_alpha"][(key, p)], 4)
            for c in ("hbm", "gddr"):
                if (key, c, p) in fit["class_alpha"]:
                    record[f"{p}_{c}_alpha"] = round(fit["class_alpha"][(key, c, p)], 4)
            for (e, file, phase), d in sorted(fit["source_offset"].items()):  # SOURCE_EFFECTS: add to alpha
                if e == key and phase == p:
                    record[f"{p}_alpha_offset_{file.removesuffix('.csv')}"] = round(d, 4)
        used = [
            f"{file}: {len(r)} rows (datasets {', '.join(sorted(r['dataset'].unique()))})"
            for file, r in rows.groupby("file", sort=True)
        ]
        prof = CalibrationProfile(
            name=engine,
            engine=engine,
            created=_dt.date.today().isoformat(),
            description=(
                f"CTCF of engine {engine!r} from a hierarchical fit (engine -> GPU class -> GPU, shrunk by row count) "
                "of the shipped measurements" + (" of every engine, pooled as one" if engine == "generic" else "")
            ),
            rows_used=used,
            fit=record,
            gpus=gpus,
        )
        cal = calibrated(rows, prof, composed=True)
        profiles[engine] = prof.model_copy(
            update={
                "gpus": {
                    g: c.model_copy(update={"errors": fit_errors(rows.iloc[groups[g]], cal.iloc[groups[g]])})
                    if g in groups
                    else c
                    for g, c in gpus.items()
                }
            }
        )
    return profiles
