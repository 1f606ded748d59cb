"""One simulated replica's timing tables: step times of the performance model, KV capacity, admission limits.

A :class:`ReplicaConfig` is built once per distinct (model, hardware, tp, batch, offload, engine) and holds
everything the event loop needs as plain Python floats, so that one iteration costs a few float operations:

* **decode** — the roofline lines of :func:`solver.performance.latency._step_lines` (the function behind
  :func:`~solver.performance.latency.mean_decode_step_s`, the planner's TPOT), one set per running batch size
  ``1 … max_batch``. :meth:`ReplicaConfig.decode_s` returns the time of ``k`` consecutive decode steps of ``b``
  sequences whose contexts sum to ``C``: ``k`` times the model's mean step over contexts ``C/b … C/b + k - 1``,
  the exact formula of ``mean_decode_step_s`` (``tests/test_simulation.py`` checks equality with it);
* **prefill** — :func:`solver.performance.latency.prefill_s` of the admitted sequences, cached per
  (sequences, tokens);
* **CTCF** — both are calibrated by the scenario's profile through
  :func:`solver.performance.ctcf.apply_ctcf` (affine per phase: applied to each step);
* **KV capacity** — tokens of KV cache the replica can hold: the GPU memory left after weights and activations
  (:func:`solver.performance.memory.memory_arrays`), per token of KV on each GPU (with the KV offload fraction
  of the plan, a token costs ``(1 - f) + f · staging`` of its size on the GPU).

A request is admitted when a batch slot is free (``max_batch`` = the plan's batch size, the engine's
``max_num_seqs``) and its whole context (prompt + output tokens) fits in the free KV capacity: the cache is
reserved at admission, so there is no preemption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from solver.performance import ctcf
from solver.performance.calibration import CalibrationProfile
from solver.performance.ctcf import resolve_profile
from solver.performance.latency import ModelCosts, _step_lines, prefill_s
from solver.performance.memory import GIB, engine_memory, kv_head_share, memory_arrays, resolve_dtypes
from solver.performance.model import gpu_hardware
from solver.specs import ModelSpec


@dataclass
class ReplicaConfig:
    """Timing tables of one replica configuration (see the module docstring); build with :func:`replica_config`.

    Attributes
    ----------
    label
        Human-readable name (instance, tp, batch).
    max_batch
        Concurrent sequences (the plan's batch size).
    kv_capacity_tokens
        Tokens of KV cache the replica can hold.
    max_prefill_tokens
        Tokens one prefill pass may take (the engine's chunk); ``None`` = unbounded.
    static
        Static batches (offline workloads, FlexGen) instead of continuous batching.
    """

    label: str
    max_batch: int
    kv_capacity_tokens: float
    max_prefill_tokens: int | None
    static: bool
    lines: list[tuple[float, float, float, float, float, float]]
    alpha_decode: float
    beta_decode_s: float
    alpha_prefill: float
    beta_prefill_s: float
    _costs: ModelCosts
    _hw: object
    _tp: np.ndarray
    _f: np.ndarray
    _ep: np.ndarray | None = None
    """Expert-parallel degree (None: tensor parallelism only), as :func:`solver.performance.model.predict_frame`."""
    _prefill_cache: dict[tuple[int, int], float] = field(default_factory=dict)
    beta_per_sequence_s: float = 0.0
    """Decode CTCF cost per sequence per step (``PhaseFit.beta_per_sequence_ms``), seconds."""

    def decode_s(self, b: int, context_sum: float, k: int) -> float:
        """Seconds of ``k`` decode steps of ``b`` sequences whose contexts sum to ``context_sum`` (calibrated)."""
        a1, b1, a2, b2, a3, b3 = self.lines[b]
        c0 = context_sum / b
        c1 = c0 + k - 1
        if c1 > c0:
            cross = (a2 - a1) / (b1 - b2) if b1 != b2 else c0
            cx = min(max(cross, c0), c1)
            ml = (c0 + cx) * 0.5
            mr = (cx + c1) * 0.5
            left = max(a1 + b1 * ml, a2 + b2 * ml)
            right = max(a1 + b1 * mr, a2 + b2 * mr)
            roof = ((cx - c0) * left + (c1 - cx) * right) / (c1 - c0)
        else:
            roof = max(a1 + b1 * c0, a2 + b2 * c0)
        step = roof + a3 + b3 * (c0 + c1) * 0.5
        return k * (self.alpha_decode * step + self.beta_decode_s + b * self.beta_per_sequence_s)

    def steps_within(self, b: int, context_sum: float, k: int, dt: float) -> int:
        """Decode steps (at most ``k``) completed within ``dt`` seconds from the start of a ``k``-step run."""
        one = self.decode_s(b, context_sum, 1)
        j = min(k, int(dt / one)) if one > 0 else k
        while j > 0 and self.decode_s(b, context_sum, j) > dt:
            j -= 1
        return j

    def prefill_s(self, sequences: int, tokens: int) -> float:
        """Seconds of one prefill pass over ``sequences`` prompts of ``tokens`` tokens in all (calibrated)."""
        key = (sequences, tokens)
        hit = self._prefill_cache.get(key)
        if hit is not None:
            return hit
        t = prefill_s(
            self._costs,
            self._hw,  # type: ignore[arg-type]
            tp=self._tp,
            batch=np.array([float(sequences)]),
            input_tokens=tokens / sequences,
            offload_fraction=self._f,
            ep=self._ep,
        )
        out = self.alpha_prefill * float(t[0]) + self.beta_prefill_s
        self._prefill_cache[key] = out
        return out


def replica_config(
    model: ModelSpec,
    *,
    gpu: str,
    gpu_count: float,
    gpu_memory_mib: float,
    host_memory_gib: float,
    tp: int,
    batch_size: int,
    input_tokens: int,
    output_tokens: int,
    offload_fraction: float | None = None,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    engine: str = "vllm",
    offload_mode: str = "copy",
    profile: CalibrationProfile | None = None,
    static: bool = False,
    label: str = "",
    ep: int = 1,
) -> ReplicaConfig:
    """Build the timing tables of one replica (module docstring) with the performance model's own functions.

    Parameters
    ----------
    model
        The model card.
    gpu, gpu_count, gpu_memory_mib, host_memory_gib
        The instance's hardware (catalog GPU name, GPUs, usable MiB per GPU, host GiB).
    tp, batch_size
        Tensor-parallel degree and the most concurrent sequences.
    input_tokens, output_tokens
        The workload's lengths, used to size activations and (when ``offload_fraction`` is None) the offload.
    offload_fraction
        KV offload fraction of the plan; None for the smallest that fits.
    dtype, kv_dtype, engine, offload_mode, profile
        As in :func:`solver.performance.model.predict_frame`.
    static
        Static batches instead of continuous batching.
    label
        Name in the results.
    ep
        Expert-parallel degree of the plan's row (1, or tp for a mixture-of-experts model).
    """
    from solver.data.gpus import get_gpu

    w_dtype, kv = resolve_dtypes(model, dtype, kv_dtype)
    spec = get_gpu(gpu, field="gpu")
    prof = resolve_profile(engine, profile)
    costs = ModelCosts.of(model, w_dtype, kv)
    one = np.ones(1)
    hw = gpu_hardware(gpu, w_dtype, gpu_count)
    tp_arr = one * float(tp)
    f_req = np.array([np.nan if offload_fraction is None else float(offload_fraction)])
    mem = memory_arrays(
        model,
        dtype=w_dtype,
        kv_dtype=kv,
        engine=engine,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        gpu_memory_mib=one * gpu_memory_mib,
        host_memory_gib=one * host_memory_gib,
        gpu_count=one * gpu_count,
        tp=tp_arr,
        batch=one * float(batch_size),
        offload_fraction=f_req,
        ep=None if ep == 1 else one * float(ep),
    )
    f = mem.offload_fraction
    staging = 2.0 / model.num_layers
    per_token_gib = model.kv_bytes_per_token(kv) * float(kv_head_share(model, tp_arr)[0]) / GIB
    per_token_gib *= (1.0 - f[0]) + f[0] * staging
    slack = float(mem.available_gpu_gib[0] - mem.weights_gib[0] - mem.activations_gib[0])
    kv_cap = max(slack, 0.0) / per_token_gib if per_token_gib > 0 else float("inf")
    # never below what the planner sized the batch for (memory_arrays already accepted b·(s+n) tokens)
    if bool(mem.fits[0]):
        kv_cap = max(kv_cap, float(batch_size) * (input_tokens + output_tokens))
    batches = np.arange(1, batch_size + 1, dtype=float)
    hw_b = gpu_hardware(gpu, w_dtype, gpu_count, batch_size)
    ep_b = None if ep == 1 else np.full(batch_size, float(ep))
    a1, b1, a2, b2, a3, b3 = _step_lines(
        costs, hw_b, np.full(batch_size, float(tp)), batches, np.full(batch_size, f[0]), offload_mode, ep_b
    )
    lines = [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]
    lines += [
        (float(a1[i]), float(b1[i]), float(a2[i]), float(b2[i]), float(a3[i]), float(b3[i])) for i in range(batch_size)
    ]
    # CTCF is affine per phase: read its slope and intercept off the one function that applies it
    ttft0, tpot0 = ctcf.apply_ctcf(prof, [spec.name, spec.name], [0.0, 1.0], [0.0, 1.0], model.num_layers)
    _, per_seq = ctcf.apply_ctcf(prof, [spec.name], [0.0], [0.0], model.num_layers, running=1.0)
    return ReplicaConfig(
        label=label or f"{gpu} tp{tp} b{batch_size}",
        max_batch=int(batch_size),
        kv_capacity_tokens=kv_cap,
        max_prefill_tokens=engine_memory(engine).max_prefill_tokens,
        static=static,
        lines=lines,
        alpha_decode=float(tpot0[1] - tpot0[0]),
        beta_decode_s=float(tpot0[0]) / 1e3,
        alpha_prefill=float(ttft0[1] - ttft0[0]),
        beta_prefill_s=float(ttft0[0]) / 1e3,
        beta_per_sequence_s=float(per_seq[0] - tpot0[0]) / 1e3,
        _costs=costs,
        _hw=hw,
        _tp=tp_arr,
        _f=f,
        _ep=None if ep == 1 else one * float(ep),
    )
