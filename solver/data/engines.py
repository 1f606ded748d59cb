"""The engine capability table ``instances/engines.csv``: what each serving engine can do, with a source per cell.

Columns (each with a ``*_source`` column naming where the value comes from):

* ``offloads_kv`` (yes/no): whether the engine can keep part of the *running* requests' KV cache in host memory.
  Engines that cannot (vLLM, TGI, TensorRT-LLM, NIM) admit fewer requests instead; the planner gives them no
  offloaded candidates and the serving model (:mod:`solver.performance.serving`) lets the excess wait.
* ``online_batching`` (continuous/static): how the engine serves online traffic.
* ``mixed_prefill`` (yes/no): whether a new request's prefill shares a forward pass with the running requests'
  decode tokens (chunked prefill, in-flight batching) instead of running as its own pass that stalls decoding.
* ``kv_reservation`` (full/mean): KV tokens an admitted request holds: its whole sequence ``s + n`` reserved at
  admission, or ``s + n/2`` on average when blocks are allocated as the sequence grows.
* ``max_num_seqs``: the engine's default cap on running sequences (empty: no cap besides memory).
* ``scheduling``: the admission order (fcfs, static).

``modelled_as`` names the infersave engine (calibration profile, memory budget) a listed engine is modelled as;
rows with an empty ``modelled_as`` (DeepSpeed) are listed for reference only. The table is read once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError

COLUMNS = (
    "engine",
    "modelled_as",
    "offloads_kv",
    "online_batching",
    "mixed_prefill",
    "kv_reservation",
    "max_num_seqs",
    "scheduling",
)


@dataclass(frozen=True)
class EngineCapabilities:
    """One row of ``instances/engines.csv`` (see the module docstring); ``sources`` maps each column to its source."""

    engine: str
    modelled_as: str
    offloads_kv: bool
    online_batching: str
    mixed_prefill: bool
    kv_reservation: str
    max_num_seqs: int | None
    scheduling: str
    sources: dict[str, str]


def _yes(value: object, field: str) -> bool:
    text = str(value).strip().lower()
    if text not in ("yes", "no"):
        raise InputError(field, f"must be yes or no, got {value!r}")
    return text == "yes"


@functools.cache
def engine_table() -> dict[str, EngineCapabilities]:
    """Read ``instances/engines.csv`` once; every value column must have a non-empty source."""
    frame = pd.read_csv(data_path("engines.csv"), dtype=str, keep_default_na=False)
    out: dict[str, EngineCapabilities] = {}
    for rec in frame.to_dict("records"):
        name = str(rec["engine"])
        where = f"engines.csv: {name}"
        sources = {c: str(rec[f"{c}_source"]) for c in COLUMNS[2:]}
        empty = [c for c, s in sources.items() if not s.strip()]
        if empty:
            raise InputError(where, f"no source for {', '.join(empty)}")
        batching = str(rec["online_batching"])
        if batching not in ("continuous", "static"):
            raise InputError(f"{where}.online_batching", f"must be continuous or static, got {batching!r}")
        reservation = str(rec["kv_reservation"])
        if reservation not in ("full", "mean"):
            raise InputError(f"{where}.kv_reservation", f"must be full or mean, got {reservation!r}")
        cap = str(rec["max_num_seqs"]).strip()
        out[name] = EngineCapabilities(
            engine=name,
            modelled_as=str(rec["modelled_as"]),
            offloads_kv=_yes(rec["offloads_kv"], f"{where}.offloads_kv"),
            online_batching=batching,
            mixed_prefill=_yes(rec["mixed_prefill"], f"{where}.mixed_prefill"),
            kv_reservation=reservation,
            max_num_seqs=int(cap) if cap else None,
            scheduling=str(rec["scheduling"]),
            sources=sources,
        )
    return out


def engine_capabilities(engine: str) -> EngineCapabilities:
    """Return the capabilities of ``engine`` (an infersave engine or a listed one such as ``nim``)."""
    table = engine_table()
    if engine not in table:
        raise UnknownNameError("engine", "engine", engine, tuple(table))
    return table[engine]
