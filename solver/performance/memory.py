"""GPU and host memory of one model replica, vectorised over numpy arrays.

A *replica* is one copy of the model on ``tp`` GPUs of one instance (tensor parallelism). Every quantity
below is in GiB (2**30 bytes) and, unless the name says ``_total``, per GPU.

Formulas (``P`` parameters, ``B_w`` bytes per weight, ``B_kv`` bytes per KV element, ``L`` layers,
``n_kv`` KV heads, ``d`` head dim, ``b`` batch, ``s`` input tokens, ``n`` output tokens, ``f`` offload fraction)::

    weights_gib        = (P - P_exp) · B_w / tp / 2**30 + P_exp · B_exp / tp / 2**30
                         P_exp = routed-expert parameters of all MoE layers (0 for a dense model), B_exp the
                         experts' bytes per weight (ModelSpec.expert_dtype, e.g. MXFP4 4.25 bits; else B_w);
                         expert parallelism (ep = tp > 1): each GPU holds ceil(E / ep) whole routed experts,
                         P_exp · B_exp / tp becomes L_moe · ceil(E / ep) · W_exp (W_exp: one expert's bytes)
    kv_bytes_per_token = 2 · L · n_kv · d · B_kv                         (MHA, GQA, MQA; whole replica; K and V)
                       = L · (r_kv + d_rope) · B_kv                      (MLA: the latent and the rope key)
    kv_total_gib       = b · (s + n) · kv_bytes_per_token / 2**30      (whole replica)
    kv_share           = ceil(n_kv / tp) / n_kv                          (heads are replicated when tp > n_kv;
                                                                         1 for MLA: every GPU holds the latent)
    kv_gib             = (1 - f) · kv_total_gib · kv_share               (resident on each GPU)
    staging_gib        = f · kv_total_gib · kv_share · 2 / L             (double buffer of one layer's offloaded KV)
    activations_gib    = T · (h + (n_q + 2 n_kv) · d / tp + m · I / tp) · 2 / 2**30 + b · V · 4 / 2**30
                         T = min(b · s, max_prefill_tokens), m = 2 (gated MLP) or 1; fp16 activations,
                         I = the widest MLP a token passes: the dense one, or (k + shared) · I_exp of MoE layers,
                         fp32 logits of the last position of each sequence
    total_gpu_gib      = weights_gib + kv_gib + staging_gib + activations_gib
    available_gpu_gib  = usable_gib · utilisation - fixed_reserve_gib - nccl_gib(tp)
    offloaded_kv_gib   = f · kv_total_gib                                (whole replica, in host memory)
    host_available_gib = host_memory_gib · min(1, tp / gpu_count) · host_utilisation - host_reserve_gib · tp
    min_offload_fraction = smallest f in [0, 1] with total_gpu_gib <= available_gpu_gib (inf if none)

Sources of every constant are in :data:`ENGINE_MEMORY` and :data:`NCCL_MEMORY_GIB`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.errors import InputError, UnknownNameError
from solver.specs import DTYPE_BYTES, ModelSpec
from solver.tolerances import MEMORY_FIT_GIB

FloatArray = npt.NDArray[np.float64]
GIB = float(2**30)
ACTIVATION_BYTES = 2.0
"""Activations are fp16/bf16 whatever the weight format (weight-only quantisation dequantises to fp16)."""
LOGIT_BYTES = 4.0
"""vLLM and HF compute logits in fp32."""


@dataclass(frozen=True)
class EngineMemory:
    """How a serving engine budgets GPU and host memory.

    Attributes
    ----------
    utilisation
        Fraction of the usable GPU memory the engine lets itself use.
    fixed_reserve_gib
        GPU memory kept aside for CUDA context, cuBLAS workspaces, graphs, fragmentation.
    max_prefill_tokens
        Tokens processed in one prefill forward pass (chunking); ``None`` = the whole batch at once.
    host_utilisation
        Fraction of the replica's share of host memory that may hold offloaded KV.
    host_reserve_gib_per_gpu
        Host memory the engine claims per GPU besides offloaded KV.
    source
        Where each number comes from.
    """

    utilisation: float
    fixed_reserve_gib: float
    max_prefill_tokens: int | None
    host_utilisation: float
    host_reserve_gib_per_gpu: float
    source: str


_AICONF_OTHER_MEM_GIB = 3758096384 / GIB
"""3.5 GiB ``other_mem`` of aiconfigurator's system files (shared/data/gpu_specs/aiconfigurator_systems/*.yaml)."""
_VLLM_SWAP_SPACE_GIB = 4.0
"""vLLM engine argument ``swap_space`` default: 4 GiB of CPU memory per GPU (docs.vllm.ai engine_args)."""

