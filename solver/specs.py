"""Validated, immutable specifications: hardware, models, workloads, SLOs and scenarios.

Everything a user gives is validated once, here, at the edge: pydantic v2 models, frozen, ``extra="forbid"``.
Units are in the field names (``memory_gb``, ``usd_per_hour``, ``ttft_ms``). Inside the package these objects
are passed around as they are; nothing writes back onto them.

Size conventions: ``_gb`` is 1e9 bytes (vendor datasheets), ``_gib`` is 2**30 bytes, ``_mib`` 2**20 bytes
(AWS reports GPU memory in MiB). Bandwidths are ``_gb_per_s`` = 1e9 bytes per second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

Dtype = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]
"""Numeric formats of weights and KV cache. int4 covers AWQ/GPTQ-style 4-bit weight quantisation."""

DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
"""Bytes per element of each dtype (int4 packs two values in a byte; group scales are not counted)."""

Market = Literal["on_demand", "spot"]
OffloadMode = Literal["copy", "cpu_attention"]
"""How offloaded KV is used: ``copy`` streams it back to the GPU every step (InferSave's model);
``cpu_attention`` computes attention over it on the CPU and ships only activations (FlexGen's)."""
Objective = Literal["min_cost", "max_throughput"]
Billing = Literal["per_second", "per_hour"]
SpotPrice = Literal["min", "median"]


def _not_bool(value: Any) -> Any:
    """Refuse a boolean where a number is expected (pydantic would read ``true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value}")
    return value


NotBool = BeforeValidator(_not_bool)
"""Put on every numeric field: YAML ``rate_rps: true`` is an error, not 1 request/s (ints still pass as floats)."""

PosFloat = Annotated[float, NotBool, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, NotBool, Field(ge=0, allow_inf_nan=False)]
PosInt = Annotated[int, NotBool, Field(gt=0)]
NonNegInt = Annotated[int, NotBool, Field(ge=0)]
Fraction = Annotated[float, NotBool, Field(ge=0, le=1, allow_inf_nan=False)]
BatchSize = Annotated[int, NotBool, Field(gt=0, le=65_536)]
Percentile = Annotated[float, NotBool, Field(gt=0, lt=100, allow_inf_nan=False)]

MAX_TOKENS = 10_000_000
"""Largest prompt or output length accepted (no model has a longer context)."""
MAX_BATCH = 65_536
"""Largest batch size accepted (engines cap concurrent sequences far lower; vLLM's default is 256)."""
MAX_RATE_RPS = 1e7
"""Largest arrival rate accepted, requests per second (bounds the MILP's instance counts)."""
MAX_REQUESTS = 10**12
MAX_DEADLINE_H = 8_760.0
"""One year; also the largest ``horizon_h`` (beyond it the MILP's cost coefficients lose precision)."""
MAX_THREADS = 64
"""Most solver threads accepted: SCIP (the ortools backend) refuses more ("Must be in range [0,64]" for
``parallel/maxnthreads``); CBC takes more without complaint, but one bound for every backend keeps ``auto`` safe."""


class Frozen(BaseModel):
    """Base of every spec: immutable, unknown keys rejected, no NaN or infinity."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True)


# --------------------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------------------
class GPUSpec(Frozen):
    """One GPU model's datasheet numbers (dense tensor throughput, peak bandwidths).

    Usable memory is *not* here: it comes from the catalog, as the cloud reports it per instance.
    """

    name: str
    aliases: tuple[str, ...] = ()
    memory_gb: PosFloat
    memory_bandwidth_gb_per_s: PosFloat
    fp16_tflops: PosFloat
    fp8_tflops: PosFloat | None = None
    int8_tops: PosFloat | None = None
    int4_tops: PosFloat | None = None
    host_link: str
    host_link_gb_per_s: PosFloat
    gpu_link: Literal["nvlink", "pcie"]
    gpu_link_gb_per_s: PosFloat
    tdp_w: PosFloat | None = None
    notes: str = ""
    sources: str = ""

    def tensor_tflops(self, dtype: str) -> float:
        """Dense tensor TFLOPS available to matmuls with weights in ``dtype``.

        Weight-only int4 (AWQ/GPTQ) and int8 dequantise to fp16 and run fp16 matmuls; fp8 uses the fp8 path
        where the GPU has one and falls back to fp16 (weight-only fp8, as vLLM's Marlin kernels do) otherwise.
        """
        if dtype == "fp8" and self.fp8_tflops is not None:
            return self.fp8_tflops
        return self.fp16_tflops


class InstanceType(Frozen):
    """One cloud instance type's hardware (prices live in the catalog, per region and zone)."""

    name: str
    family: str
    gpu: str
    gpu_count: PosFloat
    """GPUs per instance; fractional for partitioned GPUs (``g6f.xlarge`` has 0.125 of an L4)."""
    gpu_memory_mib: PosFloat
    """Usable memory of one GPU (or GPU slice) as the cloud reports it (A10G: 22,888 MiB)."""
    vcpus: PosFloat
    host_memory_gib: PosFloat
    arch: str = "x86_64"


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
ExpertDtype = Literal["fp16", "bf16", "fp8", "int8", "int4", "mxfp4"]
"""Numeric formats of routed-expert weights when a checkpoint stores them apart from the rest (gpt-oss: MXFP4)."""

EXPERT_DTYPE_BYTES: dict[str, float] = {**DTYPE_BYTES, "mxfp4": 4.25 / 8.0}
"""Bytes per expert weight. MXFP4 (OCP Microscaling Formats spec v1.0): 4-bit E2M1 elements in blocks of 32
sharing one 8-bit E8M0 scale, i.e. (32·4 + 8) / 32 = 4.25 bits per weight."""


class ModelSpec(Frozen):
    """A decoder-only transformer's architecture, as in its Hugging Face ``config.json``.

    Dense models leave the mixture-of-experts fields at their defaults (``num_experts = 0``). A MoE model has
    ``num_experts`` routed experts (each a gated or standard MLP of ``expert_intermediate_size``) in each MoE
    layer, of which ``experts_per_token`` are used per token, plus ``num_shared_experts`` always-on experts of
    the same size. Layer ``i`` (0-based) is a MoE layer when ``i >= first_k_dense_replace`` and
    ``(i + 1) % moe_layer_step == 0``; the other layers have a dense MLP of ``intermediate_size``.
    Multi-head latent attention (DeepSeek MLA) is given by ``kv_lora_rank`` with ``qk_rope_head_dim``,
    ``qk_nope_head_dim`` and ``v_head_dim`` (and ``q_lora_rank`` when the query is low-rank too).
    """

    name: str
    hf_id: str | None = None
    family: str = "custom"
    num_layers: PosInt
    hidden_size: PosInt
    num_attention_heads: PosInt
    num_kv_heads: PosInt
    head_dim: PosInt
    intermediate_size: PosInt
    vocab_size: PosInt
    max_position_embeddings: PosInt | None = None
    mlp: Literal["gated", "standard"] = "gated"
    tie_word_embeddings: bool = False
    attention_bias: bool | Literal["qkv"] = False
    mlp_bias: bool = False
    learned_pos_embeddings: NonNegInt = 0
    parallel_attn_mlp: bool = False
    default_dtype: Dtype = "fp16"
    num_experts: NonNegInt = 0
    """Routed experts per MoE layer (0 = dense model)."""
    experts_per_token: NonNegInt = 0
    num_shared_experts: NonNegInt = 0
    expert_intermediate_size: PosInt | None = None
    first_k_dense_replace: NonNegInt = 0
    moe_layer_step: PosInt = 1
    expert_dtype: ExpertDtype | None = None
    """Format of the routed experts' weights when the checkpoint declares one apart (None = the served dtype)."""
    expert_routing: Literal["uniform", "same_experts"] = "uniform"
    """How a batch's tokens spread over the routed experts: ``uniform`` (independent uniform top-k, the planning
    default) or ``same_experts`` (every token picks the same k, as a router with random benchmark weights does)."""
    q_lora_rank: PosInt | None = None
    kv_lora_rank: PosInt | None = None
    qk_rope_head_dim: PosInt | None = None
    qk_nope_head_dim: PosInt | None = None
    v_head_dim: PosInt | None = None
    params_b_published: PosFloat | None = None
    params_active_b_published: PosFloat | None = None
    published_active_excludes_input_embedding: bool = False
    """The publisher counts active parameters without the input embedding table (a lookup, no matmul)."""
    source: str = ""

    @model_validator(mode="after")
    def _check_heads(self) -> Self:
        if self.num_attention_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"num_kv_heads ({self.num_kv_heads}) must divide num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_experts:
            if not 1 <= self.experts_per_token <= self.num_experts:
                raise ValueError(
                    f"experts_per_token ({self.experts_per_token}) must be between 1 and num_experts "
                    f"({self.num_experts})"
                )
            if self.expert_intermediate_size is None:
                raise ValueError("a mixture-of-experts model needs expert_intermediate_size")
            if self.num_moe_layers == 0:
                raise ValueError("first_k_dense_replace and moe_layer_step leave no mixture-of-experts layer")
        elif self.experts_per_token or self.num_shared_experts or self.expert_dtype:
            raise ValueError("experts_per_token, num_shared_experts and expert_dtype need num_experts > 0")
        mla = (self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim)
        if self.kv_lora_rank is not None and None in mla:
            raise ValueError(
                "multi-head latent attention (kv_lora_rank) needs qk_rope_head_dim, qk_nope_head_dim and v_head_dim"
            )
        if self.kv_lora_rank is None and self.q_lora_rank is not None:
            raise ValueError("q_lora_rank is only modelled with multi-head latent attention (kv_lora_rank)")
        return self

    # ---- structure -----------------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.num_experts > 0

    @property
    def attention_type(self) -> str:
        """``mla`` (latent KV), ``mha`` (a KV head per query head), ``mqa`` (one KV head) or ``gqa``."""
        if self.kv_lora_rank is not None:
            return "mla"
        if self.num_kv_heads == self.num_attention_heads:
            return "mha"
        return "mqa" if self.num_kv_heads == 1 else "gqa"

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (0 for a dense model)."""
        if not self.num_experts:
            return 0
        step = self.moe_layer_step
        return sum(1 for i in range(self.first_k_dense_replace, self.num_layers) if (i + 1) % step == 0)

    @property
    def num_dense_layers(self) -> int:
        """Layers with a dense MLP of ``intermediate_size``."""
        return self.num_layers - self.num_moe_layers

    @property
    def qk_head_dim(self) -> int:
        """Width of one head's query/key (MLA: nope + rope parts)."""
        if self.kv_lora_rank is not None:
            return int(self.qk_nope_head_dim or 0) + int(self.qk_rope_head_dim or 0)
        return self.head_dim

    @property
    def value_head_dim(self) -> int:
        """Width of one head's value."""
        return int(self.v_head_dim) if self.kv_lora_rank is not None and self.v_head_dim else self.head_dim

    @property
    def attention_params(self) -> int:
        """Parameters of one layer's attention block (projections and biases; MLA's low-rank factors and norms)."""
        h, nh, nkv, hd = self.hidden_size, self.num_attention_heads, self.num_kv_heads, self.head_dim
        if self.kv_lora_rank is not None:
            qk, rope, v, r = self.qk_head_dim, int(self.qk_rope_head_dim or 0), self.value_head_dim, self.kv_lora_rank
            nope = qk - rope
            q = (
                h * nh * qk
                if self.q_lora_rank is None
                else h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * nh * qk
            )
            kv = h * (r + rope) + r + r * nh * (nope + v)
            return q + kv + nh * v * h
        q, kv, o = h * nh * hd, 2 * h * nkv * hd, nh * hd * h
        attn = q + kv + o
        if self.attention_bias is True:
            attn += nh * hd + 2 * nkv * hd + h
        elif self.attention_bias == "qkv":
            attn += nh * hd + 2 * nkv * hd
        return attn

    def _mlp_params(self, inter: int) -> int:
        h = self.hidden_size
        mlp = (3 if self.mlp == "gated" else 2) * h * inter
        if self.mlp_bias:
            mlp += inter + h if self.mlp == "standard" else 2 * inter + h
        return mlp

    @property
    def _norm_params(self) -> int:
        return (1 if self.parallel_attn_mlp else 2) * 2 * self.hidden_size  # weight + bias (upper bound for RMSNorm)

    @property
    def layer_params(self) -> int:
        """Parameters of one dense transformer layer (attention, MLP of ``intermediate_size``, norms, biases)."""
        return self.attention_params + self._mlp_params(self.intermediate_size) + self._norm_params

    @property
    def expert_params(self) -> int:
        """Parameters of one expert (routed or shared) in one layer (0 for a dense model)."""
        return self._mlp_params(self.expert_intermediate_size) if self.expert_intermediate_size else 0

    @property
    def router_params(self) -> int:
        """Router (gate) parameters of one MoE layer: hidden · experts (+ a bias per expert with MLP biases)."""
        return self.hidden_size * self.num_experts + (self.num_experts if self.mlp_bias else 0)

    def _moe_layer_params(self, experts: int) -> int:
        """One MoE layer with ``experts`` routed experts counted, plus shared experts, router, attention, norms."""
        per = self.expert_params
        return (
            self.attention_params + self.router_params + (experts + self.num_shared_experts) * per + self._norm_params
        )

    @property
    def _embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size + self.learned_pos_embeddings * self.hidden_size

    @property
    def _head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def routed_expert_params(self) -> int:
        """Parameters of every routed expert of every MoE layer (0 for a dense model)."""
        return self.num_moe_layers * self.num_experts * self.expert_params

    @property
    def num_params(self) -> int:
        """Total parameters computed from the architecture (embeddings, layers with all experts, head, final norm)."""
        layers = self.num_dense_layers * self.layer_params + self.num_moe_layers * self._moe_layer_params(
            self.num_experts
        )
        return self._embedding_params + self._head_params + layers + 2 * self.hidden_size

    @property
    def active_layer_params(self) -> int:
        """Layer parameters one token goes through: dense layers, and in MoE layers the routed top-k plus shared."""
        dense = self.num_dense_layers * self.layer_params
        return dense + self.num_moe_layers * self._moe_layer_params(self.experts_per_token)

    @property
    def active_params(self) -> int:
        """Parameters used per token: all but the routed experts a token skips (embeddings included)."""
        skipped = self.num_moe_layers * (self.num_experts - self.experts_per_token) * self.expert_params
        return self.num_params - skipped

    def weight_bytes(self, dtype: str) -> float:
        """Bytes of all weights served in ``dtype``, routed experts in ``expert_dtype`` when the card declares one."""
        routed = self.routed_expert_params
        expert_b = EXPERT_DTYPE_BYTES[self.expert_dtype or dtype]
        return (self.num_params - routed) * DTYPE_BYTES[dtype] + routed * expert_b

    def expert_bytes(self, dtype: str) -> float:
        """Bytes of one routed expert of one layer (at ``expert_dtype`` when declared, else ``dtype``)."""
        return self.expert_params * EXPERT_DTYPE_BYTES[self.expert_dtype or dtype]

    def kv_bytes_per_token(self, kv_dtype: str | None = None) -> float:
        """KV-cache bytes per token of the whole replica.

        MHA, GQA, MQA: 2 (K and V) · layers · kv_heads · head_dim · bytes per element.
        MLA: layers · (kv_lora_rank + qk_rope_head_dim) · bytes (the latent and the shared rope key are cached).
        """
        dtype = kv_dtype or self.default_dtype
        if self.kv_lora_rank is not None:
            return float(self.num_layers * (self.kv_lora_rank + int(self.qk_rope_head_dim or 0))) * DTYPE_BYTES[dtype]
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[dtype]


# --------------------------------------------------------------------------------------------------
# Workloads and objectives
# --------------------------------------------------------------------------------------------------
class SLO(Frozen):
    """Service-level objectives of one workload; every field is optional (``None`` = not constrained).

    ``tps`` is InferSave's tokens-per-second target of one replica's batch:
    batch · (input + output tokens) / end-to-end time of the batch.
    """

    ttft_ms: PosFloat | None = None
    tpot_ms: PosFloat | None = None
    e2e_s: PosFloat | None = None
    tps: PosFloat | None = None
    ttft_percentile: Percentile | None = None
    """Percentile (e.g. 90, 99) of the TTFT that must stay within ``ttft_ms``; None = the mean, as before."""
    tpot_percentile: Percentile | None = None
    """Percentile of the TPOT that must stay within ``tpot_ms``; None = the mean."""
    e2e_percentile: Percentile | None = None
    """Percentile of the end-to-end time that must stay within ``e2e_s``; None = the mean."""

    @model_validator(mode="after")
    def _percentile_has_target(self) -> Self:
        for name in ("ttft", "tpot", "e2e"):
            limit = "e2e_s" if name == "e2e" else f"{name}_ms"
            if getattr(self, f"{name}_percentile") is not None and getattr(self, limit) is None:
                raise ValueError(f"{name}_percentile needs {limit}")
        return self


class Arrival(Frozen):
    """How an online workload's requests arrive: Poisson (default) or bursty gamma renewals."""

    process: Literal["poisson", "gamma"] = "poisson"
    cv: Annotated[float, NotBool, Field(gt=0, le=100, allow_inf_nan=False)] = 1.0
    """Coefficient of variation of the inter-arrival times (``gamma``; 1 = Poisson, above 1 = bursty)."""

    @model_validator(mode="after")
    def _poisson_cv(self) -> Self:
        if self.process == "poisson" and self.cv != 1.0:
            raise ValueError("cv applies to process: gamma (Poisson has cv 1)")
        return self


TokenCount = Annotated[int, NotBool, Field(gt=0, le=MAX_TOKENS)]


class SizeBucket(Frozen):
    """One bucket of a workload's request-size distribution: token lengths and the share of requests.

    A length is one value or an inclusive range ``[lo, hi]``; the planner sizes a range by its upper end
    ``hi`` (every request of the bucket is at most that long: conservative for memory and latency).
    """

    input_tokens: TokenCount | tuple[TokenCount, TokenCount]
    output_tokens: TokenCount | tuple[TokenCount, TokenCount]
    share: Annotated[float, NotBool, Field(gt=0, le=1, allow_inf_nan=False)]

    @field_validator("input_tokens", "output_tokens")
    @classmethod
    def _ordered(cls, v: int | tuple[int, int]) -> int | tuple[int, int]:
        if isinstance(v, tuple) and v[0] > v[1]:
            raise ValueError(f"range [{v[0]}, {v[1]}] has lo > hi")
        return v

    @property
    def sized_input(self) -> int:
        """Prompt length the planner sizes this bucket by (a range's upper end)."""
        return self.input_tokens[1] if isinstance(self.input_tokens, tuple) else self.input_tokens

    @property
    def sized_output(self) -> int:
        """Output length the planner sizes this bucket by (a range's upper end)."""
        return self.output_tokens[1] if isinstance(self.output_tokens, tuple) else self.output_tokens


class BucketEdges(Frozen):
    """Bucket edges for a trace (``workloads.*.trace``): a request of length ``t`` falls in ``(e_i, e_{i+1}]``."""

    input_tokens: Annotated[list[TokenCount], Field(min_length=1)] | None = None
    output_tokens: Annotated[list[TokenCount], Field(min_length=1)] | None = None
    """Default (``None``): logarithmic edges, powers of two from 1 up to the longest request of the trace."""

    @field_validator("input_tokens", "output_tokens")
    @classmethod
    def _sorted_unique(cls, v: list[int] | None) -> list[int] | None:
        return None if v is None else sorted(set(v))


class Workload(Frozen):
    """One workload class: a model, token lengths, and either an arrival rate or a batch job.

    Token lengths are one pair (``input_tokens``, ``output_tokens``), or a distribution: ``sizes`` (a histogram
    of buckets with shares that add up to 1) or ``trace`` (a CSV with ``input_tokens, output_tokens[,
    arrival_s]`` that :mod:`solver.data.traffic` buckets, logarithmic edges unless ``bucket_edges`` says
    otherwise). With a distribution, ``input_tokens``/``output_tokens`` may be omitted and default to the
    share-weighted mean of the buckets' sized lengths (for display only: the planner plans every bucket).
    """

    name: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(min_length=1)]
    """A shipped model name (``infersave models``) or a path to a Hugging Face ``config.json``."""
    input_tokens: TokenCount
    output_tokens: TokenCount
    rate_rps: Annotated[float, NotBool, Field(gt=0, le=MAX_RATE_RPS, allow_inf_nan=False)] | None = None
    """Online class: mean arrival rate in requests per second."""
    requests: Annotated[int, NotBool, Field(gt=0, le=MAX_REQUESTS)] | None = None
    """Offline class: number of requests to finish by ``deadline_h``."""
    deadline_h: Annotated[float, NotBool, Field(gt=0, le=MAX_DEADLINE_H, allow_inf_nan=False)] | None = None
    slo: SLO = SLO()
    arrival: Arrival = Arrival()
    """Arrival process of an online workload (used by the simulator and percentile SLOs)."""
    dtype: Dtype | None = None
    """Weight dtype; default: the model's own."""
    kv_dtype: Dtype | None = None
    """KV-cache dtype; default: the weight dtype (int4/int8 weights keep an fp16 cache)."""
    batch_sizes: Annotated[list[BatchSize], Field(min_length=1)] | None = None
    """Override of ``search.batch_sizes`` for this workload."""
    sizes: Annotated[list[SizeBucket], Field(min_length=1, max_length=1000)] | None = None
    """Request-size histogram: each bucket becomes one request class with ``share`` of the rate or requests."""
    trace: str | None = None
    """A CSV of requests (``input_tokens, output_tokens[, arrival_s]``), bucketed into ``sizes`` when read."""
    bucket_edges: BucketEdges | None = None
    """Edges for bucketing ``trace`` (default logarithmic)."""
    dedicated: bool = False
    """Never share replicas with another workload (its own size buckets still share with each other)."""

    @model_validator(mode="before")
    @classmethod
    def _distribution(cls, data: Any) -> Any:
        """Read ``trace`` into ``sizes`` and default the token lengths to the distribution's mean."""
        if not isinstance(data, dict):
            return data
        if data.get("trace") is not None and data.get("sizes") is not None:
            raise ValueError("give either sizes or trace, not both")
        if data.get("bucket_edges") is not None and data.get("trace") is None:
            raise ValueError("bucket_edges applies to a trace; give trace too")
        out = dict(data)
        if isinstance(out.get("trace"), str):
            from solver.data.traffic import bucket_trace

            edges = out.get("bucket_edges") or {}
            if isinstance(edges, BucketEdges):
                edges = edges.model_dump()
            out["sizes"] = bucket_trace(out["trace"], edges.get("input_tokens"), edges.get("output_tokens"))
        sizes = out.get("sizes")
        if isinstance(sizes, list) and sizes and ("input_tokens" not in out or "output_tokens" not in out):
            buckets = [SizeBucket.model_validate(b) if not isinstance(b, SizeBucket) else b for b in sizes]
            total = sum(b.share for b in buckets)
            out.setdefault("input_tokens", max(1, round(sum(b.share * b.sized_input for b in buckets) / total)))
            out.setdefault("output_tokens", max(1, round(sum(b.share * b.sized_output for b in buckets) / total)))
        return out

    @field_validator("sizes")
    @classmethod
    def _shares_add_up(cls, v: list[SizeBucket] | None) -> list[SizeBucket] | None:
        if v is not None and abs(sum(b.share for b in v) - 1.0) > 1e-6:
            raise ValueError(f"bucket shares add up to {sum(b.share for b in v):.6g}, not 1")
        return v

    max_instance_types: PosInt | None = None
    """Spread this workload over at most this many instance types (row (27) of ``formulations/README.md``)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        online = self.rate_rps is not None
        offline = self.requests is not None or self.deadline_h is not None
        if online and offline:
            raise ValueError("give either rate_rps (online) or requests and deadline_h (offline), not both")
        if not online and not offline:
            raise ValueError("give rate_rps (online) or requests and deadline_h (offline)")
        if offline and (self.requests is None or self.deadline_h is None):
            missing = "deadline_h" if self.deadline_h is None else "requests"
            raise ValueError(f"an offline workload needs both requests and deadline_h; {missing} is missing")
        return self

    @property
    def kind(self) -> Literal["online", "offline"]:
        """``online`` when the workload has an arrival rate, ``offline`` for a batch job."""
        return "online" if self.rate_rps is not None else "offline"


class Limits(Frozen):
    """Budget, price cap and quotas. Quota dictionaries map a name to a maximum instance count."""

    budget_usd_per_hour: PosFloat | None = None
    """Cap on the whole fleet's hourly cost (online classes plus offline classes while they run)."""
    budget_usd: PosFloat | None = None
    """Cap on the total cost of the offline jobs."""
    max_price_usd_per_hour: PosFloat | None = None
    """InferSave's P_max: instances dearer than this per hour are not considered."""
    max_instances: dict[str, NonNegInt] = {}
    """Per instance type (``p5.48xlarge: 2``)."""
    max_instances_per_family: dict[str, NonNegInt] = {}
    """Per family, the part of the type name before the dot (``g5: 10``)."""
    max_instances_per_region: dict[str, NonNegInt] = {}
    max_total_instances: NonNegInt | None = None
    min_instances: dict[str, NonNegInt] = {}
    """At least this many instances of a type (for reserved or already-running capacity)."""
    max_spot_share: Fraction | None = None
    """Per workload, at most this share of its capacity on spot instances (row (23))."""
    min_on_demand_share: Fraction | None = None
    """Per workload, on-demand capacity alone carries at least this share of its demand, so it survives the
    reclaim of every spot instance (row (24))."""
    max_spot_instances: dict[str, NonNegInt] = {}
    """Per instance type, at most this many spot instances (row (25))."""
    max_spot_instances_per_region: dict[str, NonNegInt] = {}
    """Per region, at most this many spot instances (row (26))."""


class Search(Frozen):
    """The discrete search space the planner enumerates before the MILP."""

    batch_sizes: Annotated[list[BatchSize], Field(min_length=1)] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    tp_degrees: Annotated[list[Annotated[int, NotBool, Field(gt=0, le=64)]], Field(min_length=1)] | None = None
    """Tensor-parallel degrees to consider; default every power of two up to the instance's GPU count."""
    offload_grid: list[Fraction] = []
    """Extra KV offload fractions to enumerate besides the smallest that fits (which is always included)."""
    utilisation_cap: Annotated[float, NotBool, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    """Online replicas are loaded to at most this share of their sustainable request rate."""
    sharing: bool = True
    """Let request classes of one model (size buckets, and workloads not ``dedicated``) share replicas of one
    configuration (``formulations/README.md``, "Shared replicas"); ``false``: every class rents its own."""
    slo_confidence: Annotated[float, NotBool, Field(ge=0.5, le=0.99, allow_inf_nan=False)] | None = None
    """Meet each SLO at this quantile of the model's cross-validated error (solver/performance/uncertainty.py);
    default: at the point prediction."""

    @field_validator("batch_sizes", "tp_degrees", "offload_grid")
    @classmethod
    def _sorted_unique(cls, v: list | None) -> list | None:
        return None if v is None else sorted(set(v))


class Scenario(Frozen):
    """A whole planning problem, as read from a scenario YAML file."""

    catalog: str = "aws"
    """A shipped catalog name (``aws``) or a path to a CSV in the SkyPilot catalog schema."""
    regions: list[str] | None = None
    markets: Annotated[list[Market], Field(min_length=1)] = ["on_demand"]
    instances: list[str] | None = None
    engine: str = "vllm"
    """Serving engine whose calibration profile applies: vllm, tgi, trtllm, flexgen or generic."""
    profile: str | None = None
    """Path to a calibration profile YAML written by ``infersave calibrate``; overrides the shipped one."""
    offload_mode: OffloadMode = "copy"
    spot_price: SpotPrice = "median"
    """How one spot price per (instance, region) is taken from the per-zone prices."""
    objective: Objective = "min_cost"
    billing: Billing = "per_second"
    horizon_h: Annotated[float, NotBool, Field(gt=0, le=MAX_DEADLINE_H, allow_inf_nan=False)] | None = None
    """Hours the online fleet is costed for in a mixed objective (at most a year); default max offline deadline,
    else 1."""
    workloads: Annotated[list[Workload], Field(min_length=1)]
    limits: Limits = Limits()
    search: Search = Search()
    gpus: list[GPUSpec] = []
    """The user's GPU specs (the shipped table's columns), added to or overriding the shipped ones; in a file, a
    list of mappings or the path of a CSV like ``instances/gpus.csv``."""

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for i, w in enumerate(self.workloads):
            if w.name in seen:
                raise ValueError(f"workloads.{i}.name: duplicate workload name {w.name!r}")
            seen.add(w.name)
        return self

    @property
    def effective_horizon_h(self) -> float:
        """Hours over which online $/h is weighed against offline $ in ``min_cost``."""
        if self.horizon_h is not None:
            return self.horizon_h
        deadlines = [w.deadline_h for w in self.workloads if w.deadline_h is not None]
        return max(deadlines) if deadlines else 1.0


BackendName = str


class SolveOptions(Frozen):
    """Solver options, mapped one to one to CLI flags of ``infersave plan``."""

    backend: BackendName = "auto"
    """``auto`` (the first available in :data:`solver.backends.AUTO_ORDER`), ``ortools``, ``cbc`` or ``highs``."""
    time_limit_s: Annotated[float, NotBool, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    relative_gap: Annotated[float, NotBool, Field(ge=0, lt=1, allow_inf_nan=False)] = 1e-6
    threads: Annotated[int, NotBool, Field(gt=0, le=MAX_THREADS)] | None = None
    """Solver threads, at most :data:`MAX_THREADS`."""
    verbose: bool = False
    tie_break: bool = True
    """After a proven optimum, re-solve for the lexicographically first optimal plan (same input, same plan on
    every backend). Costs a second solve: turn it off for very large scenarios."""
