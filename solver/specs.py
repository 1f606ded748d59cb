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
class ModelSpec(Frozen):
    """A dense decoder-only transformer's architecture, as in its Hugging Face ``config.json``."""

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
    params_b_published: PosFloat | None = None
    source: str = ""

    @model_validator(mode="after")
    def _check_heads(self) -> Self:
        if self.num_attention_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"num_kv_heads ({self.num_kv_heads}) must divide num_attention_heads ({self.num_attention_heads})"
            )
        return self

    @property
    def layer_params(self) -> int:
        """Parameters of one transformer layer (attention, MLP, norms, biases)."""
        h, nh, nkv, hd, inter = (
            self.hidden_size,
            self.num_attention_heads,
            self.num_kv_heads,
            self.head_dim,
            self.intermediate_size,
        )
        q, kv, o = h * nh * hd, 2 * h * nkv * hd, nh * hd * h
        attn = q + kv + o
        if self.attention_bias is True:
            attn += nh * hd + 2 * nkv * hd + h
        elif self.attention_bias == "qkv":
            attn += nh * hd + 2 * nkv * hd
        mlp = (3 if self.mlp == "gated" else 2) * h * inter
        if self.mlp_bias:
            mlp += inter + h if self.mlp == "standard" else 2 * inter + h
        norms = (1 if self.parallel_attn_mlp else 2) * 2 * h  # weight + bias (upper bound for RMSNorm)
        return attn + mlp + norms

    @property
    def num_params(self) -> int:
        """Total parameters computed from the architecture (embeddings, layers, head, final norm)."""
        emb = self.vocab_size * self.hidden_size + self.learned_pos_embeddings * self.hidden_size
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return emb + head + self.num_layers * self.layer_params + 2 * self.hidden_size

    def kv_bytes_per_token(self, kv_dtype: str | None = None) -> float:
        """KV-cache bytes per token: 2 (K and V) · layers · kv_heads · head_dim · bytes per element."""
        dtype = kv_dtype or self.default_dtype
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


class Workload(Frozen):
    """One workload class: a model, token lengths, and either an arrival rate or a batch job."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(min_length=1)]
    """A shipped model name (``infersave models``) or a path to a Hugging Face ``config.json``."""
    input_tokens: Annotated[int, NotBool, Field(gt=0, le=MAX_TOKENS)]
    output_tokens: Annotated[int, NotBool, Field(gt=0, le=MAX_TOKENS)]
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


class Search(Frozen):
    """The discrete search space the planner enumerates before the MILP."""

    batch_sizes: Annotated[list[BatchSize], Field(min_length=1)] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    tp_degrees: Annotated[list[Annotated[int, NotBool, Field(gt=0, le=64)]], Field(min_length=1)] | None = None
    """Tensor-parallel degrees to consider; default every power of two up to the instance's GPU count."""
    offload_grid: list[Fraction] = []
    """Extra KV offload fractions to enumerate besides the smallest that fits (which is always included)."""
    utilisation_cap: Annotated[float, NotBool, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    """Online replicas are loaded to at most this share of their sustainable request rate."""

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
    """``auto`` (first available in the registry order), ``ortools`` or ``cbc``."""
    time_limit_s: Annotated[float, NotBool, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    relative_gap: Annotated[float, NotBool, Field(ge=0, lt=1, allow_inf_nan=False)] = 1e-6
    threads: Annotated[int, NotBool, Field(gt=0, le=MAX_THREADS)] | None = None
    """Solver threads, at most :data:`MAX_THREADS`."""
    verbose: bool = False
    tie_break: bool = True
    """After a proven optimum, re-solve for the lexicographically first optimal plan (same input, same plan on
    every backend). Costs a second solve: turn it off for very large scenarios."""
