"""Accuracy of the performance model on the shipped measurements, before and after CTCF.

For every shipped dataset (``instances/measurements/*.csv``, column ``dataset``) and every measured metric:

* ``ttft`` and ``tpot``: absolute percentage error of the predicted TTFT / TPOT;
* ``throughput``: absolute percentage error of the batch's tokens per second. Throughput is proportional to
  1 / e2e, so the error is ``|e2e_meas / e2e_pred - 1|`` (with ``e2e_meas = ttft + n · tpot`` where only those were
  measured); rows that measured only TPOT (serving benchmarks) use ``|tpot_meas / tpot_pred - 1|``;
* ``e2e``: absolute percentage error of the end-to-end time where it was measured.

Three predictions are scored, each by applying a profile (:func:`solver.performance.calibration.calibrated`):
``before`` (the identity profile :data:`solver.performance.ctcf.IDENTITY`: the raw roofline), ``in_sample``
(the engine's profile fitted on all shipped rows of that engine, i.e. the shipped profile) and ``lodo`` (leave
one dataset out: the profile refitted on the engine's rows of every *other* dataset; a GPU absent from them takes
the nearest measured GPU by spec; an engine with no other dataset takes the pooled ``generic`` fit of the other
datasets).
"""

from __future__ import annotations

import datetime as _dt
import glob
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solver.data.resources import data_path
from solver.performance.calibration import abs_pct_errors, calibrated, check_measurements, fit_profile
from solver.performance.ctcf import IDENTITY, CalibrationProfile, save_profile
from solver.performance.measurements import model_measurements

METRICS = ("ttft", "tpot", "throughput", "e2e")


def shipped_measurements() -> pd.DataFrame:
    """Return every shipped measurement row (checked), with its source file in column ``file``.

    Returns
    -------
    pandas.DataFrame
        The rows of ``instances/measurements/*.csv``, normalised by
        :func:`solver.performance.calibration.check_measurements`.
    """
    frames = []
    for path in sorted(glob.glob(str(data_path("measurements", "*.csv")))):
        frame = pd.read_csv(path)
        frame["file"] = Path(path).name
        frames.append(frame)
    return check_measurements(pd.concat(frames, ignore_index=True), field="instances/measurements")


def fit_shipped_profiles(modelled: pd.DataFrame | None = None) -> dict[str, CalibrationProfile]:
    """Fit the shipped profiles (one per engine with data, plus ``generic`` pooling all rows).

    Parameters
    ----------
    modelled
        Modelled measurement rows (:func:`solver.performance.measurements.model_measurements`); default all
        shipped measurements.

    Returns
    -------
    dict
        Engine name to its fitted profile.
    """
    if modelled is None:
        modelled = model_measurements(shipped_measurements())
    profiles: dict[str, CalibrationProfile] = {}
    for engine, rows in modelled.groupby("engine", sort=True):
        profiles[str(engine)] = _fit(rows, name=str(engine), engine=str(engine))
    profiles["generic"] = _fit(modelled, name="generic", engine="generic")
    return profiles


def _fit(rows: pd.DataFrame, *, name: str, engine: str) -> CalibrationProfile:
    """Fit one profile on ``rows`` and describe which rows were used."""
    used = [
        f"{file}: {len(r)} rows (datasets {', '.join(sorted(r['dataset'].unique()))})"
        for file, r in rows.groupby("file", sort=True)
    ]
    desc = (
        f"CTCF fitted per GPU on the shipped measurements of engine {engine!r}"
        if engine != "generic"
        else "CTCF fitted per GPU on the shipped measurements of every engine, pooled (default for other engines)"
    )
    return fit_profile(rows, name=name, engine=engine, description=desc, rows_used=used)


