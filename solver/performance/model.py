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

With ``batching="continuous"`` (online serving; the planner's mode for online workloads, see
``instances/engines.csv``) ``b`` is the concurrency: the serving model of :mod:`solver.performance.serving`
composes the calibrated prefill of one request and the calibrated decode step at the running batch into mean
TTFT (waiting for a KV slot, waiting behind other prefills, own prefill) and TPOT (decode steps stretched by
the other requests' prefills), closed loop at concurrency ``b`` or, with ``rate_rps``, open loop at that
arrival rate. Engines that cannot offload KV (``offloads_kv = no``) never get an offload fraction above 0:
in static mode the batch must fit, in continuous mode the requests beyond the KV slots wait. The
``ttft_model_ms`` and ``tpot_model_ms`` columns are the same composition of the uncalibrated phase times.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from solver.data.engines import EngineCapabilities, engine_capabilities
from solver.data.gpus import get_gpu
from solver.data.models import get_model
from solver.errors import InputError
from solver.performance import ctcf, serving
from solver.performance.ctcf import DEFAULT_ENGINE, CalibrationProfile, check_engine, resolve_profile
from solver.performance.hardware import bare_instance, instance_hardware
from solver.performance.latency import (
    Hardware,
    ModelCosts,
    hardware,
    mean_decode_step_s,
    prefill_s,
)
from solver.performance.memory import (
    activations_gib,
    engine_memory,
    kv_head_share,
    memory_arrays,
    resolve_dtypes,
    tp_shardable,
)
from solver.performance.uncertainty import prediction_bands
from solver.specs import MAX_BATCH, MAX_TOKENS, ModelSpec
from solver.tolerances import ROUNDING_TOL

MAX_RUNNING = 256
"""Batch an engine without a ``max_num_seqs`` cap (TGI) sizes its activations for when it reserves its KV pool
(vLLM's default ``max_num_seqs``; TGI warms up with ``max_batch_prefill_tokens``, which caps the prefill part)."""

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
    "running",
    "rate_rps",
    "prefill_model_ms",
    "step_model_ms",
)
"""``running``: requests holding a KV slot; ``rate_rps``: completed requests/s of the replica;
``prefill_model_ms`` / ``step_model_ms``: the uncalibrated phase times the CTCF applies to (prefill of the
batch, static; of one request, continuous; decode step at ``running``), for fitting CTCF on serving rows."""


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


