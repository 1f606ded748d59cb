"""Roofline latency of one replica: prefill (TTFT), decode steps (TPOT), KV offload traffic and TP all-reduce.

All times are seconds unless the name says ``_ms``; FLOPs are floating-point operations, bytes are bytes,
bandwidths bytes per second. Each phase is a roofline on the ``tp`` GPUs of the replica plus serial terms::

    F_eff  = tensor_tflops(dtype) · 1e12 · COMPUTE_EFFICIENCY · q         (FLOP/s per GPU; q = GPU slice <= 1)
    BW_eff = memory_bandwidth_gb_per_s · 1e9 · MEMORY_BW_EFFICIENCY · q  (B/s per GPU)
    H_rd   = host_link_gb_per_s · 1e9 · HOST_READ_EFFICIENCY              (B/s per GPU, CPU→GPU: KV read back)
    H_wr   = host_link_gb_per_s · 1e9 · HOST_WRITE_EFFICIENCY             (B/s per GPU, GPU→CPU: KV written out)
    H_hid  = host_link_gb_per_s · 1e9 · HOST_HIDDEN_WRITE_EFFICIENCY      (B/s per GPU, GPU→CPU: hidden states)
    N_eff  = gpu_link_gb_per_s · 1e9 · LINK_EFFICIENCY[link]              (B/s per GPU, all-reduce bus bandwidth)

    P_mm   = L · layer_params                     (matmul weights of the layers; MoE: the ACTIVE ones, i.e.
                                                   dense layers + per MoE layer attention, router, top-k routed
                                                   and shared experts: ModelSpec.active_layer_params)
    F_tok  = 2 · P_mm                              (FLOPs per token through the layers)
    F_head = 2 · V · h                             (lm-head FLOPs per sampled position)
    F_att  = 2 · L · n_q · (d_qk + d_v)            (attention FLOPs per (query, cached token) pair: QKᵀ and AV;
                                                   4 · L · n_q · d without MLA)
    W      = P · B_w                                (weight bytes, read once per forward pass)
    K      = kv_bytes_per_token                     (2 · L · n_kv · d · B_kv; MLA: L · (r_kv + d_rope) · B_kv)

    mixture of experts: a pass over T tokens reads the non-routed weights and, in each of the L_moe MoE layers,
    the distinct routed experts the T tokens touch. Under uniform, independent top-k routing over E experts the
    expected number is E_T = E · (1 - (1 - k/E)^T) (expected_experts_touched), so
        W(T) = W - L_moe · E · W_exp + L_moe · E_T · W_exp     (W_exp: bytes of one expert of one layer)
    with T = b·s in prefill and T = b in a decode step (W(T) replaces W below); a card with
    expert_routing = same_experts (every token to the same k experts) has E_T = k. Real routers are not uniform:
    popular experts concentrate the load (fewer distinct experts at a given batch, so W(T) is an upper bound
    on bytes) while the busiest expert's GEMM sets the step time (not modelled); DeepSeek-V3's group-limited
    routing restricts each token to 4 of 8 expert groups, which also lowers E_T below the uniform value.

    prefill, b sequences of s tokens (causal attention: s(s+1)/2 pairs):
        F_pf = b·s·F_tok + b·F_head + b·F_att·s(s+1)/2
        M_pf = W(b·s) + b·s·K
        t_pf = max(F_pf / (tp·F_eff), M_pf / (tp·BW_eff)) + 2L·AR(b·s·h·2) + f·b·s·K / (tp·H_wr) + T_pass

    decode step with c cached tokens per sequence:
        F_dec(c) = b·(F_tok + F_head) + b·F_att·c · (1 - f·[cpu_attention])
        M_dec(c) = W(b) + b·c·K · (1 - f·[cpu_attention])
        both modes:                     + f·b·K / (tp·H_wr)             the new token's offloaded KV written out
        copy mode          (InferSave): + f·b·c·K / (tp·H_rd)           offloaded KV streamed back every step
        cpu_attention mode (FlexGen):   + f·b·c·K / CPU_ATTENTION_BYTES_PER_S
                                        + f·L·b·n_q·d·2 / (tp·H_hid)    query out to the CPU
                                        + f·L·b·n_q·d·2 / (tp·H_rd)     attention output back
        t_dec(c) = max(F_dec / (tp·F_eff), M_dec / (tp·BW_eff)) + 2L·AR(b·h·2) + T_pass + offload terms

    fixed time of one forward pass (kernel launch / minimum kernel latency), charged once per step:
        T_pass = L · KERNELS_PER_LAYER · KERNEL_LATENCY_S

    TP all-reduce of x bytes (ring, two per layer: after attention and after the MLP), by link type:
        AR(x) = [tp > 1] · (2·(tp-1)/tp · x / N_eff + ALLREDUCE_LATENCY_S[link])

    TPOT = mean of t_dec(c) over c = s+1 … s+n (exact for the piecewise-linear roofline, see _mean_max_linear)

    expert parallelism (MoE only, ep = tp: each of the replica's GPUs holds E/ep whole routed experts instead of
    a 1/tp slice of every expert; attention stays tensor-parallel). Per MoE layer the all-reduce after the MLP
    is replaced by the token exchange: each GPU owns T/ep tokens (the attention all-reduce done as
    reduce-scatter + all-gather, the same bytes), sends each token's hidden state to the GPUs of its k experts
    (dispatch) and gets the k results back (combine), two all-to-alls of x = T·k·h·2/ep bytes per GPU:
        A2A(x) = [ep > 1] · ((ep-1)/ep · x / N_eff + ALLREDUCE_LATENCY_S[link] / 2)
    (N_eff and the latency are the all-reduce's, per link type; an all-to-all is one phase, half the
    all-reduce's two), so the 2L all-reduces become 2L·AR - L_moe·AR + 2·L_moe·A2A. That is vLLM's EP over
    NVLink (its pplx / DeepEP all-to-all backends, docs.vllm.ai "Expert Parallel Deployment"); over PCIe,
    without peer-to-peer links, vLLM falls back to a broadcast-based exchange (the "naive" backend), so there EP
    keeps the MoE all-reduce's cost (no A2A term). TensorRT-LLM's EP also used the all-reduce path in 2024
    (NVIDIA/TensorRT-LLM issue #2331); the A2A term is vLLM's and SGLang's. The GPUs step together,
    so the busiest one sets the time: under uniform routing each of its m = E/ep experts is touched with
    p = 1 - (1 - k/E)^T, and the expected maximum over the ep GPUs of their touched experts is taken as
        X_max = min(m, m·p + sqrt(2·ln(ep) · m·p·(1-p)))   (Gaussian approximation of the maximum of ep sums)
    whole experts read per MoE layer on that GPU, so W(T) uses E_T = ep·X_max in place of the uniform E_T
    (same_experts: the k experts sit on one GPU, X_max = min(k, m)). At large T, X_max -> m and the bytes
    equal tensor parallelism's; at small T EP reads more (batch 1, Mixtral on 8 GPUs: one whole expert, 4x
    the 2/8 of TP). The busiest GPU's extra tokens in the FLOPs are not modelled (within
    sqrt(2·ln(ep)/(T·k/ep)) of the mean: 4 % for an 8,192-token prefill of Mixtral on 8 GPUs).

Constants and their sources:

* ``COMPUTE_EFFICIENCY = 0.73``: achieved / peak dense FP16 tensor FLOPS of the four projection GEMMs of one layer
  at 4,096 tokens, TP=1, in Vidur's operator profiles (shared/data/vidur_profiling: A100 Llama-2-7B 0.71,
  70B 0.77; H100 7B 0.76, 70B 0.70; A40 7B 0.73; mean 0.734).
* ``MEMORY_BW_EFFICIENCY = 0.8``: aiconfigurator ``mem_bw_empirical_scaling_factor`` (every system YAML in
  shared/data/gpu_specs/aiconfigurator_systems). Vidur's 1-token GEMMs agree: 0.75-0.86 of peak bandwidth.
* ``HOST_READ_EFFICIENCY = 0.879``: FlexGen's fitted CPU→GPU bandwidth on a GCP T4, ``ctog_bdw = 12.89`` GB/s
  in FlexGen's units (GB = 2^30 bytes, flexgen/utils.py) = 13.84e9 B/s (FMInference/FlexGen
  experimental/cost_model.py, shared/data/flexgen/flexgen_cost_model_t4_constants.csv), over the T4's PCIe Gen3
  x16 datasheet 15.75 GB/s (instances/gpus.csv).
* ``HOST_WRITE_EFFICIENCY = 0.0661``: FlexGen's fitted GPU→CPU bandwidth for KV-cache writes on the same T4,
  ``gtoc_bdw_cache = 0.97`` GiB/s = 1.04e9 B/s, over 15.75 GB/s: KV writes are small strided copies (one block per
  layer and sequence), far below the link's nominal rate. Applied as the same fraction of every GPU's host link
  (only the T4 was measured).
* ``HOST_HIDDEN_WRITE_EFFICIENCY = 0.329``: FlexGen's ``gtoc_bdw_hidden = 4.82`` GiB/s (hidden states, contiguous)
  over 15.75 GB/s, for the queries sent to the CPU in cpu_attention mode.
* ``CPU_ATTENTION_BYTES_PER_S = 12.3e9``: FlexGen's fitted ``cpu_flops = 0.0123 T`` for decode attention on the
  CPU (same file). FlexGen charges ``4·b·ctx·h1`` operations per layer, which for fp16 multi-head attention
  equals the K and V bytes read (2·ctx·h1·2), so the constant is a rate of KV bytes consumed. FlexGen's
  small-batch correction (c1, c2, c3) is not applied. It is the only measured CPU-attention rate available and
  is used for every host.
* ``LINK_EFFICIENCY`` and ``ALLREDUCE_LATENCY_S`` per link type (``gpu_link`` of instances/gpus.csv):
  ``nvlink``: the datasheet per-direction NVLink bandwidth at efficiency 1 and 20 µs (aiconfigurator
  ``p2p_latency`` 10 µs, charged once for each of the two phases of an all-reduce). ``pcie``: efficiency 0.5962
  and 53.62 µs, fitted by ``benchmarks/fit_links.py`` on the 222 L40S TensorRT-LLM TP 2/4/8 TTFT and TPOT rows of
  instances/measurements/nvidia_dli.csv (tensor parallelism over PCIe Gen4, no NVLink): MAPE of those rows 51.7 %
  without any all-reduce cost, 23.8 % with the datasheet link (31.5 GB/s, 20 µs), 7.0 % fitted
  (benchmarks/results/link_fit.json). The same fit on the 812 NVLink rows (H100, H200, A100-80GB) gives
  efficiency 1.09 and 21 µs (MAPE 6.8 % at the datasheet, 6.7 % fitted; an efficiency above 1 is not a physical
  link), so NVLink keeps the datasheet.
* ``KERNEL_LATENCY_S = 3e-6``: aiconfigurator ``mem_empirical_constant_latency`` (3 µs, every system YAML in
  shared/data/gpu_specs/aiconfigurator_systems), the fixed latency aiconfigurator adds to every memory-bound
  operation (``query_mem_op``: bytes / (mem_bw · 0.8) + 3 µs). In a decode step every kernel is memory-bound.
* ``KERNELS_PER_LAYER = 8``: the per-layer operations of aiconfigurator's dense (Llama) generation graph
  (ai-dynamo/aiconfigurator, aic-core ``models``: add_norm_1, qkv_gemm, attention, proj_gemm, add_norm_2,
  ffn1_gemm, act, ffn2_gemm; its all-reduces are charged separately here, by ``AR``). The product, 24 µs per
  layer (0.77 ms for 32 layers, 1.9 ms for 80), is a per-step cost that tensor parallelism does not shrink.
  Its effect on accuracy is in docs/accuracy.md (raw-roofline TPOT and e2e errors fall on every dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.errors import InputError
from solver.performance.memory import ACTIVATION_BYTES, FloatArray, mlp_width
from solver.specs import DTYPE_BYTES, ModelSpec

COMPUTE_EFFICIENCY = 0.73
MEMORY_BW_EFFICIENCY = 0.8
HOST_READ_EFFICIENCY = 12.89 * 2**30 / 1e9 / 15.75
HOST_WRITE_EFFICIENCY = 0.97 * 2**30 / 1e9 / 15.75
HOST_HIDDEN_WRITE_EFFICIENCY = 4.82 * 2**30 / 1e9 / 15.75
CPU_ATTENTION_BYTES_PER_S = 0.0123e12
LINK_TYPES = ("nvlink", "pcie")
LINK_EFFICIENCY = {"nvlink": 1.0, "pcie": 0.5962}
"""All-reduce bus bandwidth / datasheet per-direction link bandwidth, per link type (module docstring)."""
ALLREDUCE_LATENCY_S = {"nvlink": 2e-5, "pcie": 53.62e-6}
"""Fixed time of one all-reduce, seconds, per link type (module docstring)."""
KERNEL_LATENCY_S = 3e-6
KERNELS_PER_LAYER = 8
ELEMENTWISE_PHASES: tuple[str, ...] = ("prefill", "decode")
"""Phases (``"prefill"``, ``"decode"``) that charge the per-layer element-wise traffic ``E`` (ModelCosts
``elementwise_bytes``): aiconfigurator's Llama graph (ai-dynamo/aiconfigurator ``sdk/models/llama.py``, ElementWise
ops ``add_norm_1`` and ``add_norm_2`` reading and writing 2h values each, ``act_gate`` reading 2I/tp and writing
I/tp, fp16), per token per layer ``16·h + 2·(3I or 2I)/tp`` bytes at ``BW_eff``, added to the pass. Both phases (as
shipped: the same kernels run in both). Evaluated in docs/accuracy.md (ablations: without it, and decode only)."""
OFFLOAD_MODES = ("copy", "cpu_attention")


@dataclass(frozen=True)
class ModelCosts:
    """Per-model FLOP and byte counts used by the roofline (scalars)."""

    flops_per_token: float
    head_flops: float
    attn_flops_per_pair: float
    weight_bytes: float
    kv_bytes_per_token: float
    num_layers: int
    hidden_size: int
    q_width: int
    pass_overhead_s: float = 0.0
    """Fixed time of one forward pass: L · KERNELS_PER_LAYER · KERNEL_LATENCY_S (seconds)."""
    elementwise_full_bytes: float = 0.0
    """Element-wise bytes per token over the layers that tensor parallelism does not split (``L · 16 · h``)."""
    elementwise_split_bytes: float = 0.0
    """Element-wise bytes per token over the layers split by tensor parallelism (the MLP activation, ``/ tp``)."""
    num_experts: int = 0
    """Routed experts per MoE layer (0: dense, ``weight_bytes`` is read whole every pass)."""
    experts_per_token: int = 0
    moe_layers: int = 0
    expert_bytes: float = 0.0
    """Bytes of one routed expert of one layer."""
    same_experts: bool = False
    """Every token routes to the same k experts (``ModelSpec.expert_routing``): a pass reads k experts per layer."""

    @classmethod
    def of(cls, model: ModelSpec, dtype: str, kv_dtype: str) -> ModelCosts:
        """Compute the counts of the module docstring for ``model`` in ``dtype`` with a ``kv_dtype`` cache."""
        dense = not model.is_moe
        return cls(
            flops_per_token=2.0 * (model.num_layers * model.layer_params if dense else model.active_layer_params),
            head_flops=2.0 * model.vocab_size * model.hidden_size,
            attn_flops_per_pair=2.0
            * model.num_layers
            * model.num_attention_heads
            * (model.qk_head_dim + model.value_head_dim),
            weight_bytes=model.num_params * DTYPE_BYTES[dtype] if dense else model.weight_bytes(dtype),
            kv_bytes_per_token=model.kv_bytes_per_token(kv_dtype),
            num_layers=model.num_layers,
            hidden_size=model.hidden_size,
            q_width=model.num_attention_heads * model.head_dim,
            pass_overhead_s=model.num_layers * KERNELS_PER_LAYER * KERNEL_LATENCY_S,
            elementwise_full_bytes=model.num_layers * 8.0 * model.hidden_size * ACTIVATION_BYTES,
            elementwise_split_bytes=model.num_layers
            * (3.0 if model.mlp == "gated" else 2.0)
            * mlp_width(model)
            * ACTIVATION_BYTES,
            num_experts=model.num_experts,
            experts_per_token=model.experts_per_token,
            moe_layers=model.num_moe_layers,
            expert_bytes=model.expert_bytes(dtype) if not dense else 0.0,
            same_experts=model.expert_routing == "same_experts",
        )

    def elementwise_s(self, hw: Hardware, tp: FloatArray, tokens: FloatArray, phase: str) -> FloatArray | float:
        """Time of the element-wise traffic of ``tokens`` tokens in ``phase`` (0 unless in ``ELEMENTWISE_PHASES``)."""
        if phase not in ELEMENTWISE_PHASES:
            return 0.0
        per_token = self.elementwise_full_bytes + self.elementwise_split_bytes / tp
        return np.asarray(tokens * per_token / hw.bytes_per_s, dtype=np.float64)

    def weights_read(self, tokens: FloatArray, ep: FloatArray | None = None) -> FloatArray | float:
        """Weight bytes one forward pass over ``tokens`` tokens reads: ``W(T)`` of the module docstring.

        A dense model reads all its weights (the scalar ``weight_bytes``, whatever ``tokens``). With expert
        parallelism (``ep`` > 1) it is ``tp`` times what the busiest GPU reads (``E_T = ep · X_max``).
        """
        if not self.num_experts:
            return self.weight_bytes
        if self.same_experts:
            touched: FloatArray | float = float(self.experts_per_token)
        else:
            touched = expected_experts_touched(self.num_experts, self.experts_per_token, tokens)
        if ep is not None:
            touched = np.where(ep > 1.0, ep * self.busiest_gpu_experts(tokens, ep), touched)
        all_routed = self.moe_layers * self.num_experts * self.expert_bytes
        return self.weight_bytes - all_routed + self.moe_layers * touched * self.expert_bytes

    def busiest_gpu_experts(self, tokens: FloatArray, ep: FloatArray) -> FloatArray:
        """Return the expected routed experts the busiest of ``ep`` GPUs reads per MoE layer (``X_max``)."""
        m = self.num_experts / np.maximum(ep, 1.0)
        if self.same_experts:
            return np.asarray(np.minimum(float(self.experts_per_token), m) + 0.0 * tokens, dtype=np.float64)
        p = expected_experts_touched(self.num_experts, self.experts_per_token, tokens) / self.num_experts
        spread = np.sqrt(2.0 * np.log(np.maximum(ep, 1.0)) * m * p * (1.0 - p))
        return np.asarray(np.minimum(m, m * p + spread), dtype=np.float64)

    def comm_s(self, hw: Hardware, tp: FloatArray, tokens: FloatArray, ep: FloatArray | None = None) -> FloatArray:
        """Return the GPU-to-GPU time of one forward pass over ``tokens`` tokens, seconds.

        2L all-reduces, or with expert parallelism ``2L·AR - L_moe·AR + 2·L_moe·A2A`` (module docstring).
        """
        ar = allreduce_s(tokens * self.hidden_size * ACTIVATION_BYTES, tp, hw.link_bytes_per_s, hw.allreduce_latency_s)
        comm = 2.0 * self.num_layers * ar
        if ep is None or not self.num_experts:
            return np.asarray(comm, dtype=np.float64)
        x = tokens * self.experts_per_token * self.hidden_size * ACTIVATION_BYTES / ep
        a2a = alltoall_s(x, ep, hw.link_bytes_per_s, hw.allreduce_latency_s)
        exchange = (ep > 1.0) & ~np.asarray(hw.on_pcie, dtype=bool)  # PCIe: the all-reduce stays (docstring)
        return np.asarray(comm + self.moe_layers * np.where(exchange, 2.0 * a2a - ar, 0.0), dtype=np.float64)


def expected_experts_touched(num_experts: int, experts_per_token: int, tokens: npt.ArrayLike) -> FloatArray:
    """Return the expected distinct experts of one layer that ``tokens`` tokens route to: ``E·(1 - (1 - k/E)^T)``.

    Each token picks ``k`` of ``E`` experts uniformly at random and independently of the others, so an expert is
    missed by one token with probability ``1 - k/E`` and by all ``T`` with ``(1 - k/E)^T``.

    Parameters
    ----------
    num_experts, experts_per_token
        ``E`` and ``k``.
    tokens
        Tokens in the forward pass (``T``; the batch in a decode step, batch · prompt in prefill).

    Returns
    -------
    numpy.ndarray
        Expected experts touched, in [k, E] for T >= 1.
    """
    e = float(num_experts)
    t = np.asarray(tokens, dtype=np.float64)
    return np.asarray(e * (1.0 - np.power(1.0 - experts_per_token / e, t)), dtype=np.float64)


@dataclass(frozen=True)
class Hardware:
    """Effective per-GPU rates of each configuration (arrays)."""

    flops_per_s: FloatArray
    bytes_per_s: FloatArray
    host_bytes_per_s: FloatArray
    """CPU→GPU (reads of offloaded KV), B/s."""
    link_bytes_per_s: FloatArray
    """All-reduce bus bandwidth, B/s."""
    host_write_bytes_per_s: FloatArray | float = np.inf
    """GPU→CPU KV writes, B/s."""
    host_hidden_bytes_per_s: FloatArray | float = np.inf
    """GPU→CPU hidden-state writes (cpu_attention queries), B/s."""
    allreduce_latency_s: FloatArray | float = 0.0
    """Fixed time of one all-reduce, s."""
    on_pcie: FloatArray | bool = False
    """True where the GPU-to-GPU link is PCIe (expert parallelism has no all-to-all there, module docstring)."""


def hardware(
    tflops: FloatArray,
    memory_bandwidth_gb_per_s: FloatArray,
    host_link_gb_per_s: FloatArray,
    gpu_link_gb_per_s: FloatArray,
    gpu_count: FloatArray,
    pcie: FloatArray | None = None,
) -> Hardware:
    """Apply the efficiencies of the module docstring; a fractional GPU (``gpu_count`` < 1) gets that share.

    Parameters
    ----------
    tflops, memory_bandwidth_gb_per_s, host_link_gb_per_s, gpu_link_gb_per_s
        Datasheet rates of each configuration's GPU (tensor TFLOPS for the weight dtype, GB/s).
    gpu_count
        GPUs of the instance (below 1 for a GPU slice).
    pcie
        True where the GPU-to-GPU link is PCIe (``gpu_link`` of instances/gpus.csv), else NVLink; default NVLink.

    Returns
    -------
    Hardware
        Effective per-GPU rates, FLOP/s and B/s.
    """
    q = np.minimum(np.asarray(gpu_count, dtype=np.float64), 1.0)
    on_pcie = np.zeros_like(q, dtype=bool) if pcie is None else np.asarray(pcie, dtype=bool)
    link_eff = np.where(on_pcie, LINK_EFFICIENCY["pcie"], LINK_EFFICIENCY["nvlink"])
    host = host_link_gb_per_s * 1e9
    return Hardware(
        flops_per_s=tflops * 1e12 * COMPUTE_EFFICIENCY * q,
        bytes_per_s=memory_bandwidth_gb_per_s * 1e9 * MEMORY_BW_EFFICIENCY * q,
        host_bytes_per_s=host * HOST_READ_EFFICIENCY,
        link_bytes_per_s=gpu_link_gb_per_s * 1e9 * link_eff,
        host_write_bytes_per_s=host * HOST_WRITE_EFFICIENCY,
        host_hidden_bytes_per_s=host * HOST_HIDDEN_WRITE_EFFICIENCY,
        allreduce_latency_s=np.where(on_pcie, ALLREDUCE_LATENCY_S["pcie"], ALLREDUCE_LATENCY_S["nvlink"]),
        on_pcie=on_pcie,
    )


def allreduce_s(
    nbytes: FloatArray,
    tp: FloatArray,
    link_bytes_per_s: FloatArray,
    latency_s: FloatArray | float = ALLREDUCE_LATENCY_S["nvlink"],
) -> FloatArray:
    """Ring all-reduce time of ``nbytes`` over ``tp`` GPUs: 2(tp-1)/tp · bytes / link + latency (0 at tp=1).

    Parameters
    ----------
    nbytes
        Bytes reduced.
    tp
        Tensor-parallel degrees.
    link_bytes_per_s
        Effective GPU-to-GPU all-reduce bandwidth, B/s.
    latency_s
        Fixed time of one all-reduce (by link type), s.

    Returns
    -------
    numpy.ndarray
        Seconds.
    """
    t = 2.0 * (tp - 1.0) / tp * nbytes / link_bytes_per_s + latency_s
    return np.where(tp > 1.0, t, 0.0)


def alltoall_s(
    nbytes: FloatArray,
    ep: FloatArray,
    link_bytes_per_s: FloatArray,
    allreduce_latency_s: FloatArray | float = ALLREDUCE_LATENCY_S["nvlink"],
) -> FloatArray:
    """All-to-all time when each of ``ep`` GPUs sends ``nbytes`` spread over all of them (its own share stays).

    ``(ep-1)/ep · nbytes / link + allreduce_latency_s / 2`` (0 at ep = 1): the all-reduce's link bandwidth and
    latency per link type (``LINK_EFFICIENCY``, ``ALLREDUCE_LATENCY_S``), one phase instead of two.

    Parameters
    ----------
    nbytes
        Bytes each GPU sends (its own share included).
    ep
        Expert-parallel degrees.
    link_bytes_per_s
        Effective GPU-to-GPU bandwidth, B/s (:func:`hardware`).
    allreduce_latency_s
        Fixed time of one all-reduce on the link; an all-to-all pays half.

    Returns
    -------
    numpy.ndarray
        Seconds.
    """
    t = (ep - 1.0) / ep * nbytes / link_bytes_per_s + allreduce_latency_s / 2.0
    return np.asarray(np.where(ep > 1.0, t, 0.0), dtype=np.float64)


def prefill_s(
    costs: ModelCosts,
    hw: Hardware,
    *,
    tp: FloatArray,
    batch: FloatArray,
    input_tokens: float | FloatArray,
    offload_fraction: FloatArray,
    ep: FloatArray | None = None,
) -> FloatArray:
    """Prefill time of a static batch (time to first token), seconds; formula ``t_pf`` of the module docstring.

    Parameters
    ----------
    costs
        The model's FLOP and byte counts.
    hw
        Effective rates (:func:`hardware`).
    tp, batch
        Tensor-parallel degree and sequences of each configuration.
    input_tokens
        Prompt tokens per sequence.
    offload_fraction
        Share of the KV cache written to host memory.
    ep
        Expert-parallel degree of each configuration (1 or tp; None: none uses expert parallelism).

    Returns
    -------
    numpy.ndarray
        Seconds.
    """
    s = np.asarray(input_tokens, dtype=np.float64)
    flops = (
        batch * s * costs.flops_per_token
        + batch * costs.head_flops
        + batch * costs.attn_flops_per_pair * s * (s + 1.0) / 2.0
    )
    kv_written = batch * s * costs.kv_bytes_per_token
    mem = costs.weights_read(batch * s, ep) + kv_written
    roof = np.maximum(flops / (tp * hw.flops_per_s), mem / (tp * hw.bytes_per_s))
    comm = costs.comm_s(hw, tp, batch * s, ep)
    offload = offload_fraction * kv_written / (tp * hw.host_write_bytes_per_s)
    elementwise = costs.elementwise_s(hw, tp, batch * s, "prefill")
    return np.asarray(roof + comm + offload + costs.pass_overhead_s + elementwise, dtype=np.float64)


def _step_lines(
    costs: ModelCosts,
    hw: Hardware,
    tp: FloatArray,
    batch: FloatArray,
    f: FloatArray,
    mode: str,
    ep: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Decode step as lines in c: compute leg a1+b1·c, memory leg a2+b2·c, serial part a3+b3·c (seconds)."""
    on_gpu = 1.0 - f if mode == "cpu_attention" else np.ones_like(f)
    a1 = batch * (costs.flops_per_token + costs.head_flops) / (tp * hw.flops_per_s)
    b1 = batch * costs.attn_flops_per_pair * on_gpu / (tp * hw.flops_per_s)
    a2 = costs.weights_read(batch, ep) / (tp * hw.bytes_per_s)
    b2 = batch * costs.kv_bytes_per_token * on_gpu / (tp * hw.bytes_per_s)
    a3 = costs.comm_s(hw, tp, batch, ep)
    a3 = a3 + costs.pass_overhead_s + f * batch * costs.kv_bytes_per_token / (tp * hw.host_write_bytes_per_s)
    a3 = a3 + costs.elementwise_s(hw, tp, batch, "decode")
    if mode == "copy":
        b3 = f * batch * costs.kv_bytes_per_token / (tp * hw.host_bytes_per_s)
    else:
        b3 = f * batch * costs.kv_bytes_per_token / CPU_ATTENTION_BYTES_PER_S
        q_bytes = f * costs.num_layers * batch * costs.q_width * ACTIVATION_BYTES / tp
        a3 = a3 + q_bytes / hw.host_hidden_bytes_per_s + q_bytes / hw.host_bytes_per_s
    return a1, b1, a2, b2, a3, b3