ENGINE_MEMORY: dict[str, EngineMemory] = {
    "vllm": EngineMemory(
        utilisation=0.9,
        fixed_reserve_gib=0.0,
        max_prefill_tokens=8192,
        host_utilisation=1.0,
        host_reserve_gib_per_gpu=_VLLM_SWAP_SPACE_GIB,
        source=(
            "vLLM engine arguments: gpu_memory_utilization default 0.9 (the budget includes CUDA context and "
            "non-torch memory, so no extra reserve), swap_space default 4 GiB per GPU; max_num_batched_tokens "
            "8192 (vLLM V1 default for the offline LLM class) bounds the prefill activations"
        ),
    ),
    "tgi": EngineMemory(
        utilisation=1.0,
        fixed_reserve_gib=_AICONF_OTHER_MEM_GIB,
        max_prefill_tokens=4096,
        host_utilisation=1.0,
        host_reserve_gib_per_gpu=_VLLM_SWAP_SPACE_GIB,
        source=(
            "TGI launcher: cuda_memory_fraction default 1.0, max_batch_prefill_tokens default 4096; "
            "non-KV reserve = aiconfigurator other_mem 3.5 GiB; host reserve as vLLM's swap_space (4 GiB/GPU)"
        ),
    ),
    "trtllm": EngineMemory(
        utilisation=1.0,
        fixed_reserve_gib=_AICONF_OTHER_MEM_GIB,
        max_prefill_tokens=8192,
        host_utilisation=1.0,
        host_reserve_gib_per_gpu=_VLLM_SWAP_SPACE_GIB,
        source=(
            "aiconfigurator (NVIDIA's TRT-LLM configurator) memory model: all usable memory minus other_mem "
            "3.5 GiB and nccl_mem(tp); max_num_tokens 8192 (TRT-LLM build default); host reserve 4 GiB/GPU "
            "as vLLM's swap_space"
        ),
    ),
    "flexgen": EngineMemory(
        utilisation=1.0,
        fixed_reserve_gib=1.0,
        max_prefill_tokens=None,
        host_utilisation=1.0,
        host_reserve_gib_per_gpu=4.0,
        source=(
            "FlexGen cost model (FMInference/FlexiGen experimental/cost_model.py @b3ab95b6) for its 16 GB T4 "
            "with 208 GB DRAM: gmem = 15 GiB and cmem = 204 GiB, i.e. 1 GiB of GPU and 4 GiB of host memory "
            "kept back; its extra alpha = 0.8 relaxation is a policy-search margin and is not applied; "
            "prefill is not chunked"
        ),
    ),
    "generic": EngineMemory(
        utilisation=1.0,
        fixed_reserve_gib=_AICONF_OTHER_MEM_GIB,
        max_prefill_tokens=8192,
        host_utilisation=1.0,
        host_reserve_gib_per_gpu=_VLLM_SWAP_SPACE_GIB,
        source="aiconfigurator other_mem 3.5 GiB and nccl_mem; vLLM's 8192-token prefill chunk and 4 GiB/GPU swap",
    ),
}
"""Memory budget of each serving engine, with sources."""

NCCL_MEMORY_GIB: dict[int, float] = {1: 0.0, 2: 358612992 / GIB, 4: 411041792 / GIB, 8: 411041792 / GIB}
"""NCCL buffers per GPU by TP degree: aiconfigurator ``misc.nccl_mem`` (342 MiB at 2, 392 MiB at 4 and 8 GPUs)."""


def engine_memory(engine: str) -> EngineMemory:
    """Return the memory budget of ``engine``; raises :class:`UnknownNameError` for an unknown name."""
    try:
        return ENGINE_MEMORY[engine]
    except KeyError:
        raise UnknownNameError("engine", "engine", engine, list(ENGINE_MEMORY)) from None


