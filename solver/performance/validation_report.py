"""Cross-validation of the calibrated model on the shipped measurements: ``infersave validate``.

Every shipped measurement row (``instances/measurements/*.csv``; a *source* is one file, e.g. ``nvidia_dli``) is
predicted four ways, each by applying a profile fitted on some of the rows
(:func:`solver.performance.accuracy.fit_shipped_profiles`, the same fit that writes ``instances/calibration/``):

* ``before``: the raw roofline (identity profile), no fit at all;
* ``in_sample``: profiles fitted on every row (the shipped profiles);
* ``loso`` (leave one source out): profiles fitted without the row's source file;
* ``logo`` (leave one GPU out): profiles fitted without any row of the row's GPU, so that GPU gets the pooled
  value a GPU without measurements gets.

A held-out engine (no row of it left in the fit) takes the ``generic`` profile of the remaining rows.

Metrics (one error per row where measured): ``ttft`` (static batches: the prefill), ``ttft_serving`` (serving
benchmarks at fixed concurrency; includes waiting for a slot), ``tpot``, ``e2e`` (end-to-end time of the batch) and
``throughput`` (tokens per second of the batch: ``e2e_meas / e2e_pred - 1`` with ``e2e_meas = ttft + n · tpot``
where only those were measured, else ``tpot_meas / tpot_pred - 1``). Each error is kept signed as the ratio
``predicted / measured`` (:func:`row_errors`), so that the same residuals give the MAPE tables (:func:`summarise`)
and the error bands (:mod:`solver.performance.uncertainty`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from solver.performance.calibration import calibrated
from solver.performance.ctcf import IDENTITY, CalibrationProfile
from solver.performance.hardware import gpu_class

SPLITS = ("before", "in_sample", "loso", "logo")
METRICS = ("ttft", "ttft_serving", "tpot", "e2e", "throughput")
TARGETS_PCT = {"tpot": 15.0, "throughput": 15.0}
"""Issue 12's LOSO targets (MAPE over the rows, percent)."""

Fitter = Callable[[pd.DataFrame], dict[str, CalibrationProfile]]


def _ratios(rows: pd.DataFrame, cal: pd.DataFrame) -> dict[str, np.ndarray]:
    """Predicted / measured of each metric, NaN where not measured."""
    ttft_m = rows["ttft_ms"].to_numpy(dtype=float)
    tpot_m = rows["tpot_ms"].to_numpy(dtype=float)
    e2e_m = rows["e2e_s"].to_numpy(dtype=float)
    n = rows["output"].to_numpy(dtype=float)
    ttft, tpot, e2e = (cal[c].to_numpy(dtype=float) for c in ("ttft_cal_ms", "tpot_cal_ms", "e2e_cal_s"))
    serving = rows["batching"].to_numpy() == "continuous"
    e2e_derived = np.where(np.isfinite(e2e_m), e2e_m, (ttft_m + n * tpot_m) / 1e3)
    thr = np.where(np.isfinite(e2e_derived), e2e_derived / e2e, tpot_m / tpot)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "ttft": np.where(serving, np.nan, ttft / ttft_m),
            "ttft_serving": np.where(serving, ttft / ttft_m, np.nan),
            "tpot": tpot / tpot_m,
            "e2e": e2e / e2e_m,
            # throughput ratio predicted/measured = e2e_meas / e2e_pred
            "throughput": thr,
        }


def row_errors(modelled: pd.DataFrame, fitter: Fitter) -> pd.DataFrame:
    """Signed error of every (row, metric, split): ``ratio = predicted / measured``.

    Parameters
    ----------
    modelled
        Modelled shipped measurement rows (:func:`solver.performance.measurements.model_measurements`) with
        ``file`` (the source).
    fitter
        Rows to profiles per engine (``generic`` included).

    Returns
    -------
    pandas.DataFrame
        Long table: ``row`` (index into ``modelled``), ``source``, ``dataset``, ``engine``, ``gpu``, ``gpu_class``,
        ``tp``, ``batching``, ``metric``, ``split``, ``ratio``, ``ape_pct``.
    """
    modelled = modelled.reset_index(drop=True)
    source = modelled["file"].str.replace(".csv", "", regex=False)
    preds: dict[str, dict[str, np.ndarray]] = {}
    preds["before"] = _ratios(modelled, calibrated(modelled, IDENTITY, composed=True))
    preds["in_sample"] = _held_out(modelled, np.zeros(len(modelled), dtype=int), fitter, full=True)
    preds["loso"] = _held_out(modelled, pd.factorize(source)[0], fitter)
    preds["logo"] = _held_out(modelled, pd.factorize(modelled["gpu"])[0], fitter)
    base = pd.DataFrame(
        {
            "row": np.arange(len(modelled)),
            "source": source,
            "dataset": modelled["dataset"].astype(str),
            "engine": modelled["engine"].astype(str),
            "gpu": modelled["gpu"].astype(str),
            "gpu_class": [gpu_class(str(g)) for g in modelled["gpu"]],
            "tp": modelled["tp"].astype(int),
            "batching": modelled["batching"].astype(str),
        }
    )
    parts = []
    for split, by_metric in preds.items():
        for metric, ratio in by_metric.items():
            ok = np.isfinite(ratio) & (ratio > 0)
            part = base[ok].copy()
            part["metric"] = metric
            part["split"] = split
            part["ratio"] = ratio[ok]
            parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["ape_pct"] = np.abs(out["ratio"] - 1.0) * 100.0
    return out


