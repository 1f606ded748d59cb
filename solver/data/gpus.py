"""GPU specifications: the shipped table and the user's own.

The shipped table is ``instances/gpus.csv`` (sources in ``instances/DATA_PROVENANCE.md``); the user's GPUs are
added with ``--gpus-file`` or ``gpus:`` in a scenario (:func:`add_gpus`).

A user GPU has the shipped table's columns (``gpu, aliases, memory_gb, memory_bandwidth_gb_per_s, fp16_tflops,
...``); one whose name or alias is a shipped GPU's replaces that GPU, a new one is added. Every look-up
(:func:`get_gpu`, :func:`load_gpus`, catalogs) sees the user's GPUs from then on, in this process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.specs import GPUSpec

_OPTIONAL = ("fp8_tflops", "int8_tops", "int4_tops", "tdp_w")


_USER: dict[str, GPUSpec] = {}
"""GPUs the user added (by name), over the shipped ones."""


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return a table row (``gpu``, ``aliases`` as ``a;b``) as GPUSpec fields."""
    rec = {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v)) and v != ""}
    for key in _OPTIONAL:
        rec.setdefault(key, None)
    aliases = rec.pop("aliases", ())
    if isinstance(aliases, str):
        aliases = [a for a in aliases.split(";")]
    rec["aliases"] = tuple(str(a).strip() for a in aliases if str(a).strip())
    if "gpu" in rec:
        rec["name"] = rec.pop("gpu")
    return rec


@functools.cache
def _shipped() -> Mapping[str, GPUSpec]:
    frame = pd.read_csv(data_path("gpus.csv"), dtype={"aliases": str, "notes": str, "sources": str})
    out: dict[str, GPUSpec] = {}
    for row in frame.to_dict(orient="records"):
        spec = GPUSpec.model_validate(_record({str(k): v for k, v in row.items()}))
        out[spec.name] = spec
    return out


def load_gpus() -> Mapping[str, GPUSpec]:
    """Return every GPU spec, keyed by its catalog name (``A10G``, ``H100``, ...): shipped, then the user's."""
    if not _USER:
        return _shipped()
    out = dict(_shipped())
    for spec in _USER.values():
        keys = {k.lower() for k in (spec.name, *spec.aliases)}
        for name in [n for n, s in out.items() if n.lower() in keys or any(a.lower() in keys for a in s.aliases)]:
            del out[name]  # replaced by the user's spec
        out[spec.name] = spec
    return out


def add_gpus(specs: Iterable[GPUSpec]) -> list[GPUSpec]:
    """Add (or override, by name or alias) GPU specs for every later look-up in this process; return them."""
    added = list(specs)
    for spec in added:
        _USER[spec.name] = spec
    if added:
        _alias_index.cache_clear()
    return added


def read_gpus_file(path: str | Path, field: str = "--gpus-file") -> list[GPUSpec]:
    """Read a GPU spec CSV with the shipped table's columns (``instances/gpus.csv``); errors name the row.

    Required: ``gpu, memory_gb, memory_bandwidth_gb_per_s, fp16_tflops, host_link, host_link_gb_per_s,
    gpu_link (nvlink|pcie), gpu_link_gb_per_s``; optional: ``aliases`` (``a;b``), ``fp8_tflops``, ``int8_tops``,
    ``int4_tops``, ``tdp_w``, ``notes``, ``sources``.
    """
    p = Path(path).expanduser()
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(p)!r}: {exc.__class__.__name__}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(field, f"{str(p)!r} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    rows = [{str(k).strip(): str(v).strip() for k, v in r.items()} for r in frame.to_dict(orient="records")]
    return gpus_from_records(rows, field=f"{field} {p.name}", first_row=2)


def gpus_from_records(rows: Iterable[Mapping[str, Any]], field: str = "gpus", first_row: int = 0) -> list[GPUSpec]:
    """Validate GPU spec records (the table's columns; ``name`` may stand for ``gpu``); errors name row and column."""
    import pydantic

    from solver.validation import first_error

    out = []
    for i, row in enumerate(rows):
        where = f"{field} row {i + first_row}" if first_row else f"{field}.{i}"
        if not isinstance(row, Mapping):
            raise InputError(where, "must be a mapping of the GPU table's columns")
        if "gpu" not in row and "name" not in row:
            raise InputError(f"{where}.gpu", "is missing (the GPU's name, as the catalog's AcceleratorName)")
        try:
            out.append(GPUSpec.model_validate(_record(row)))
        except pydantic.ValidationError as exc:
            loc, problem = first_error(exc)
            raise InputError(f"{where}.{loc}" if loc else where, problem) from None
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
