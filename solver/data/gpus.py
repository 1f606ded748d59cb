"""The shipped GPU specification table (``instances/gpus.csv``, sources in ``instances/DATA_PROVENANCE.md``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import pandas as pd

from solver.data.resources import data_path
from solver.errors import UnknownNameError
from solver.specs import GPUSpec

_OPTIONAL = ("fp8_tflops", "int8_tops", "int4_tops", "tdp_w")


@functools.cache
def load_gpus() -> Mapping[str, GPUSpec]:
    """Return every shipped GPU spec, keyed by its catalog name (``A10G``, ``H100``, ...)."""
    frame = pd.read_csv(data_path("gpus.csv"), dtype={"aliases": str, "notes": str, "sources": str})
    out: dict[str, GPUSpec] = {}
    for row in frame.to_dict(orient="records"):
        rec = {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))}
        for key in _OPTIONAL:
            rec.setdefault(key, None)
        aliases = str(rec.pop("aliases", "") or "")
        rec["aliases"] = tuple(a.strip() for a in aliases.split(";") if a.strip())
        rec["name"] = rec.pop("gpu")
        spec = GPUSpec.model_validate(rec)
        out[spec.name] = spec
    return out


@functools.cache
def _alias_index() -> Mapping[str, str]:
    index: dict[str, str] = {}
    for name, spec in load_gpus().items():
        for alias in (name, *spec.aliases):
            index.setdefault(alias.lower(), name)
    return index


def get_gpu(name: str, field: str = "gpu") -> GPUSpec:
    """Return the spec of GPU ``name`` (case-insensitive, aliases accepted).

    Raises
    ------
    UnknownNameError
        If the GPU is not in the shipped table; the message suggests close names.
    """
    key = _alias_index().get(name.strip().lower())
    if key is None:
        raise UnknownNameError(field, "GPU", name, list(load_gpus()))
    return load_gpus()[key]


def gpu_table() -> pd.DataFrame:
    """Return the GPU table as a DataFrame, one row per GPU (for display and notebooks)."""
    rows = [spec.model_dump() for spec in load_gpus().values()]
    frame = pd.DataFrame(rows)
    frame["aliases"] = frame["aliases"].map(lambda a: ";".join(a))
    frame = frame.rename(columns={"name": "gpu"})
    return frame
