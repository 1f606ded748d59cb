"""The performance model's public façade: memory, latency and throughput of replicas, calibrated (CTCF).

:func:`predict_frame` evaluates a whole grid of configurations as numpy arrays (the planner's entry point);
:func:`predict` evaluates one configuration for ``infersave predict`` (its hardware:
:mod:`solver.performance.hardware`). Formulas: :mod:`solver.performance.memory`, :mod:`solver.performance.latency`,
the CTCF :mod:`solver.performance.ctcf` and ``docs/performance.md``. The default engine is ``vllm``.

Per replica (one model copy on ``tp`` GPUs of one instance), for a static batch of ``b`` sequences with ``s``
prompt tokens and ``n`` output tokens::

    ttft_ms  = CTCF_prefill(t_pf · 1000)
    tpot_ms  = CTCF_decode(mean t_dec · 1000)                (mean over the generated tokens)
    e2e_s    = ttft_ms / 1000 + n · tpot_ms / 1000
    output_tokens_per_s = b · n / e2e_s
    tps      = b · (s + n) / e2e_s                            (InferSave's TPS)

With ``batching="continuous"`` (serving benchmarks at a fixed concurrency ``b``; used to compare with such
measurements) a request's prefill runs alone and is interleaved with the others' decode steps::

    ttft = t_pf(1 sequence) + t_dec(b, s + n/2)
    tpot = mean t_dec(b) + (b - 1) · t_pf(1 sequence) / n     ((b-1) other prefills land in a request's lifetime)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from solver.data.gpus import get_gpu
from solver.data.models import get_model
from solver.errors import InputError
from solver.performance import ctcf
from solver.performance.ctcf import DEFAULT_ENGINE, CalibrationProfile, check_engine, resolve_profile
from solver.performance.hardware import bare_instance, instance_hardware
from solver.performance.latency import (
    ModelCosts,
    hardware,
    mean_decode_step_s,
    prefill_s,
)
from solver.performance.memory import memory_arrays, resolve_dtypes, tp_shardable
from solver.performance.uncertainty import prediction_bands
from solver.specs import MAX_BATCH, MAX_TOKENS, ModelSpec
from solver.tolerances import ROUNDING_TOL

INPUT_COLUMNS = ("gpu", "gpu_count", "gpu_memory_mib", "host_memory_gib", "tp", "batch_size", "offload_fraction")
MEMORY_COLUMNS = (
    "weights_gib",
    "kv_gib",
    "activations_gib",
    "staging_gib",
    "total_gpu_gib",
    "available_gpu_gib",
    "kv_total_gib",
    "offloaded_kv_gib",
    "host_available_gib",
)
"""Memory columns of :func:`predict_frame` (GiB), also the ``memory`` object of ``infersave predict --json``."""
OUTPUT_COLUMNS = (
    *MEMORY_COLUMNS,
    "min_offload_fraction",
    "offload_fraction",
    "fits",
    "ttft_model_ms",
    "tpot_model_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
    "output_tokens_per_s",
    "tps",
)


def _check_tokens(input_tokens: int, output_tokens: int) -> None:
    """Reject non-positive or absurd token counts."""
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1 or value > MAX_TOKENS:
            raise InputError(name, f"must be an integer between 1 and {MAX_TOKENS:,}, got {value!r}")


def _gpu_arrays(names: pd.Series, dtype: str) -> dict[str, np.ndarray]:
    """Per-row datasheet arrays (tensor TFLOPS for ``dtype``, bandwidths) looked up once per distinct GPU."""
    codes, uniques = pd.factorize(names.astype(str))
    specs = [get_gpu(str(u), field="gpu") for u in uniques]
    table = {
        "tflops": np.array([s.tensor_tflops(dtype) for s in specs], dtype=float),
        "bw": np.array([s.memory_bandwidth_gb_per_s for s in specs], dtype=float),
        "host": np.array([s.host_link_gb_per_s for s in specs], dtype=float),
        "link": np.array([s.gpu_link_gb_per_s for s in specs], dtype=float),
        "pcie": np.array([s.gpu_link == "pcie" for s in specs], dtype=bool),
    }
    out = {k: v[codes] for k, v in table.items()}
    out["canonical"] = np.array([s.name for s in specs], dtype=object)[codes]
    return out


def predict_frame(
    frame: pd.DataFrame,
    model: ModelSpec,
    *,
    input_tokens: int,
    output_tokens: int,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    engine: str = DEFAULT_ENGINE,
    offload_mode: str = "copy",
    profile: CalibrationProfile | None = None,
    batching: str = "static",
) -> pd.DataFrame:
    """Predict memory, latency and throughput of every configuration (row) of ``frame``, vectorised.

    Parameters
    ----------
    frame
        One row per configuration with columns ``gpu`` (catalog GPU name), ``gpu_count`` (GPUs of the
        instance, fractional for GPU slices), ``gpu_memory_mib`` (usable per GPU), ``host_memory_gib``
        (instance), ``tp``, ``batch_size`` and ``offload_fraction`` (in [0, 1], or NaN for the smallest that fits).
    model
        The model card.
    input_tokens, output_tokens
        Prompt and generated tokens per sequence.
    dtype, kv_dtype
        Weight and KV-cache dtypes; default the model's dtype (int4/int8 weights keep an fp16 cache).
    engine
        ``vllm`` (default), ``tgi``, ``trtllm``, ``flexgen`` or ``generic``: memory budget and CTCF profile.
    offload_mode
        ``copy`` (offloaded KV streamed back each step, InferSave) or ``cpu_attention`` (FlexGen).
    profile
        A calibration profile; default the shipped profile of ``engine``.
    batching
        ``static`` (the contract; a batch runs from prefill to last token together) or ``continuous``
        (fixed-concurrency serving, module docstring).

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with the columns of :data:`OUTPUT_COLUMNS` added (per replica; memory per GPU
        except ``kv_total_gib`` and ``offloaded_kv_gib``, which are per replica, and ``host_available_gib``,
        the replica's share of its instance).
    """
    check_engine(engine)
    _check_tokens(input_tokens, output_tokens)
    if batching not in ("static", "continuous"):
        raise InputError("batching", f"must be 'static' or 'continuous', got {batching!r}")
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError("frame", f"missing column(s) {', '.join(missing)}")
    w_dtype, kv = resolve_dtypes(model, dtype, kv_dtype)
    prof = resolve_profile(engine, profile)
    out = frame.copy()
    n_rows = len(out)
    if n_rows == 0:
        for col in OUTPUT_COLUMNS:
            out[col] = pd.Series(dtype=bool if col == "fits" else float)
        return out
    tp = out["tp"].to_numpy(dtype=float)
    batch = out["batch_size"].to_numpy(dtype=float)
    gpu_count = out["gpu_count"].to_numpy(dtype=float)
    offload = out["offload_fraction"].to_numpy(dtype=float)
    _check_arrays(tp, batch, gpu_count, offload, out)
    g = _gpu_arrays(out["gpu"], w_dtype)
    mem = memory_arrays(
        model,
        dtype=w_dtype,
        kv_dtype=kv,
        engine=engine,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        gpu_memory_mib=out["gpu_memory_mib"].to_numpy(dtype=float),
        host_memory_gib=out["host_memory_gib"].to_numpy(dtype=float),
        gpu_count=gpu_count,
        tp=tp,
        batch=batch,
        offload_fraction=offload,
    )
    costs = ModelCosts.of(model, w_dtype, kv)
    hw = hardware(g["tflops"], g["bw"], g["host"], g["link"], gpu_count, g["pcie"])
    f = mem.offload_fraction
    t_dec0 = mean_decode_step_s(
        costs,
        hw,
        tp=tp,
        batch=batch,
        input_tokens=float(input_tokens),
        output_tokens=float(output_tokens),
        offload_fraction=f,
        offload_mode=offload_mode,
    )
    if batching == "static":
        t_pf = prefill_s(costs, hw, tp=tp, batch=batch, input_tokens=float(input_tokens), offload_fraction=f)
        t_dec = t_dec0
    else:
        one = np.ones_like(batch)
        t_pf1 = prefill_s(costs, hw, tp=tp, batch=one, input_tokens=float(input_tokens), offload_fraction=f)
        t_pf = t_pf1 + t_dec0
        t_dec = t_dec0 + (batch - 1.0) * t_pf1 / float(output_tokens)
    ttft_model_ms = t_pf * 1e3
    tpot_model_ms = t_dec * 1e3
    ttft_ms, tpot_ms = ctcf.apply_ctcf(prof, g["canonical"], ttft_model_ms, tpot_model_ms, model.num_layers)
    e2e_s = ttft_ms / 1e3 + output_tokens * tpot_ms / 1e3
    values: dict[str, np.ndarray] = {
        "weights_gib": mem.weights_gib,
        "kv_gib": mem.kv_gib,
        "activations_gib": mem.activations_gib,
        "staging_gib": mem.staging_gib,
        "total_gpu_gib": mem.total_gpu_gib,
        "available_gpu_gib": mem.available_gpu_gib,
        "kv_total_gib": mem.kv_total_gib,
        "offloaded_kv_gib": mem.offloaded_kv_gib,
        "host_available_gib": mem.host_available_gib,
        "min_offload_fraction": mem.min_offload_fraction,
        "offload_fraction": f,
        "fits": mem.fits,
        "ttft_model_ms": ttft_model_ms,
        "tpot_model_ms": tpot_model_ms,
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "e2e_s": e2e_s,
        "output_tokens_per_s": batch * output_tokens / e2e_s,
        "tps": batch * (input_tokens + output_tokens) / e2e_s,
    }
    for col, arr in values.items():
        out[col] = np.broadcast_to(arr, (n_rows,)).astype(bool if col == "fits" else float)
    return out


def _check_arrays(tp: np.ndarray, batch: np.ndarray, gpu_count: np.ndarray, offload: np.ndarray, frame: Any) -> None:
    """Validate the numeric input columns of :func:`predict_frame` (one-line InputError)."""
    if not np.all(np.isfinite(tp)) or np.any(tp < 1) or np.any(tp != np.round(tp)):
        raise InputError("tp", "must be a positive integer")
    if not np.all(np.isfinite(batch)) or np.any(batch < 1):
        raise InputError("batch_size", "must be >= 1")
    if not np.all(np.isfinite(gpu_count)) or np.any(gpu_count <= 0):
        raise InputError("gpu_count", "must be > 0")
    over = tp > np.maximum(gpu_count, 1.0) + ROUNDING_TOL
    if np.any(over):
        i = int(np.flatnonzero(over)[0])
        raise InputError("tp", f"tp {int(tp[i])} exceeds the instance's {gpu_count[i]:g} GPU(s)")
    bad = ~np.isnan(offload) & ((offload < 0) | (offload > 1))
    if np.any(bad):
        raise InputError("offload_fraction", "must be in [0, 1] (or NaN for the smallest that fits)")
    for col in ("gpu_memory_mib", "host_memory_gib"):
        vals = frame[col].to_numpy(dtype=float)
        if not np.all(np.isfinite(vals)) or np.any(vals <= 0):
            raise InputError(col, "must be a positive number")


# ---- one configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The prediction for one configuration (``infersave predict``); :meth:`to_dict` gives its JSON."""

    model: str
    instance: str
    gpu: str
    gpu_count: float
    tp: int
    batch_size: int
    input_tokens: int
    output_tokens: int
    dtype: str
    kv_dtype: str
    engine: str
    offload_mode: str
    ttft_ms: float
    tpot_ms: float
    e2e_s: float
    output_tokens_per_s: float
    tps: float
    offload_fraction: float
    min_offload_fraction: float
    fits: bool
    memory: Mapping[str, float] = field(default_factory=dict)
    calibration: Mapping[str, str] = field(default_factory=dict)
    bands: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """80 % error band of ttft_ms, tpot_ms, e2e_s from cross-validated residuals (solver/performance/uncertainty.py)."""
    assumptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object printed by ``infersave predict --json`` (the fields in declaration order)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["memory"] = dict(self.memory)
        out["calibration"] = dict(self.calibration)
        out["bands"] = {k: dict(v) for k, v in self.bands.items()}
        out["assumptions"] = list(self.assumptions)
        return out


def predict(
    model: str | ModelSpec,
    *,
    batch_size: int,
    input_tokens: int,
    output_tokens: int,
    instance: str | None = None,
    gpu: str | None = None,
    gpus: int = 1,
    host_memory_gib: float | None = None,
    tp: int | None = None,
    offload: float | None = None,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    engine: str = DEFAULT_ENGINE,
    offload_mode: str = "copy",
    profile: CalibrationProfile | str | None = None,
    catalog: str = "aws",
) -> Prediction:
    """Predict one configuration: an ``instance`` type of ``catalog`` or a bare ``gpus`` x ``gpu`` machine.

    Parameters
    ----------
    model
        Shipped model name, HF id, path to a ``config.json``, or a :class:`ModelSpec`.
    batch_size, input_tokens, output_tokens
        Static batch and token lengths.
    instance, gpu, gpus, host_memory_gib
        Exactly one of ``instance`` (AWS type) or ``gpu`` (with ``gpus`` and optionally ``host_memory_gib``).
    tp
        Tensor-parallel degree; default all GPUs of the instance (1 for a fractional GPU).
    offload
        KV offload fraction; default the smallest that fits.
    dtype, kv_dtype, engine, offload_mode, profile
        As in :func:`predict_frame`; ``profile`` may be a path to a profile YAML.
    catalog
        Where ``instance`` is looked up: a shipped catalog name or a SkyPilot-schema CSV path.

    Returns
    -------
    Prediction
        Frozen result; ``to_dict()`` is the ``--json`` output.
    """
    check_engine(engine)
    if (instance is None) == (gpu is None):
        raise InputError("instance/gpu", "give exactly one of an instance type or a GPU")
    spec = model if isinstance(model, ModelSpec) else get_model(model, field="model")
    assumptions: list[str] = []
    if instance is not None:
        hw = instance_hardware(instance, catalog)
    else:
        hw, assumptions = bare_instance(str(gpu), gpus, host_memory_gib)
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError("batch_size", f"must be between 1 and {MAX_BATCH:,}, got {batch_size:,}")
    if tp is None:  # the largest degree that fits the instance and shards the model
        degrees = np.arange(1, max(1, int(hw["gpu_count"])) + 1)
        tp_used = int(degrees[tp_shardable(spec, degrees)].max())
    else:
        if not tp_shardable(spec, tp):
            raise InputError(
                "tp",
                f"{tp} does not shard {spec.name}: it must divide its {spec.num_attention_heads} attention heads "
                f"and divide or be a multiple of its {spec.num_kv_heads} KV heads",
            )
        tp_used = tp
    if offload is not None and not 0.0 <= offload <= 1.0:
        raise InputError("offload", f"must be in [0, 1], got {offload}")
    prof = resolve_profile(engine, profile)
    frame = pd.DataFrame(
        [
            {
                "gpu": hw["gpu"],
                "gpu_count": hw["gpu_count"],
                "gpu_memory_mib": hw["gpu_memory_mib"],
                "host_memory_gib": hw["host_memory_gib"],
                "tp": tp_used,
                "batch_size": batch_size,
                "offload_fraction": np.nan if offload is None else offload,
            }
        ]
    )
    w_dtype, kv = resolve_dtypes(spec, dtype, kv_dtype)
    row = predict_frame(
        frame,
        spec,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        dtype=w_dtype,
        kv_dtype=kv,
        engine=engine,
        offload_mode=offload_mode,
        profile=prof,
    ).iloc[0]
    _, source = prof.lookup(str(hw["gpu"]))
    memory = {k: float(row[k]) for k in MEMORY_COLUMNS}
    times = {k: float(row[k]) for k in ("ttft_ms", "tpot_ms", "e2e_s")}
    bands = prediction_bands(engine, str(hw["gpu"]), "static", times) if profile is None else {}
    return Prediction(
        model=spec.name,
        instance=str(hw["instance_type"]),
        gpu=str(hw["gpu"]),
        gpu_count=float(hw["gpu_count"]),
        tp=int(tp_used),
        batch_size=int(batch_size),
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        dtype=w_dtype,
        kv_dtype=kv,
        engine=engine,
        offload_mode=offload_mode,
        ttft_ms=float(row["ttft_ms"]),
        tpot_ms=float(row["tpot_ms"]),
        e2e_s=float(row["e2e_s"]),
        output_tokens_per_s=float(row["output_tokens_per_s"]),
        tps=float(row["tps"]),
        offload_fraction=float(row["offload_fraction"]),
        min_offload_fraction=float(row["min_offload_fraction"]),
        fits=bool(row["fits"]),
        memory=memory,
        calibration={"profile": prof.name, "engine": engine, "source": source},
        bands=bands,
        assumptions=tuple(assumptions),
    )
