"""What every export target shares: one :class:`Deployment` per fleet row, file names, safe writing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from solver.errors import InputError
from solver.performance.memory import engine_memory
from solver.planning.plan import Plan
from solver.specs import Scenario

SERVE_PORT = 8000
"""Port of vLLM's OpenAI-compatible server (``vllm serve`` default)."""
VLLM_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
"""Our dtype names -> vLLM ``--dtype`` values; quantised weights keep fp16 activations."""


@dataclass(frozen=True)
class Deployment:
    """One fleet row as a deployment: where it runs, how many, and the vLLM server's arguments.

    ``instances`` is the row's instance count (SkyServe replicas, Kubernetes pods: one per instance);
    ``replicas_per_instance`` vLLM engines share each instance through ``--data-parallel-size``.
    """

    name: str
    workload: str
    kind: str
    instance_type: str
    gpu: str
    gpus_per_instance: int
    market: str
    region: str
    instances: int
    replicas_per_instance: int
    tp: int
    batch_size: int
    max_model_len: int
    model: str
    model_is_path: bool
    dtype: str
    quantization: str | None
    kv_cache_dtype: str | None
    gpu_memory_utilization: float
    max_num_batched_tokens: int | None
    offload_fraction: float
    instance_hours: float
    notes: tuple[str, ...]
    cloud: str = ""
    ep: int = 1
    """Expert parallelism of the row (``--enable-expert-parallel`` when above 1: whole experts over the TP GPUs)."""

    def vllm_args(self) -> list[str]:
        """Return the ``vllm serve`` arguments after the model, as the plan's prediction assumed them."""
        args = [
            *("--tensor-parallel-size", str(self.tp)),
            *("--max-num-seqs", str(self.batch_size)),
            *("--max-model-len", str(self.max_model_len)),
            *("--dtype", self.dtype),
            *("--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"),
            *("--port", str(SERVE_PORT)),
        ]
        if self.ep > 1:
            args += ["--enable-expert-parallel"]
        if self.replicas_per_instance > 1:
            args += ["--data-parallel-size", str(self.replicas_per_instance)]
        if self.max_num_batched_tokens is not None:
            args += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
        if self.quantization:
            args += ["--quantization", self.quantization]
        if self.kv_cache_dtype:
            args += ["--kv-cache-dtype", self.kv_cache_dtype]
        return args


def slug(text: str, limit: int = 63) -> str:
    """Return ``text`` as a DNS-1123 label (lowercase letters, digits, ``-``), as SkyServe and Kubernetes need."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:limit].rstrip("-") or "row") if s else "row"


def deployment_rows(plan: Plan, scenario: Scenario, field: str = "plan") -> list[Deployment]:
    """Return one :class:`Deployment` per fleet row of ``plan``, reading model and lengths from ``scenario``.

    Raises
    ------
    InputError
        The plan is empty, or names a workload or instance type the scenario does not have.
    """
    from solver.data.catalog import load_catalog
    from solver.data.models import get_model

    if not plan.fleet:
        raise InputError(field, "the plan has no fleet rows to export")
    workloads = {w.name: w for w in scenario.workloads}
    hardware = load_catalog(scenario.catalog).instance_types()
    mem = engine_memory("vllm")
    out: list[Deployment] = []
    used: set[str] = set()
    for i, row in enumerate(plan.fleet):
        w = workloads.get(row.workload)
        if w is None:
            raise InputError(f"{field}: fleet.{i}.workload", f"{row.workload!r} is not a workload of the scenario")
        hw = hardware.get(row.instance_type)
        if hw is None:
            raise InputError(
                f"{field}: fleet.{i}.instance_type", f"{row.instance_type!r} is not in the scenario's catalog"
            )
        model = get_model(w.model, field=f"workloads.{list(workloads).index(w.name)}.model")
        dtype = w.dtype or model.default_dtype
        notes = []
        quantization = None
        if dtype in VLLM_DTYPES:
            vdtype = VLLM_DTYPES[dtype]
        else:
            vdtype = "float16"
            if dtype == "fp8":
                quantization = "fp8"
            else:
                notes.append(f"planned with {dtype} weights: serve a {dtype}-quantised checkpoint (AWQ/GPTQ)")
        kv = w.kv_dtype
        kv_cache_dtype = "fp8" if kv == "fp8" else None
        if scenario.engine != "vllm":
            notes.append(f"planned for engine {scenario.engine}; this file runs vLLM with the same configuration")
        if row.offload_fraction > 0:
            notes.append(
                f"planned with {row.offload_fraction:.1%} of the KV cache offloaded to host memory "
                f"({scenario.offload_mode}); vLLM has no flag for that fraction: use a KV offloading connector"
            )
        if row.kind == "offline":
            hours = row.instance_hours / row.count if row.count else float("nan")
            notes.append(
                f"offline job: {row.instance_hours:.2f} instance-hours in all, about {hours:.2f} h per instance; "
                "scale to zero when its requests are done"
            )
        name = slug(f"{row.workload}-{row.instance_type}-{row.market}-{row.region}")
        base, k = name, 2
        while name in used:
            name = slug(f"{base[:58]}-{k}")
            k += 1
        used.add(name)
        model_is_path = model.hf_id is None
        out.append(
            Deployment(
                name=name,
                workload=row.workload,
                kind=row.kind,
                instance_type=row.instance_type,
                gpu=row.gpu or hw.gpu,
                gpus_per_instance=int(hw.gpu_count),
                market=row.market,
                region=row.region,
                instances=row.count,
                replicas_per_instance=row.replicas,
                tp=row.tp,
                ep=row.ep,
                batch_size=row.batch_size,
                max_model_len=w.input_tokens + w.output_tokens,
                model=model.hf_id if model.hf_id else str(Path(w.model).expanduser().resolve().parent),
                model_is_path=model_is_path,
                dtype=vdtype,
                quantization=quantization,
                kv_cache_dtype=kv_cache_dtype,
                gpu_memory_utilization=mem.utilisation,
                max_num_batched_tokens=mem.max_prefill_tokens,
                offload_fraction=row.offload_fraction,
                instance_hours=row.instance_hours,
                notes=tuple(notes),
                cloud="aws" if scenario.catalog == "aws" else "",
            )
        )
    return out