def gpu_hardware(gpu: str, dtype: str, gpu_count: float, rows: int = 1) -> Hardware:
    """Return the effective rates of ``rows`` identical configurations of ``gpu``.

    The datasheet lookup :func:`predict_frame` does, for callers that model one configuration (the simulator).
    """
    g = _gpu_arrays(pd.Series([gpu] * rows), dtype)
    return hardware(g["tflops"], g["bw"], g["host"], g["link"], np.full(rows, float(gpu_count)), g["pcie"])


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
    rate_rps: float | None = None,
    arrivals: str = "steady",
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
        (serving, module docstring; ``batch_size`` is the concurrency).
    rate_rps
        With ``batching="continuous"``: an open-loop arrival rate per replica (requests/s) instead of the
        closed loop at concurrency ``batch_size``; ``batch_size`` then caps the running requests.
    arrivals
        Closed loop only: ``steady`` (default; the steady state with requests spread in time: half a decode
        step, the prefill queue ahead, its own prefill), ``cohort`` (equal-length requests that arrive
        together and prefill in turn, what fixed-length benchmarks started at once measure) or ``burst`` (the
        mean over one benchmark run of varying lengths started at once: one cohort wave, then steady ones),
        :mod:`solver.performance.serving`.

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
    if arrivals not in serving.ARRIVALS:
        raise InputError("arrivals", f"must be one of {', '.join(serving.ARRIVALS)}, got {arrivals!r}")
    if rate_rps is not None and (batching != "continuous" or not np.isfinite(rate_rps) or rate_rps <= 0):
        raise InputError("rate_rps", f"must be a positive number with batching='continuous', got {rate_rps!r}")
    w_dtype, kv = resolve_dtypes(model, dtype, kv_dtype)
    prof = resolve_profile(engine, profile)
    caps = engine_capabilities(engine)
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
    if not caps.offloads_kv:  # the KV stays on the GPU: "smallest that fits" is 0, any other fraction cannot run
        offload = np.where(np.isnan(offload), 0.0, offload)
    ep = expert_parallel_degrees(out, model, tp)
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
        ep=ep,
    )
    costs = ModelCosts.of(model, w_dtype, kv)
    hw = hardware(g["tflops"], g["bw"], g["host"], g["link"], gpu_count, g["pcie"])
    f = mem.offload_fraction
    s_in, n_out = float(input_tokens), float(output_tokens)
    mcols = {
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
    }
    fits = mem.fits
    if not caps.offloads_kv:  # offloading is not an option: the smallest fraction that fits is 0, or none
        fits = fits & (f == 0.0)
        mcols["min_offload_fraction"] = np.where(mem.min_offload_fraction == 0.0, 0.0, np.inf)
    if batching == "static":
        running = batch
        slots = batch
    elif caps.offloads_kv:
        running = batch
        slots = np.full_like(batch, np.inf)
    else:  # KV-capacity admission: requests beyond the free KV memory wait for a slot
        reserved = (s_in + n_out) if caps.kv_reservation == "full" else (s_in + n_out / 2.0)
        share = reserved / (s_in + n_out)
        kv_req = mem.kv_total_gib / batch * kv_head_share(model, tp) * share
        # the engine sizes its KV pool once, at start-up, for its largest batch (vLLM profiles a dummy run of
        # max_num_seqs / max_num_batched_tokens): the slots do not depend on the offered concurrency
        act = activations_gib(
            model, np.full_like(batch, float(caps.max_num_seqs or MAX_RUNNING)), input_tokens, tp, engine
        )
        mcols["activations_gib"] = act
        slack = mem.available_gpu_gib - mem.weights_gib - act
        slots = serving.admission_slots(slack, kv_req, caps.max_num_seqs)
        fits = (f == 0.0) & (slots >= 1.0)
        running = np.maximum(np.minimum(batch, slots), 1.0)
        mcols["kv_gib"] = running * kv_req
        mcols["kv_total_gib"] = mem.kv_total_gib * (running / batch) * share
        mcols["total_gpu_gib"] = mem.weights_gib + act + mcols["kv_gib"] + mem.staging_gib
        mcols["min_offload_fraction"] = np.where(fits, 0.0, np.inf)
    step = functools.partial(
        mean_decode_step_s,
        costs,
        hw,
        tp=tp,
        input_tokens=s_in,
        output_tokens=n_out,
        offload_fraction=f,
        offload_mode=offload_mode,
        ep=ep,
    )
    t_dec0 = step(batch=running)
    if batching == "static":
        t_pf = prefill_s(costs, hw, tp=tp, batch=batch, input_tokens=s_in, offload_fraction=f, ep=ep)
        ttft_model_ms = t_pf * 1e3
        tpot_model_ms = t_dec0 * 1e3
        prefill_model_ms = ttft_model_ms
        ttft_ms, tpot_ms = ctcf.apply_ctcf(
            prof, g["canonical"], ttft_model_ms, tpot_model_ms, model.num_layers, running=batch
        )
        e2e_s = ttft_ms / 1e3 + output_tokens * tpot_ms / 1e3
        rate = batch / e2e_s
    else:
        one = np.ones_like(batch)
        p_model = prefill_s(costs, hw, tp=tp, batch=one, input_tokens=s_in, offload_fraction=f, ep=ep)
        prefill_model_ms = p_model * 1e3
        # every phase time the serving model composes, calibrated in one CTCF call (rows stacked)
        pre, dec, seqs = [p_model], [t_dec0], [running]
        first_wave = rate_rps is None and arrivals in ("cohort", "burst")  # a cohort prefills together
        if first_wave:
            k = serving.cohort_size(running, s_in, engine_memory(engine).max_prefill_tokens)
            pre.append(prefill_s(costs, hw, tp=tp, batch=k, input_tokens=s_in, offload_fraction=f, ep=ep))
            dec.append(t_dec0)
            seqs.append(running)
        elif rate_rps is not None:
            ref = np.where(np.isfinite(slots), np.maximum(slots, 2.0), np.maximum(batch, 2.0))
            pre += [p_model, p_model]
            dec += [step(batch=one), step(batch=ref)]
            seqs += [one, ref]
        pre_ms, dec_ms = ctcf.apply_ctcf(
            prof, g["canonical"], np.stack(pre) * 1e3, np.stack(dec) * 1e3, model.num_layers, running=np.stack(seqs)
        )
        pre_cal, dec_cal = pre_ms / 1e3, dec_ms / 1e3
        p_cal, a_cal = pre_cal[0], dec_cal[0]
        q_model = serving.marginal_prefill_s(p_model, t_dec0, caps.mixed_prefill)
        q_cal = serving.marginal_prefill_s(p_cal, a_cal, caps.mixed_prefill)
        if rate_rps is None:
            if first_wave:
                c_model = serving.first_token_s(running, k, pre[1], t_dec0)
                c_cal = serving.first_token_s(running, k, pre_cal[1], a_cal)
                raw = serving.closed_loop(batch, running, c_model, q_model, t_dec0, n_out)
                cal = serving.closed_loop(batch, running, c_cal, q_cal, a_cal, n_out)
            if arrivals != "cohort":
                budget = engine_memory(engine).max_prefill_tokens
                mixed = caps.mixed_prefill
                own_model = serving.steady_own_prefill_s(running, p_model, t_dec0, s_in, budget, mixed)
                own_cal = serving.steady_own_prefill_s(running, p_cal, a_cal, s_in, budget, mixed)
                raw_steady = serving.steady_loop(batch, running, own_model, q_model, q_model, t_dec0, n_out)
                cal_steady = serving.steady_loop(batch, running, own_cal, q_cal, q_cal, a_cal, n_out)
                if arrivals == "burst":
                    raw = serving.burst_run(raw, raw_steady, batch, n_out)
                    cal = serving.burst_run(cal, cal_steady, batch, n_out)
                else:
                    raw, cal = raw_steady, cal_steady
        else:
            raw = serving.open_loop(rate_rps, slots, p_model, q_model, dec[1], dec[2], ref, n_out)
            q1 = serving.marginal_prefill_s(p_cal, dec_cal[1], caps.mixed_prefill)
            cal = serving.open_loop(rate_rps, slots, p_cal, q1, dec_cal[1], dec_cal[2], ref, n_out)
        ttft_model_ms = raw.ttft_s * 1e3
        tpot_model_ms = raw.tpot_s * 1e3
        ttft_ms = cal.ttft_s * 1e3
        tpot_ms = cal.tpot_s * 1e3
        rate = cal.throughput_rps
        running = cal.running
    e2e_s = ttft_ms / 1e3 + output_tokens * tpot_ms / 1e3
    values: dict[str, np.ndarray] = {
        **mcols,
        "offload_fraction": f,
        "fits": fits,
        "ttft_model_ms": ttft_model_ms,
        "tpot_model_ms": tpot_model_ms,
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "e2e_s": e2e_s,
        "output_tokens_per_s": rate * output_tokens,
        "tps": rate * (input_tokens + output_tokens),
        "running": running,
        "rate_rps": rate,
        "prefill_model_ms": prefill_model_ms,
        "step_model_ms": t_dec0 * 1e3,
    }
    for col, arr in values.items():
        out[col] = np.broadcast_to(arr, (n_rows,)).astype(bool if col == "fits" else float, copy=False)
    return out