def resolve_dtypes(model: ModelSpec, dtype: str | None, kv_dtype: str | None) -> tuple[str, str]:
    """Return (weight dtype, KV dtype) as served.

    Defaults are the model's dtype, except that a float32 checkpoint is served in fp16, as vLLM's ``dtype="auto"``
    does ("FP16 precision for FP32 and FP16 models"); int4/int8 weights keep an fp16 cache. Serving in fp32 is not
    modelled (the GPU table has no fp32 tensor rate), so an explicit ``fp32`` is an error.

    Parameters
    ----------
    model
        The model card.
    dtype, kv_dtype
        Requested weight and KV-cache dtypes, or None for the defaults above.

    Returns
    -------
    tuple of str
        ``(weight dtype, KV dtype)``.
    """
    w = dtype or ("fp16" if model.default_dtype == "fp32" else model.default_dtype)
    if w not in DTYPE_BYTES:
        raise InputError("dtype", f"unknown dtype {w!r}; use one of {', '.join(DTYPE_BYTES)}")
    if w == "fp32":
        raise InputError("dtype", "serving in fp32 is not modelled; use fp16 or bf16")
    kv = kv_dtype or ("fp16" if w in ("int4", "int8") else w)
    if kv not in DTYPE_BYTES or kv in ("int4", "fp32"):
        raise InputError("kv_dtype", f"unsupported KV-cache dtype {kv!r}; use fp16, bf16, fp8 or int8")
    return w, kv


def nccl_gib(tp: FloatArray) -> FloatArray:
    """NCCL buffer memory per GPU for each TP degree (aiconfigurator table; 8's value above 8).

    Parameters
    ----------
    tp
        Tensor-parallel degrees.

    Returns
    -------
    numpy.ndarray
        GiB per GPU (0 at tp = 1).
    """
    out = np.where(tp >= 4, NCCL_MEMORY_GIB[4], np.where(tp >= 2, NCCL_MEMORY_GIB[2], 0.0))
    return out.astype(np.float64)


def weights_gib(model: ModelSpec, dtype: str, tp: npt.ArrayLike, ep: npt.ArrayLike | None = None) -> FloatArray:
    """Weight memory per GPU: parameters · bytes per weight / tp, in GiB (expert parallelism: module docstring).

    Parameters
    ----------
    model
        The model card.
    dtype
        Weight dtype.
    tp
        Tensor-parallel degrees.
    ep
        Expert-parallel degrees (1 or tp; None: 1 everywhere).

    Returns
    -------
    numpy.ndarray
        GiB per GPU, one per degree.
    """
    tp_arr = np.asarray(tp, dtype=np.float64)
    if not model.is_moe:
        return model.num_params * DTYPE_BYTES[dtype] / tp_arr / GIB
    total = model.weight_bytes(dtype)
    if ep is None:
        return total / tp_arr / GIB
    ep_arr = np.asarray(ep, dtype=np.float64)
    one = model.expert_bytes(dtype)
    routed = model.num_moe_layers * model.num_experts * one
    whole = model.num_moe_layers * np.ceil(model.num_experts / np.maximum(ep_arr, 1.0)) * one * ep_arr / tp_arr
    per_gpu = (total - routed) / tp_arr + np.where(ep_arr > 1.0, whole, routed / tp_arr)
    return np.asarray(per_gpu / GIB, dtype=np.float64)


