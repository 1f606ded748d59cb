"""Error bands of the calibrated model, from its cross-validated residuals, and the SLO margin they give.

The residuals are those of ``infersave validate``'s leave-one-source-out split
(:func:`solver.performance.validation_report.row_errors`): for every shipped measurement row the prediction of a
profile fitted without that row's source. Per (engine, metric, GPU class) the quantiles of ``measured /
predicted`` are stored in ``instances/calibration/error_bands.yaml`` (written by ``benchmarks/accuracy_report.py``,
:func:`band_table`). Metrics: ``ttft`` (static prefill), ``ttft_serving`` (continuous batching), ``tpot``, and
``e2e`` (from the throughput residual of every row: ``measured e2e / predicted e2e``).

A group with fewer than :data:`MIN_BAND_ROWS` residuals takes the next level: the engine's rows of that metric on
any GPU, then every engine's rows of that metric and GPU class, then every row of the metric; each band names the
level it came from.

``search.slo_confidence: q`` multiplies the predicted TTFT, TPOT and end-to-end time of every candidate by the
``q`` quantile of ``measured / predicted`` of its group (:func:`apply_confidence`, called once, where a workload
becomes a prediction: :func:`solver.planning.candidates.predict_workload`), so the planner's rules, the MILP and
the evaluator all see the times the model's own error says are reached with probability ``q``. Rates and
throughputs follow the end-to-end time.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import yaml

from solver.data.resources import data_path

LEVELS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
"""Quantile levels stored per band (``search.slo_confidence`` is interpolated between them)."""
MIN_BAND_ROWS = 20
"""Residuals a band needs at a level before it falls back to the next (module docstring)."""
BAND_METRICS = ("ttft", "ttft_serving", "tpot", "e2e")
PRINTED = (0.1, 0.9)
"""The central 80 % band ``infersave predict`` prints."""


def _measured_over_predicted(errors: pd.DataFrame) -> pd.DataFrame:
    """LOSO residuals as ``measured / predicted`` per band metric (e2e from the throughput residual)."""
    loso = errors[errors["split"] == "loso"]
    parts = []
    for metric in ("ttft", "ttft_serving", "tpot"):
        sel = loso[loso["metric"] == metric]
        parts.append(sel.assign(band_metric=metric, mop=1.0 / sel["ratio"].to_numpy()))
    thr = loso[loso["metric"] == "throughput"]  # predicted thr / measured thr = measured e2e / predicted e2e
    parts.append(thr.assign(band_metric="e2e", mop=thr["ratio"].to_numpy()))
    return pd.concat(parts, ignore_index=True)


def band_table(errors: pd.DataFrame) -> list[dict[str, Any]]:
    """Bands per (engine, metric, GPU class) of every engine and class that occurs, with the fallbacks applied.

    Parameters
    ----------
    errors
        :func:`solver.performance.validation_report.row_errors` output (the ``loso`` split is used).

    Returns
    -------
    list of dict
        ``engine``, ``metric``, ``gpu_class``, ``rows``, ``from`` (the level used) and ``quantiles``
        ({level: measured / predicted}).
    """
    res = _measured_over_predicted(errors)
    engines = sorted({*res["engine"].unique(), "generic"})
    out: list[dict[str, Any]] = []
    for engine in engines:
        for metric in BAND_METRICS:
            for cls in ("hbm", "gddr"):
                m = res[res["band_metric"] == metric]
                levels = (
                    (f"{engine}, {cls}", m[(m["engine"] == engine) & (m["gpu_class"] == cls)]),
                    (f"{engine}, any GPU", m[m["engine"] == engine]),
                    (f"every engine, {cls}", m[m["gpu_class"] == cls]),
                    ("every engine, any GPU", m),
                )
                for label, rows in levels:
                    if len(rows) >= MIN_BAND_ROWS or label == "every engine, any GPU":
                        break
                if rows.empty:
                    continue
                q = np.quantile(rows["mop"].to_numpy(), LEVELS)
                out.append(
                    {
                        "engine": engine,
                        "metric": metric,
                        "gpu_class": cls,
                        "rows": len(rows),
                        "from": label,
                        "quantiles": {f"{lv:g}": round(float(v), 4) for lv, v in zip(LEVELS, q, strict=True)},
                    }
                )
    return out


@functools.cache
def shipped_bands() -> dict[tuple[str, str, str], dict[str, Any]]:
    """Return the bands of ``instances/calibration/error_bands.yaml`` by (engine, metric, GPU class); {} if absent."""
    path = data_path("calibration", "error_bands.yaml")
    if not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {(b["engine"], b["metric"], b["gpu_class"]): b for b in raw.get("bands", [])}


def quantile(band: dict[str, Any], level: float) -> float:
    """``measured / predicted`` at ``level`` of one band (linear between the stored levels)."""
    lv = np.array([float(k) for k in band["quantiles"]])
    vals = np.array(list(band["quantiles"].values()), dtype=float)
    return float(np.interp(level, lv, vals))


def _band(engine: str, metric: str, gpu: str) -> dict[str, Any] | None:
    from solver.performance.hardware import gpu_class

    bands = shipped_bands()
    return bands.get((engine, metric, gpu_class(gpu))) or bands.get(("generic", metric, gpu_class(gpu)))


def prediction_bands(engine: str, gpu: str, batching: str, values: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Return the printed band of each predicted time: ``{name: {p10, p90, rows, from}}`` (empty without bands).

    Parameters
    ----------
    engine, gpu, batching
        The prediction's engine, GPU and batching (``continuous`` uses the serving TTFT band).
    values
        ``ttft_ms``, ``tpot_ms``, ``e2e_s`` as predicted.
    """
    metric_of = {"ttft_ms": "ttft_serving" if batching == "continuous" else "ttft", "tpot_ms": "tpot", "e2e_s": "e2e"}
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        band = _band(engine, metric_of[name], gpu)
        if band is None:
            continue
        lo, hi = (quantile(band, q) * value for q in PRINTED)
        out[name] = {"p10": lo, "p90": hi, "rows": int(band["rows"]), "from": f"LOSO residuals, {band['from']}"}
    return out