def expert_parallel_degrees(frame: pd.DataFrame, model: ModelSpec, tp: np.ndarray) -> np.ndarray | None:
    """Return the optional ``ep`` column of ``frame``, checked: 1, or ``tp`` (> 1) for a mixture-of-experts model.

    Returns None when no row uses expert parallelism (the tensor-parallel formulas apply unchanged).
    """
    if "ep" not in frame.columns:
        return None
    ep = frame["ep"].to_numpy(dtype=float)
    bad = ~(np.isfinite(ep) & ((ep == 1.0) | (ep == tp)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            "ep", f"must be 1 or equal to tp ({int(tp[i])}: experts over the replica's GPUs), got {ep[i]:g}"
        )
    if not (ep > 1.0).any():
        return None
    if not model.is_moe:
        raise InputError("ep", f"expert parallelism needs a mixture-of-experts model; {model.name} is dense")
    if (ep > model.num_experts).any():
        raise InputError("ep", f"must not exceed the {model.num_experts} routed experts of {model.name}")
    return ep


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
    ep: int = 1
    """Expert-parallel degree: 1 (experts sharded by TP) or tp (whole experts spread over the GPUs)."""
    batching: str = "static"
    concurrency: int | None = None
    """Closed-loop clients (continuous batching at a fixed concurrency; the batch size)."""
    arrivals: str | None = None
    """Closed-loop pattern of the clients (``steady``, ``cohort`` or ``burst``; None outside a closed loop)."""
    rate_rps: float | None = None
    """Open-loop arrival rate (requests/s) the prediction is for, if any."""
    running: float = float("nan")
    """Mean requests holding a KV slot (continuous batching: at most the engine's admission limit)."""
    throughput_rps: float = float("nan")
    """Completed requests per second of the replica."""
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
    batch_size: int | None = None,
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
    ep: int = 1,
    batching: str | None = None,
    concurrency: int | None = None,
    rate_rps: float | None = None,
    arrivals: str | None = None,
) -> Prediction:
    """Predict one configuration: an ``instance`` type of ``catalog`` or a bare ``gpus`` x ``gpu`` machine.

    Parameters
    ----------
    model
        Shipped model name, HF id, path to a ``config.json``, or a :class:`ModelSpec`.
    batch_size, input_tokens, output_tokens
        Batch (static) or concurrency (continuous) and token lengths. With ``rate_rps`` it is the most requests
        the replica runs at once (default the engine's ``max_num_seqs``, else 256).
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
    batching
        ``static`` or ``continuous``; default what the planner uses for an online workload on ``engine``
        (``online_batching`` of ``instances/engines.csv``: continuous except on FlexGen).
    concurrency
        Closed-loop clients (continuous batching at a fixed concurrency; sets the batch size).
    rate_rps
        Open-loop Poisson arrival rate at this replica, requests/s (continuous batching).
    arrivals
        Closed loop only: how the clients send requests, ``steady`` (default), ``cohort`` or ``burst``
        (:func:`predict_frame`).
    ep
        Expert-parallel degree: 1 (default; every expert sharded by TP) or the TP degree (a mixture-of-experts
        model's routed experts spread whole over the replica's GPUs, :mod:`solver.performance.latency`).

    Returns
    -------
    Prediction
        Frozen result; ``to_dict()`` is the ``--json`` output.
    """
    check_engine(engine)
    if (instance is None) == (gpu is None):
        raise InputError("instance/gpu", "give exactly one of an instance type or a GPU")
    caps = engine_capabilities(engine)
    batch_size, batching = _serving_options(batch_size, batching, concurrency, rate_rps, caps)
    if arrivals is not None and (batching != "continuous" or rate_rps is not None):
        raise InputError("arrivals", "applies to a closed loop only (continuous batching at a concurrency)")
    if offload is not None and offload > 0 and not caps.offloads_kv:
        raise InputError(
            "offload",
            f"engine {engine} keeps the KV cache on the GPU (instances/engines.csv); "
            "use an offloading engine (generic, flexgen) or leave the offload out",
        )
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
                "ep": ep,
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
        batching=batching,
        rate_rps=rate_rps,
        arrivals=arrivals or "steady",
    ).iloc[0]
    _, source = prof.lookup(str(hw["gpu"]))
    memory = {k: float(row[k]) for k in MEMORY_COLUMNS}
    times = {k: float(row[k]) for k in ("ttft_ms", "tpot_ms", "e2e_s")}
    bands = prediction_bands(engine, str(hw["gpu"]), batching, times) if profile is None else {}
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
        ep=int(ep),
        batching=batching,
        concurrency=int(batch_size) if batching == "continuous" and rate_rps is None else None,
        arrivals=(arrivals or "steady") if batching == "continuous" and rate_rps is None else None,
        rate_rps=None if rate_rps is None else float(rate_rps),
        running=float(row["running"]),
        throughput_rps=float(row["rate_rps"]),
        memory=memory,
        calibration={"profile": prof.name, "engine": engine, "source": source},
        bands=bands,
        assumptions=tuple(assumptions),
    )


