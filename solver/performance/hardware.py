"""The hardware a prediction runs on: an AWS instance type, or a bare machine of one GPU type.

Hardware records are what :func:`solver.performance.model.predict` turns into a one-row
:func:`~solver.performance.model.predict_frame` input: ``instance_type``, ``gpu``, ``gpu_count``,
``gpu_memory_mib`` (usable per GPU) and ``host_memory_gib``. Usable GPU memory is the AWS catalog's where it lists
the GPU (hardware is region-independent), else the datasheet memory; the measurement grid
(:mod:`solver.performance.measurements`) uses the same value.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from solver.data.catalog import load_catalog
from solver.data.gpus import get_gpu
from solver.errors import InputError


@functools.cache
def _aws_offers(gpu: str) -> pd.DataFrame:
    """AWS catalog rows of the whole-GPU instances with ``gpu`` (canonical name); do not modify the result."""
    zones = load_catalog("aws").zones
    return zones[(zones["gpu"] == gpu) & (zones["gpu_count"] >= 1)]


def usable_gpu_mib(gpu: str) -> float:
    """Return the usable memory of one ``gpu`` (canonical name), MiB.

    Parameters
    ----------
    gpu
        Canonical GPU name.

    Returns
    -------
    float
        The smallest usable MiB the AWS catalog reports for the GPU, else its datasheet GB in MiB.
    """
    rows = _aws_offers(gpu)
    if not rows.empty:
        return float(rows["gpu_memory_mib"].min())
    return get_gpu(gpu).memory_gb * 1e9 / 2**20


def bare_instance(gpu: str, gpus: int = 1, host_memory_gib: float | None = None) -> tuple[dict[str, Any], list[str]]:
    """Hardware of a bare instance with ``gpus`` of ``gpu``; returns (hardware record, assumptions).

    Usable GPU memory and host memory come from the AWS catalog's instances with this GPU when it has any
    (the usable MiB AWS reports; the smallest host GiB per GPU of those instances, times ``gpus``); otherwise
    the datasheet memory and ``host_memory_gib`` must be given.

    Parameters
    ----------
    gpu
        GPU name or alias.
    gpus
        GPUs of the machine.
    host_memory_gib
        Host memory; default from the AWS catalog (required for a GPU it does not list).

    Returns
    -------
    tuple
        The hardware record (module docstring) and the assumptions made, in words.
    """
    spec = get_gpu(gpu, field="gpu")
    if not isinstance(gpus, int) or gpus < 1:
        raise InputError("gpus", f"must be a positive integer, got {gpus!r}")
    notes: list[str] = []
    rows = _aws_offers(spec.name)
    mem_mib = usable_gpu_mib(spec.name)
    if not rows.empty:
        notes.append(f"usable GPU memory {mem_mib:,.0f} MiB as the AWS catalog reports for {spec.name}")
    else:
        notes.append(f"usable GPU memory = datasheet {spec.memory_gb:g} GB ({spec.name} is not in the AWS catalog)")
    if host_memory_gib is None:
        if rows.empty:
            raise InputError("host_memory_gib", f"{spec.name} is not in the AWS catalog; give the host memory")
        per_gpu = float((rows["host_memory_gib"] / rows["gpu_count"]).min())
        host_memory_gib = per_gpu * gpus
        notes.append(
            f"host memory {host_memory_gib:g} GiB = {gpus} x {per_gpu:g} GiB, the smallest host memory per "
            f"{spec.name} GPU of any AWS instance type (give --host-memory-gib to override)"
        )
    elif not host_memory_gib > 0:
        raise InputError("host_memory_gib", "must be > 0")
    record = {
        "instance_type": f"{gpus}x{spec.name}",
        "gpu": spec.name,
        "gpu_count": float(gpus),
        "gpu_memory_mib": mem_mib,
        "host_memory_gib": float(host_memory_gib),
    }
    return record, notes


def instance_hardware(instance: str, catalog: str = "aws") -> dict[str, Any]:
    """Hardware record of an instance type of ``catalog`` (hardware is region-independent).

    Parameters
    ----------
    instance
        Instance type, e.g. ``p4d.24xlarge``.
    catalog
        Shipped catalog name or a SkyPilot-schema CSV path (default the AWS catalog).

    Returns
    -------
    dict
        The hardware record (module docstring).
    """
    cat = load_catalog(catalog, field="catalog").filter(instances=[instance])
    row = cat.zones.iloc[0]
    return {
        "instance_type": str(row["instance_type"]),
        "gpu": str(row["gpu"]),
        "gpu_count": float(row["gpu_count"]),
        "gpu_memory_mib": float(row["gpu_memory_mib"]),
        "host_memory_gib": float(row["host_memory_gib"]),
    }


DATASHEET_FIGURES = (
    "memory_gb",
    "memory_bandwidth_gb_per_s",
    "fp16_tflops",
    "fp8_tflops",
    "int8_tops",
    "int4_tops",
    "host_link_gb_per_s",
    "gpu_link_gb_per_s",
)
"""The datasheet figures of instances/gpus.csv a GPU is compared on (higher is better; missing counts as 0)."""
LINK_RANK = {"pcie": 0, "nvlink": 1}


def dominates(a: str, b: str) -> bool:
    """Return True when GPU ``a`` is at least as good as ``b`` on every datasheet figure and link type (a != b).

    Parameters
    ----------
    a, b
        GPU names (canonical or alias).

    Returns
    -------
    bool
        ``a`` is no worse than ``b`` on each of :data:`DATASHEET_FIGURES` and its GPU-to-GPU link type is no worse
        (NVLink over PCIe). The calibration keeps such a pair's prediction ordered (``tests/test_invariants.py``).
    """
    ga, gb = get_gpu(a), get_gpu(b)
    if ga.name == gb.name:
        return False
    for fig in DATASHEET_FIGURES:
        if (getattr(ga, fig) or 0.0) < (getattr(gb, fig) or 0.0):
            return False
    return LINK_RANK[ga.gpu_link] >= LINK_RANK[gb.gpu_link]


GDDR_GPUS = frozenset({"T4", "T4g", "A10G", "L4", "L40S", "RTX PRO Server 6000"})
"""GPUs with GDDR memory (instances/gpus.csv notes and sources: GDDR6 / GDDR7); every other shipped GPU has HBM."""


def gpu_class(gpu: str) -> str:
    """Memory class of a GPU, the middle level of the calibration hierarchy: ``gddr`` or ``hbm``.

    Parameters
    ----------
    gpu
        GPU name or alias.

    Returns
    -------
    str
        ``gddr`` for :data:`GDDR_GPUS`, else ``hbm``.
    """
    return "gddr" if get_gpu(gpu).name in GDDR_GPUS else "hbm"