def _held_out(modelled: pd.DataFrame, fold: np.ndarray, fitter: Fitter, *, full: bool = False) -> dict[str, np.ndarray]:
    """Ratios of each row under profiles fitted without its fold (``full``: fitted on every row)."""
    out = {m: np.full(len(modelled), np.nan) for m in METRICS}
    for k in np.unique(fold):
        test = fold == k
        train = modelled if full else modelled[~test]
        profiles = fitter(train)
        rows = modelled[test]
        for engine, idx in rows.groupby("engine").indices.items():
            part = rows.iloc[idx]
            prof = profiles.get(str(engine), profiles["generic"])
            for metric, r in _ratios(part, calibrated(part, prof, composed=True)).items():
                out[metric][np.flatnonzero(test)[idx]] = r
    return out


def summarise(errors: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """MAPE, median and worst absolute percentage error per (metric, split, *by*), over the rows.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``rows``, ``mape_pct``, ``median_pct``, ``p90_pct``, ``worst_pct``.
    """
    keys = ["metric", *by, "split"]
    grouped = errors.groupby(keys, sort=True)["ape_pct"]
    out = grouped.agg(
        rows="size",
        mape_pct="mean",
        median_pct="median",
        p90_pct=lambda s: float(np.quantile(s, 0.9)),
        worst_pct="max",
    ).reset_index()
    for col in ("mape_pct", "median_pct", "p90_pct", "worst_pct"):
        out[col] = out[col].round(1)
    return out


def wide(summary: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per (metric, *by*) with the MAPE of each split side by side (and the row count)."""
    keys = ["metric", *by]
    table = summary.pivot_table(index=keys, columns="split", values="mape_pct", aggfunc="first")
    rows = summary[summary["split"] == "before"].set_index(keys)["rows"]
    table = table.reindex(columns=[s for s in SPLITS if s in table.columns])
    table.columns = [f"{c}_mape_pct" for c in table.columns]
    table.insert(0, "rows", rows.reindex(table.index).astype("Int64"))
    order = {m: i for i, m in enumerate(METRICS)}
    return (
        table.reset_index()
        .sort_values(keys, key=lambda s: s.map(order) if s.name == "metric" else s)
        .reset_index(drop=True)
    )


def headline(errors: pd.DataFrame) -> dict[str, Any]:
    """LOSO and LOGO MAPE per metric over all rows, and whether each target of :data:`TARGETS_PCT` is met."""
    out: dict[str, Any] = {"date": _dt.date.today().isoformat()}
    summ = summarise(errors)
    for rec in summ.to_dict(orient="records"):
        out[f"{rec['metric']}_{rec['split']}_mape_pct"] = float(rec["mape_pct"])
    for metric, target in TARGETS_PCT.items():
        value = out.get(f"{metric}_loso_mape_pct")
        out[f"{metric}_loso_target_pct"] = target
        out[f"{metric}_loso_target_met"] = bool(value is not None and value <= target)
    return out


def run(fitter: Fitter | None = None, measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """Row errors on every shipped measurement (``infersave validate``); default the shipped fit."""
    from solver.performance.accuracy import fit_shipped_profiles, shipped_measurements
    from solver.performance.measurements import model_measurements

    table = measurements if measurements is not None else shipped_measurements()
    if "file" not in table.columns:
        table = table.assign(file="table")
    return row_errors(model_measurements(table), fitter or fit_shipped_profiles)


def report(errors: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return the tables ``infersave validate`` prints and ``docs/accuracy.md`` holds, from :func:`row_errors`.

    Returns
    -------
    dict
        ``overall`` (per metric), ``by_source``, ``by_engine_gpu`` (per metric, engine and GPU), each one row per
        group with the MAPE of every split.
    """
    return {
        "overall": wide(summarise(errors)),
        "by_source": wide(summarise(errors, ("source",)), ("source",)),
        "by_engine_gpu": wide(summarise(errors, ("engine", "gpu")), ("engine", "gpu")),
    }


def validate(measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score the model on every shipped source (``solver.validate``): MAPE per (source, engine, metric) and split.

    Parameters
    ----------
    measurements
        A checked measurement table with a ``file`` column; default every shipped row.

    Returns
    -------
    pandas.DataFrame
        One row per (source, engine, metric): ``gpus``, ``rows``, ``mape_before_pct``, ``mape_in_sample_pct``,
        ``mape_loso_pct`` (leave one source out), ``mape_logo_pct`` (leave one GPU out).
    """
    errors = run(measurements=measurements)
    table = wide(summarise(errors, ("source", "engine")), ("source", "engine"))
    table = table.rename(columns={f"{s}_mape_pct": f"mape_{s}_pct" for s in SPLITS})
    gpus = errors.groupby(["source", "engine"])["gpu"].agg(lambda g: ",".join(sorted(set(g))))
    table.insert(3, "gpus", [gpus[(s, e)] for s, e in zip(table["source"], table["engine"], strict=True)])
    return table[["source", "engine", "gpus", "metric", "rows", *[f"mape_{s}_pct" for s in SPLITS]]]