def _mean_max_linear(
    a1: FloatArray, b1: FloatArray, a2: FloatArray, b2: FloatArray, c0: FloatArray, c1: FloatArray
) -> FloatArray:
    """Mean of max(a1+b1·c, a2+b2·c) over c in [c0, c1], exactly (split at the crossing point)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (a2 - a1) / (b1 - b2)
    cross = np.where(np.isfinite(cross), cross, c0)
    cx = np.clip(cross, c0, c1)
    width = c1 - c0
    m_left = (c0 + cx) / 2.0
    m_right = (cx + c1) / 2.0
    left = np.maximum(a1 + b1 * m_left, a2 + b2 * m_left)
    right = np.maximum(a1 + b1 * m_right, a2 + b2 * m_right)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ((cx - c0) * left + (c1 - cx) * right) / width
    at_c0 = np.maximum(a1 + b1 * c0, a2 + b2 * c0)
    return np.where(width > 0, mean, at_c0)


def mean_decode_step_s(
    costs: ModelCosts,
    hw: Hardware,
    *,
    tp: FloatArray,
    batch: FloatArray,
    input_tokens: float | FloatArray,
    output_tokens: float | FloatArray,
    offload_fraction: FloatArray,
    offload_mode: str,
    ep: FloatArray | None = None,
) -> FloatArray:
    """Mean decode-step time over the generated tokens (contexts s+1 … s+n), seconds: the modelled TPOT.

    Parameters
    ----------
    costs
        The model's FLOP and byte counts.
    hw
        Effective rates (:func:`hardware`).
    tp, batch
        Tensor-parallel degree and sequences of each configuration.
    input_tokens, output_tokens
        Prompt and generated tokens per sequence.
    offload_fraction
        Share of the KV cache in host memory.
    offload_mode
        ``copy`` (offloaded KV streamed back each step) or ``cpu_attention`` (attention on the CPU).
    ep
        Expert-parallel degree of each configuration (1 or tp; None: none uses expert parallelism).

    Returns
    -------
    numpy.ndarray
        Seconds per decode step, averaged exactly over the generated tokens.
    """
    _check_mode(offload_mode)
    a1, b1, a2, b2, a3, b3 = _step_lines(costs, hw, tp, batch, offload_fraction, offload_mode, ep)
    s = np.asarray(input_tokens, dtype=np.float64)
    n = np.asarray(output_tokens, dtype=np.float64)
    c0 = s + 1.0 + np.zeros_like(batch)
    c1 = s + n + np.zeros_like(batch)
    roof = _mean_max_linear(a1, b1, a2, b2, c0, c1)
    return np.asarray(roof + a3 + b3 * (c0 + c1) / 2.0, dtype=np.float64)


def _check_mode(mode: str) -> None:
    """Reject an unknown offload mode with one line."""
    if mode not in OFFLOAD_MODES:
        raise InputError("offload_mode", f"unknown offload mode {mode!r}; use 'copy' or 'cpu_attention'")
