"""A plan's fleet rows as simulated replicas, and the bounds that keep a simulation to a few seconds.

Shared by :mod:`solver.simulation.fleet` (one class on its own rows) and :mod:`solver.simulation.mixed`
(classes sharing pooled rows); the bounds are explained in :mod:`solver.simulation.fleet`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from solver.errors import InputError
from solver.simulation.replica import ReplicaConfig, replica_config
from solver.specs import Scenario, Workload

if TYPE_CHECKING:
    from solver.planning.plan import FleetRow

DEFAULT_DURATION_S = 600.0
"""Seconds of arrivals simulated by default (10 minutes: p99 rests on ~100 requests per 1 req/s)."""
MAX_REQUESTS = 60_000
"""Most requests simulated per online workload: beyond, the horizon is shortened (noted in the result)."""
MAX_REPLICAS = 64
"""Most replicas simulated per online workload: a larger fleet is simulated as a proportional slice of its rows
(each row's replicas times the same share, at least one) under the same share of the arrival rate (noted)."""
MAX_OFFLINE_REQUESTS = 200_000
"""Largest offline job simulated request by request (beyond it: scaled, module docstring)."""
WORKLOAD_SEED_STRIDE = 1_000_003
"""Workload ``k`` draws its arrivals from ``seed + k · stride`` (independent streams, reproducible)."""


def _hardware(scenario: Scenario) -> pd.DataFrame:
    """Instance hardware of the scenario's catalog, one row per instance type."""
    from solver.planning.candidates import offers

    off = offers(scenario)
    cols = ["instance_type", "gpu", "gpu_count", "gpu_memory_mib", "host_memory_gib"]
    return off[cols].drop_duplicates("instance_type").set_index("instance_type")


def workload_replicas(
    scenario: Scenario,
    w: Workload,
    rows: list[FleetRow],
    hardware: pd.DataFrame | None = None,
    scale: float = 1.0,
) -> list[ReplicaConfig]:
    """One :class:`ReplicaConfig` per model copy of the fleet rows ``rows`` of workload ``w`` (times ``scale``)."""
    from solver.data.models import get_model
    from solver.planning.candidates import _profile, batching_mode

    hw_table = hardware if hardware is not None else _hardware(scenario)
    model = get_model(w.model, field="workloads.model")
    profile = _profile(scenario)
    static = batching_mode(w, scenario.engine) == "static"
    out: list[ReplicaConfig] = []
    for row in rows:
        if row.instance_type not in hw_table.index:
            raise InputError("plan", f"instance type {row.instance_type!r} is not in the scenario's catalog")
        h = {str(k): v for k, v in hw_table.loc[row.instance_type].to_dict().items()}
        f = row.offload_fraction
        cfg = replica_config(
            model,
            gpu=str(h["gpu"]),
            gpu_count=float(h["gpu_count"]),
            gpu_memory_mib=float(h["gpu_memory_mib"]),
            host_memory_gib=float(h["host_memory_gib"]),
            tp=row.tp,
            batch_size=row.batch_size,
            input_tokens=w.input_tokens,
            output_tokens=w.output_tokens,
            offload_fraction=None if (f is None or math.isnan(f)) else f,
            dtype=w.dtype,
            kv_dtype=w.kv_dtype,
            engine=scenario.engine,
            offload_mode=scenario.offload_mode,
            profile=profile,
            static=static,
            label=f"{row.instance_type} tp{row.tp} b{row.batch_size}",
            ep=row.ep,
        )
        replicas = max(int(row.replicas), 1) * int(row.count)
        out.extend([cfg] * (replicas if scale >= 1.0 else max(1, round(replicas * scale))))
    return out