def write_shipped_profiles(profiles: dict[str, CalibrationProfile], folder: Path | None = None) -> list[Path]:
    """Write profiles as ``instances/calibration/ENGINE.yaml`` (or into ``folder``).

    Parameters
    ----------
    profiles
        Engine name to profile (:func:`fit_shipped_profiles`).
    folder
        Target folder; default the shipped ``instances/calibration``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    target = folder or data_path("calibration")
    return [save_profile(p, Path(target) / f"{name}.yaml") for name, p in profiles.items()]


def _errors(rows: pd.DataFrame, cal: pd.DataFrame) -> dict[str, np.ndarray]:
    """Absolute percentage errors of each metric (only where measured) of calibrated times ``cal``."""
    ttft_m = rows["ttft_ms"].to_numpy(dtype=float)
    tpot_m = rows["tpot_ms"].to_numpy(dtype=float)
    e2e_m = rows["e2e_s"].to_numpy(dtype=float)
    n = rows["output"].to_numpy(dtype=float)
    ttft, tpot, e2e = (cal[c].to_numpy(dtype=float) for c in ("ttft_cal_ms", "tpot_cal_ms", "e2e_cal_s"))
    e2e_derived = np.where(np.isfinite(e2e_m), e2e_m, (ttft_m + n * tpot_m) / 1e3)
    thr = np.where(np.isfinite(e2e_derived), np.abs(e2e_derived / e2e - 1.0), np.abs(tpot_m / tpot - 1.0))
    return {
        "ttft": abs_pct_errors(ttft, ttft_m),
        "tpot": abs_pct_errors(tpot, tpot_m),
        "throughput": thr[np.isfinite(thr)] * 100.0,
        "e2e": abs_pct_errors(e2e, e2e_m),
    }


def validate(measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score the model on every shipped dataset: MAPE and worst error, before/after CTCF, in-sample and LODO.

    Parameters
    ----------
    measurements
        A checked measurement table with a ``file`` column; default all shipped measurements.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, metric) with ``engine``, ``gpus``, ``rows``, ``mape_before_pct``,
        ``worst_before_pct``, ``mape_in_sample_pct``, ``worst_in_sample_pct``, ``mape_lodo_pct``,
        ``worst_lodo_pct``.
    """
    table = measurements if measurements is not None else shipped_measurements()
    if "file" not in table.columns:
        table = table.assign(file="table")
    modelled = model_measurements(table)
    in_sample = fit_shipped_profiles(modelled)
    records: list[dict[str, Any]] = []
    for dataset, rows in modelled.groupby("dataset", sort=True):
        engine = str(rows["engine"].iloc[0])
        others = modelled[modelled["dataset"] != dataset]
        same_engine = others[others["engine"] == engine]
        lodo_rows = same_engine if not same_engine.empty else others
        lodo = _fit(lodo_rows, name=f"lodo-{dataset}", engine=engine)
        errs = {
            "before": _errors(rows, calibrated(rows, IDENTITY)),
            "in_sample": _errors(rows, calibrated(rows, in_sample.get(engine, in_sample["generic"]))),
            "lodo": _errors(rows, calibrated(rows, lodo)),
        }
        for metric in METRICS:
            if errs["before"][metric].size == 0:
                continue
            rec: dict[str, Any] = {
                "dataset": str(dataset),
                "engine": engine,
                "gpus": ",".join(sorted(rows["gpu"].unique())),
                "metric": metric,
                "rows": int(errs["before"][metric].size),
                "lodo_fitted_on": "same engine" if not same_engine.empty else "all other engines (pooled)",
            }
            for kind, e in errs.items():
                rec[f"mape_{kind}_pct"] = round(float(e[metric].mean()), 1)
                rec[f"worst_{kind}_pct"] = round(float(e[metric].max()), 1)
            records.append(rec)
    return pd.DataFrame(records)


def summary(report: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers: mean over datasets of the LODO MAPE per metric, and the TPOT target check (<= 15 %).

    Parameters
    ----------
    report
        The table of :func:`validate`.

    Returns
    -------
    dict
        ``date``, ``METRIC_mape_{lodo,in_sample,before}_mean_pct`` per metric, ``tpot_lodo_target_pct`` and
        ``tpot_lodo_target_met``.
    """
    out: dict[str, Any] = {"date": _dt.date.today().isoformat()}
    for metric in METRICS:
        sel = report[report["metric"] == metric]
        if not sel.empty:
            out[f"{metric}_mape_lodo_mean_pct"] = round(float(sel["mape_lodo_pct"].mean()), 1)
            out[f"{metric}_mape_in_sample_mean_pct"] = round(float(sel["mape_in_sample_pct"].mean()), 1)
            out[f"{metric}_mape_before_mean_pct"] = round(float(sel["mape_before_pct"].mean()), 1)
    tpot = out.get("tpot_mape_lodo_mean_pct")
    out["tpot_lodo_target_pct"] = 15.0
    out["tpot_lodo_target_met"] = bool(tpot is not None and tpot <= 15.0)
    return out
