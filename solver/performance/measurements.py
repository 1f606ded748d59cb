"""Measurement modelling: the raw (uncalibrated) model's prediction of every row of a measurement table.

A measured run happened, so it is modelled on a bare machine of ``tp`` GPUs with the usable memory of
:func:`solver.performance.hardware.usable_gpu_mib` and no host-memory limit; the calibration fit
(:mod:`solver.performance.calibration`) and the accuracy report (:mod:`solver.performance.accuracy`) compare
these predictions with the measured times.

A mixture-of-experts row may carry an ``expert_routing`` column (``uniform`` or ``same_experts``, the values of
``ModelSpec.expert_routing``): how the benchmark that produced the row routed its tokens, which can differ from
the model card's (the planner's) routing. The NVIDIA DLI TensorRT-LLM 0.9 Mixtral rows ran with random weights
that send every token to the same experts (``instances/DATA_PROVENANCE.md``, docs/accuracy.md); an empty cell
or a missing column keeps the card's routing.

A continuous-batching row may carry an ``arrivals`` column (``steady``, ``cohort`` or ``burst``): the closed-loop
pattern its benchmark's clients produced (:mod:`solver.performance.serving`), so that the row is modelled as it
was measured; an empty cell or a missing column is the steady state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

import numpy as np
import pandas as pd

from solver.data.models import get_model
from solver.errors import InputError
from solver.performance import serving
from solver.performance.ctcf import IDENTITY, CalibrationProfile
from solver.performance.hardware import usable_gpu_mib
from solver.performance.model import predict_frame
from solver.specs import ModelSpec

GROUP_KEYS = ("model", "engine", "dtype", "kv_dtype", "input", "output", "batching", "offload_mode")
"""Columns that a group of measurement rows shares so that one :func:`predict_frame` call models them all."""
ROUTING_COLUMN = "expert_routing"
"""Optional column: the routing of the benchmark that produced a mixture-of-experts row (module docstring)."""
ROUTINGS = get_args(ModelSpec.model_fields["expert_routing"].annotation)
ARRIVALS_COLUMN = "arrivals"
"""Optional column of continuous-batching rows: the closed-loop pattern of the benchmark that produced the row
(``steady``, ``cohort`` or ``burst``, :mod:`solver.performance.serving`; default ``steady``)."""


def measurement_hardware(rows: pd.DataFrame) -> pd.DataFrame:
    """Bare-machine input grid for measurement rows: ``tp`` GPUs, usable memory as in the AWS catalog.

    Host memory is not a constraint of a measured run (it happened), so it is set large (1 PiB).

    Parameters
    ----------
    rows
        Measurement rows with ``gpu`` (canonical), ``tp``, ``batch`` and optionally ``offload``.

    Returns
    -------
    pandas.DataFrame
        A :func:`~solver.performance.model.predict_frame` input frame on ``rows``' index.
    """
    offload = rows["offload"].to_numpy(dtype=float) if "offload" in rows else np.zeros(len(rows))
    return pd.DataFrame(
        {
            "gpu": rows["gpu"].to_numpy(),
            "gpu_count": rows["tp"].to_numpy(dtype=float),
            "gpu_memory_mib": [usable_gpu_mib(str(g)) for g in rows["gpu"]],
            "host_memory_gib": 2.0**20,
            "tp": rows["tp"].to_numpy(dtype=float),
            "batch_size": rows["batch"].to_numpy(dtype=float),
            "offload_fraction": offload,
        },
        index=rows.index,
    )


def model_measurements(table: pd.DataFrame) -> pd.DataFrame:
    """Add modelled (uncalibrated) ``ttft_model_ms``, ``tpot_model_ms``, ``e2e_model_s`` to measurement rows.

    Each group of rows sharing :data:`GROUP_KEYS` is evaluated in one vectorised call. Hardware is
    :func:`measurement_hardware` (memory fit is not checked: the runs happened).

    Parameters
    ----------
    table
        A checked measurement table (:func:`solver.performance.calibration.check_measurements`).

    Returns
    -------
    pandas.DataFrame
        ``table`` with the three modelled columns, the uncalibrated decode step at the running batch
        ``step_model_ms`` (the phase time the decode CTCF applies to; under continuous batching ``tpot_model_ms``
        is that step stretched by the other requests' prefills), the sequences in that step ``running`` and the
        model's ``num_layers`` added, in its row
        order.
    """
    parts: list[pd.DataFrame] = []
    for rows, pred, model, n in _predicted_groups(table, IDENTITY):
        part = rows.copy()
        part["ttft_model_ms"] = pred["ttft_model_ms"]
        part["tpot_model_ms"] = pred["tpot_model_ms"]
        part["step_model_ms"] = pred["step_model_ms"]
        part["running"] = pred["running"]
        part["e2e_model_s"] = (pred["ttft_model_ms"] + n * pred["tpot_model_ms"]) / 1e3
        part["num_layers"] = model.num_layers
        parts.append(part)
    out = pd.concat(parts).loc[table.index]
    for col in ("dtype", "kv_dtype"):
        out[col] = table[col]
    for col in (ROUTING_COLUMN, ARRIVALS_COLUMN):
        if col in table:
            out[col] = table[col]
        else:
            out = out.drop(columns=col)
    return out


def _optional_column(work: pd.DataFrame, col: str, allowed: tuple[str, ...]) -> None:
    """Give ``work`` the optional column ``col`` as strings, blank where missing; one-line error on another value."""
    values = work[col] if col in work else pd.Series("", index=work.index)
    work[col] = values.astype(object).where(values.notna(), "").astype(str)
    bad = ~work[col].isin(["", *allowed])
    if bad.any():
        value = work.loc[bad, col].iloc[0]
        raise InputError(f"measurements: {col}", f"must be one of {', '.join(allowed)}, got {value!r}")


def _predicted_groups(
    table: pd.DataFrame, profile: CalibrationProfile
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, ModelSpec, int]]:
    """``(rows, predict_frame output, model card, output tokens)`` per group of rows sharing :data:`GROUP_KEYS`."""
    work = table.copy()
    for col in ("dtype", "kv_dtype"):
        work[col] = work[col].astype(object).where(work[col].notna(), "")
    _optional_column(work, ROUTING_COLUMN, ROUTINGS)
    _optional_column(work, ARRIVALS_COLUMN, serving.ARRIVALS)
    static = (work[ARRIVALS_COLUMN] != "") & (work["batching"].astype(str) != "continuous")
    if static.any():
        raise InputError(f"measurements: {ARRIVALS_COLUMN}", "applies to batching=continuous rows only")
    for key, rows in work.groupby([*GROUP_KEYS, ROUTING_COLUMN, ARRIVALS_COLUMN], sort=False, dropna=False):
        model_name, engine, dtype, kv_dtype, s_raw, n_raw, batching, mode, route, arrivals = key
        s, n = int(str(s_raw)), int(str(n_raw))
        model = get_model(str(model_name), field="measurements: model")
        if route and model.is_moe:
            model = model.model_copy(update={"expert_routing": str(route)})
        pred = predict_frame(
            measurement_hardware(rows),
            model,
            input_tokens=s,
            output_tokens=n,
            dtype=str(dtype) or None,
            kv_dtype=str(kv_dtype) or None,
            engine=str(engine),
            offload_mode=str(mode),
            profile=profile,
            batching=str(batching),
            arrivals=str(arrivals) or "steady",
        )
        yield rows, pred, model, n


def serving_calibrated(rows: pd.DataFrame, profile: CalibrationProfile) -> pd.DataFrame:
    """Calibrated TTFT and TPOT (ms) of continuous-batching measurement rows, as ``infersave predict`` computes them.

    The serving model (:mod:`solver.performance.serving`) runs on the phase times calibrated by ``profile``: the
    prefill and the decode step each get their CTCF first, and the stretch of the step by the other requests'
    prefills, the prefill queue and the admission wait are then composed from those calibrated times
    (:func:`~solver.performance.model.predict_frame` with ``profile``). The fit
    (:func:`solver.performance.calibration.fit_hierarchical`) instead holds the raw model's stretch fixed so that
    its equations stay linear.

    Parameters
    ----------
    rows
        Measurement rows (:func:`solver.performance.calibration.check_measurements`), ``batching`` continuous.
    profile
        The profile applied.

    Returns
    -------
    pandas.DataFrame
        ``ttft_cal_ms`` and ``tpot_cal_ms`` on the index of ``rows``.
    """
    out = pd.DataFrame(index=rows.index, columns=["ttft_cal_ms", "tpot_cal_ms"], dtype=float)
    for part, pred, _, _ in _predicted_groups(rows, profile):
        out.loc[part.index, "ttft_cal_ms"] = pred["ttft_ms"].to_numpy(dtype=float)
        out.loc[part.index, "tpot_cal_ms"] = pred["tpot_ms"].to_numpy(dtype=float)
    return out
