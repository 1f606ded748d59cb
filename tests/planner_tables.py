"""Hand-made candidate tables for planner tests (every column the formulation reads, with known values)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from solver.data.scenario import scenario_from_dict

DEFAULTS: dict[str, Any] = {
    "workload": "w",
    "kind": "online",
    "instance_type": "a.x",
    "family": "a",
    "gpu": "L4",
    "gpu_count": 1.0,
    "region": "r1",
    "market": "on_demand",
    "usd_per_hour": 1.0,
    "tp": 1,
    "replicas": 1,
    "batch_size": 8,
    "offload_fraction": 0.0,
    "total_gpu_gib": 10.0,
    "available_gpu_gib": 20.0,
    "offloaded_kv_gib": 0.0,
    "host_available_gib": 100.0,
    "ttft_ms": 100.0,
    "tpot_ms": 10.0,
    "e2e_s": 4.0,
    "tps": 1000.0,
    "rate_rps": 2.0,
}


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    """A candidate table; each row overrides :data:`DEFAULTS`."""
    return pd.DataFrame([{**DEFAULTS, **r} for r in rows])


def scenario(workloads: list[dict[str, Any]] | None = None, **extra: Any):
    """A scenario with the given workloads (default: one online workload ``w`` at 10 req/s)."""
    wls = workloads or [{"name": "w", "rate_rps": 10}]
    full = []
    for w in wls:
        full.append({"model": "llama-3.1-8b", "input_tokens": 100, "output_tokens": 100, **w})
    return scenario_from_dict({"workloads": full, **extra})