def tp_shardable(model: ModelSpec, tp: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Return where ``tp`` can shard the model, as vLLM and TensorRT-LLM require.

    ``tp`` must divide the attention heads, and divide or be a multiple of the KV heads (KV heads are replicated
    when ``tp`` exceeds them).

    Parameters
    ----------
    model
        The model card.
    tp
        Tensor-parallel degrees (integers).

    Returns
    -------
    numpy.ndarray of bool
        True where the degree shards the model.
    """
    t = np.asarray(tp, dtype=np.int64)
    heads_ok = model.num_attention_heads % t == 0
    kv_ok = (model.num_kv_heads % t == 0) | (t % model.num_kv_heads == 0)
    return np.asarray(heads_ok & kv_ok, dtype=bool)


def kv_head_share(model: ModelSpec, tp: npt.ArrayLike) -> FloatArray:
    """Share of the replica's KV cache held by each GPU: ceil(n_kv / tp) / n_kv (KV heads replicate past n_kv).

    With multi-head latent attention the cached latent is shared by all heads, so every GPU holds all of it
    (vLLM and SGLang replicate the MLA cache across tensor-parallel ranks): the share is 1.

    Parameters
    ----------
    model
        The model card.
    tp
        Tensor-parallel degrees.

    Returns
    -------
    numpy.ndarray
        The share, in (0, 1], one per degree.
    """
    tp_arr = np.asarray(tp, dtype=np.float64)
    if model.attention_type == "mla":
        return np.ones_like(tp_arr)
    return np.ceil(model.num_kv_heads / tp_arr) / model.num_kv_heads


def kv_total_gib(model: ModelSpec, kv_dtype: str, batch: npt.ArrayLike, context_tokens: npt.ArrayLike) -> FloatArray:
    """KV cache of the whole replica: batch · context tokens · KV bytes per token, in GiB.

    Parameters
    ----------
    model
        The model card.
    kv_dtype
        KV-cache dtype.
    batch, context_tokens
        Sequences and cached tokens per sequence.

    Returns
    -------
    numpy.ndarray
        GiB per replica.
    """
    b = np.asarray(batch, dtype=np.float64)
    c = np.asarray(context_tokens, dtype=np.float64)
    return b * c * model.kv_bytes_per_token(kv_dtype) / GIB


def activations_gib(
    model: ModelSpec, batch: npt.ArrayLike, input_tokens: int, tp: npt.ArrayLike, engine: str
) -> FloatArray:
    """Peak activation/workspace memory per GPU during prefill (one layer's live tensors + fp32 logits).

    Parameters
    ----------
    model
        The model card.
    batch, input_tokens
        Sequences and prompt tokens per sequence (prefill tokens are capped at the engine's chunk size).
    tp
        Tensor-parallel degrees.
    engine
        Serving engine (its ``max_prefill_tokens``).

    Returns
    -------
    numpy.ndarray
        GiB per GPU.
    """
    eng = engine_memory(engine)
    b = np.asarray(batch, dtype=np.float64)
    tp_arr = np.asarray(tp, dtype=np.float64)
    tokens = b * input_tokens
    if eng.max_prefill_tokens is not None:
        tokens = np.minimum(tokens, float(eng.max_prefill_tokens))
    m = 2.0 if model.mlp == "gated" else 1.0
    inter = mlp_width(model)
    width = (
        model.hidden_size
        + (model.num_attention_heads + 2 * model.num_kv_heads) * model.head_dim / tp_arr
        + m * inter / tp_arr
    )
    act = tokens * width * ACTIVATION_BYTES + b * model.vocab_size * LOGIT_BYTES
    return np.asarray(act / GIB, dtype=np.float64)


def mlp_width(model: ModelSpec) -> int:
    """Intermediate width a token's activations reach in the widest MLP.

    The dense MLP's, or in a MoE layer the ``experts_per_token`` routed plus the shared experts' (each
    ``expert_intermediate_size`` wide).
    """
    if not model.is_moe:
        return model.intermediate_size
    moe = (model.experts_per_token + model.num_shared_experts) * int(model.expert_intermediate_size or 0)
    return max(moe, model.intermediate_size if model.num_dense_layers else 0)


def available_gpu_gib(gpu_memory_mib: npt.ArrayLike, tp: npt.ArrayLike, engine: str) -> FloatArray:
    """GPU memory the engine may use per GPU: usable · utilisation - fixed reserve - NCCL buffers, in GiB.

    Parameters
    ----------
    gpu_memory_mib
        Usable memory of one GPU, MiB.
    tp
        Tensor-parallel degrees.
    engine
        Serving engine whose budget applies.

    Returns
    -------
    numpy.ndarray
        GiB per GPU.
    """
    eng = engine_memory(engine)
    usable = np.asarray(gpu_memory_mib, dtype=np.float64) / 1024.0
    tp_arr = np.asarray(tp, dtype=np.float64)
    return usable * eng.utilisation - eng.fixed_reserve_gib - nccl_gib(tp_arr)


def host_available_gib(
    host_memory_gib: npt.ArrayLike, gpu_count: npt.ArrayLike, tp: npt.ArrayLike, engine: str
) -> FloatArray:
    """Host memory this replica may fill with offloaded KV: its share of the instance minus the engine reserve.

    Parameters
    ----------
    host_memory_gib
        Host memory of the instance.
    gpu_count
        GPUs of the instance (the replica's share is ``tp / gpu_count``, at most 1).
    tp
        Tensor-parallel degrees.
    engine
        Serving engine whose host budget applies.

    Returns
    -------
    numpy.ndarray
        GiB per replica.
    """
    eng = engine_memory(engine)
    host = np.asarray(host_memory_gib, dtype=np.float64)
    tp_arr = np.asarray(tp, dtype=np.float64)
    share = np.minimum(1.0, tp_arr / np.asarray(gpu_count, dtype=np.float64))
    return host * share * eng.host_utilisation - eng.host_reserve_gib_per_gpu * tp_arr


@dataclass(frozen=True)
class MemoryArrays:
    """Memory of each configuration (numpy arrays of equal length, GiB)."""

    weights_gib: FloatArray
    kv_gib: FloatArray
    activations_gib: FloatArray
    staging_gib: FloatArray
    total_gpu_gib: FloatArray
    available_gpu_gib: FloatArray
    kv_total_gib: FloatArray
    offloaded_kv_gib: FloatArray
    host_available_gib: FloatArray
    min_offload_fraction: FloatArray
    offload_fraction: FloatArray
    fits: npt.NDArray[np.bool_]


def memory_arrays(
    model: ModelSpec,
    *,
    dtype: str,
    kv_dtype: str,
    engine: str,
    input_tokens: int,
    output_tokens: int,
    gpu_memory_mib: FloatArray,
    host_memory_gib: FloatArray,
    gpu_count: FloatArray,
    tp: FloatArray,
    batch: FloatArray,
    offload_fraction: FloatArray,
    ep: FloatArray | None = None,
) -> MemoryArrays:
    """Evaluate every memory quantity of the module docstring for arrays of configurations.

    Parameters
    ----------
    model
        The model card.
    dtype, kv_dtype
        Weight and KV-cache dtypes (already resolved, see :func:`resolve_dtypes`).
    engine
        Serving engine whose memory budget applies.
    input_tokens, output_tokens
        Prompt and generated tokens per sequence; the KV cache is sized for their sum.
    gpu_memory_mib, host_memory_gib, gpu_count, tp, batch
        Per-configuration arrays (usable memory of one GPU, instance host memory, GPUs of the instance,
        tensor-parallel degree, batch size).
    offload_fraction
        Requested KV offload fraction in [0, 1], or NaN for "the smallest that fits".
    ep
        Expert-parallel degrees (1 or tp; None: no expert parallelism).

    Returns
    -------
    MemoryArrays
        Per-GPU and per-replica memory, the smallest offload fraction that fits, the one used, and ``fits``.
    """
    w = weights_gib(model, dtype, tp, ep)
    act = activations_gib(model, batch, input_tokens, tp, engine)
    kv_tot = kv_total_gib(model, kv_dtype, batch, input_tokens + output_tokens)
    kv_gpu_full = kv_tot * kv_head_share(model, tp)
    avail = available_gpu_gib(gpu_memory_mib, tp, engine)
    host_avail = host_available_gib(host_memory_gib, gpu_count, tp, engine)
    staging = 2.0 / model.num_layers
    # total(f) = w + act + kv_gpu_full * (1 - f * (1 - staging)); solve total(f) <= avail for f.
    slack = avail - w - act
    shrink = kv_gpu_full * (1.0 - staging)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_needed = (kv_gpu_full - slack) / shrink
    f_min = np.where(slack >= kv_gpu_full, 0.0, f_needed)
    f_min = np.where((f_min > 1.0) | ~np.isfinite(f_min), np.inf, np.maximum(f_min, 0.0))
    requested = np.asarray(offload_fraction, dtype=np.float64)
    f = np.where(np.isnan(requested), np.where(np.isfinite(f_min), f_min, 0.0), requested)
    kv_gpu = kv_gpu_full * (1.0 - f)
    stage = kv_gpu_full * f * staging
    total = w + act + kv_gpu + stage
    offloaded = kv_tot * f
    tol = MEMORY_FIT_GIB
    fits = (total <= avail + tol) & (offloaded <= host_avail + tol) & np.isfinite(f_min)
    return MemoryArrays(
        weights_gib=w,
        kv_gib=kv_gpu,
        activations_gib=act,
        staging_gib=stage,
        total_gpu_gib=total,
        available_gpu_gib=avail,
        kv_total_gib=kv_tot,
        offloaded_kv_gib=offloaded,
        host_available_gib=host_avail,
        min_offload_fraction=f_min,
        offload_fraction=f,
        fits=fits,
    )