def _serving_options(
    batch_size: int | None,
    batching: str | None,
    concurrency: int | None,
    rate_rps: float | None,
    caps: EngineCapabilities,
) -> tuple[int, str]:
    """Resolve ``predict``'s batch size and batching from its serving options (one-line InputError)."""
    if concurrency is not None and rate_rps is not None:
        raise InputError("concurrency", "give a concurrency or an arrival rate, not both")
    if batching is None:
        batching = caps.online_batching
    if batching not in ("static", "continuous"):
        raise InputError("batching", f"must be 'static' or 'continuous', got {batching!r}")
    if (concurrency is not None or rate_rps is not None) and batching != "continuous":
        raise InputError("batching", "a concurrency or an arrival rate needs continuous batching")
    if rate_rps is not None and (not np.isfinite(rate_rps) or rate_rps <= 0):
        raise InputError("rate_rps", f"must be a positive number of requests per second, got {rate_rps!r}")
    if concurrency is not None:
        if batch_size is not None and batch_size != concurrency:
            raise InputError("concurrency", f"{concurrency} differs from the batch size {batch_size}; give one")
        batch_size = concurrency
    if batch_size is None:
        if rate_rps is None:
            raise InputError("batch_size", "give a batch size, a concurrency or an arrival rate")
        batch_size = caps.max_num_seqs or 256
    if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool):
        raise InputError("batch_size", f"must be an integer, got {batch_size!r}")
    return int(batch_size), batching
