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

At least one of ttft_ms, tpot_ms, e2e_s must be present in each row.

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
    check_fit_bounds,
    fit_ctcf,
    fit_identifiability,
    load_profile,
    nearest_measured_gpu,
    resolve_profile,
    save_profile,
    shipped_profile,
)
from solver.performance.measurements import model_measurements
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


def calibrated(modelled: pd.DataFrame, profile: CalibrationProfile) -> pd.DataFrame:
    """Calibrated times of modelled measurement rows under ``profile`` (each row's GPU, with fallback).

    Parameters
    ----------
    modelled
        Measurement rows with ``gpu``, ``output``, ``ttft_model_ms`` and ``tpot_model_ms``.
    profile
        The profile applied (:func:`solver.performance.ctcf.apply_ctcf`).

    Returns
    -------
    pandas.DataFrame
        ``ttft_cal_ms``, ``tpot_cal_ms`` and ``e2e_cal_s`` (``(ttft + output · tpot) / 1000``), on the index
        of ``modelled``.
    """
    gpus = modelled["gpu"].to_numpy()
    ttft, tpot = ctcf.apply_ctcf(profile, gpus, modelled["ttft_model_ms"], modelled["tpot_model_ms"])
    out = pd.DataFrame({"ttft_cal_ms": ttft, "tpot_cal_ms": tpot}, index=modelled.index)
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