def confidence_factors(engine: str, gpus: np.ndarray, batching: str, level: float) -> dict[str, np.ndarray]:
    """Per row, the ``level`` quantile of measured / predicted for ``ttft_ms``, ``tpot_ms`` and ``e2e_s``.

    A row whose group has no band gets 1 (no margin).
    """
    metric_of = {"ttft_ms": "ttft_serving" if batching == "continuous" else "ttft", "tpot_ms": "tpot", "e2e_s": "e2e"}
    codes, uniques = pd.factorize(pd.Series(np.asarray(gpus, dtype=object)))
    out: dict[str, np.ndarray] = {}
    for col, metric in metric_of.items():
        per_gpu = []
        for g in uniques:
            band = _band(engine, metric, str(g))
            per_gpu.append(1.0 if band is None else quantile(band, level))
        out[col] = np.asarray(per_gpu, dtype=float)[codes]
    return out


def apply_confidence(pred: pd.DataFrame, engine: str, batching: str, level: float | None) -> pd.DataFrame:
    """Scale predicted times to their ``level`` quantile (``search.slo_confidence``); identity for None.

    ``ttft_ms``, ``tpot_ms`` and ``e2e_s`` are multiplied by their factors (:func:`confidence_factors`);
    ``output_tokens_per_s`` and ``tps`` are divided by the ``e2e_s`` factor. The ``*_model_ms`` columns (the raw
    roofline) are left as they are.
    """
    if level is None or pred.empty:
        return pred
    f = confidence_factors(engine, pred["gpu"].to_numpy(), batching, level)
    out = pred.copy()
    for col, factor in f.items():
        out[col] = out[col].to_numpy(dtype=float) * factor
    for col in ("output_tokens_per_s", "tps"):
        if col in out:
            out[col] = out[col].to_numpy(dtype=float) / f["e2e_s"]
    return out
