"""Request-size distributions: bucketing a trace, and splitting workloads into request classes.

A workload with a size distribution (``sizes`` or ``trace``, :class:`solver.specs.Workload`) is planned as one
*request class* per bucket: the bucket's share of the arrival rate (online) or of the requests (offline), sized
by the bucket's upper lengths. :func:`expand` returns the scenario with every workload replaced by its classes
(a workload without a distribution is its own single class, under its own name, so plans of such scenarios are
unchanged) and, per class, the workload it came from and its *sharing group*: the classes that may share
replicas of one configuration (``formulations/README.md``, "Shared replicas"): online classes of one model,
dtype and KV dtype (the engine is the scenario's), all buckets of a ``dedicated`` workload apart from the rest.

This module imports nothing from :mod:`solver.specs` at import time (specs reads traces through it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from solver.specs import Scenario, Workload

CLASS_SEPARATOR = "#"
"""A bucket class is named ``<workload>#<bucket index>``."""


def log_edges(longest: int) -> list[int]:
    """Logarithmic bucket edges: powers of two from 1 up to the first one at or above ``longest``."""
    top = max(1, int(math.ceil(math.log2(max(1, longest)))))
    return [2**k for k in range(top + 1)]


def bucket_trace(path: str, input_edges: list[int] | None = None, output_edges: list[int] | None = None) -> list[dict]:
    """Bucket a trace CSV into a size histogram (``sizes`` entries of a workload).

    Parameters
    ----------
    path
        CSV with columns ``input_tokens`` and ``output_tokens`` (positive integers; ``arrival_s`` and other
        columns are ignored).
    input_edges, output_edges
        Sorted bucket edges ``e_0 < e_1 < ...``: a length ``t`` falls in ``(e_{i-1}, e_i]`` (the first bucket is
        ``[1, e_0]``); lengths above the last edge get a last bucket up to the longest length. Default
        :func:`log_edges`.

    Returns
    -------
    list of dict
        One bucket per non-empty (input, output) cell: ``input_tokens`` and ``output_tokens`` as ``[lo, hi]``
        with ``hi`` the longest request seen in the cell (not the edge: the planner sizes a bucket by ``hi``),
        and ``share`` of the requests.

    Raises
    ------
    ValueError
        The file cannot be read, lacks a column, or holds a length that is not a positive integer.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"trace {path}: cannot be read as CSV ({exc.__class__.__name__})") from None
    for col in ("input_tokens", "output_tokens"):
        if col not in frame.columns:
            raise ValueError(f"trace {path}: column {col} is missing")
    if frame.empty:
        raise ValueError(f"trace {path}: has no requests")
    lengths = {}
    for col in ("input_tokens", "output_tokens"):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"trace {path}: row {row + 1} has {col} = {frame[col].iloc[row]!r}, not a positive integer"
            )
        lengths[col] = values.astype(np.int64)
    cells = []
    for col, given in (("input_tokens", input_edges), ("output_tokens", output_edges)):
        values = lengths[col]
        edges = list(given) if given else log_edges(int(values.max()))
        if edges[-1] < values.max():
            edges.append(int(values.max()))
        cells.append((np.searchsorted(np.asarray(edges), values, side="left"), edges))
    (i_in, e_in), (i_out, e_out) = cells
    table = pd.DataFrame({"a": i_in, "b": i_out, "i": lengths["input_tokens"], "o": lengths["output_tokens"]})
    grouped = table.groupby(["a", "b"], sort=True).agg(n=("i", "size"), i_hi=("i", "max"), o_hi=("o", "max"))
    total = float(len(table))
    out = []
    for (a, b), row in grouped.iterrows():
        lo_in = 1 if a == 0 else e_in[a - 1] + 1
        lo_out = 1 if b == 0 else e_out[b - 1] + 1
        out.append(
            {
                "input_tokens": [int(min(lo_in, row.i_hi)), int(row.i_hi)],
                "output_tokens": [int(min(lo_out, row.o_hi)), int(row.o_hi)],
                "share": float(row.n) / total,
            }
        )
    # shares of a finite trace add up to 1 up to float rounding; put the rounding on the largest bucket
    big = max(range(len(out)), key=lambda k: out[k]["share"])
    out[big]["share"] += 1.0 - sum(b["share"] for b in out)
    return out


@dataclass(frozen=True)
class RequestClass:
    """One request class: its name (a workload of the expanded scenario), source workload and sharing group."""

    name: str
    workload: str
    bucket: int
    group: str
    """Classes with the same group may share replicas (empty: the class never shares)."""


@dataclass(frozen=True)
class Classes:
    """A scenario split into request classes (:func:`expand`)."""

    scenario: Scenario
    classes: tuple[RequestClass, ...]

    @property
    def by_name(self) -> dict[str, RequestClass]:
        """Classes by name."""
        return {c.name: c for c in self.classes}

    def groups(self) -> dict[str, list[str]]:
        """Sharing groups with two or more classes: group key → class names (in scenario order)."""
        out: dict[str, list[str]] = {}
        for c in self.classes:
            if c.group:
                out.setdefault(c.group, []).append(c.name)
        return {k: v for k, v in out.items() if len(v) >= 2}

    @property
    def shares(self) -> bool:
        """Whether any class may share replicas with another."""
        return bool(self.groups())


def _split_requests(total: int, shares: list[float]) -> list[int]:
    """Split ``total`` requests by ``shares`` into integers that add up to it (largest remainder)."""
    raw = [total * s for s in shares]
    base = [math.floor(r) for r in raw]
    left = total - sum(base)
    for k in sorted(range(len(raw)), key=lambda k: base[k] - raw[k])[:left]:
        base[k] += 1
    return base


def _group_key(w: Workload, scenario: Scenario) -> str:
    """The sharing group of a workload's classes (online only; a dedicated workload is a group of its own)."""
    if w.kind != "online" or not scenario.search.sharing:
        return ""
    if w.dedicated:
        return f"dedicated:{w.name}"
    return f"{w.model}|{w.dtype or ''}|{w.kv_dtype or ''}|{scenario.engine}"


def expand(scenario: Scenario) -> Classes:
    """Return ``scenario`` with every workload replaced by its request classes, and the classes.

    A bucket class keeps its workload's SLOs, dtypes and batch sizes; its lengths are the bucket's sized
    (upper) lengths, its rate ``share · rate_rps`` or its requests the bucket's share of ``requests``
    (integers adding up to it). Offline buckets that get no request are left out. The expanded scenario has
    no ``sizes``; it is validated again (names stay unique: ``#`` joins workload and bucket).
    """
    from solver.specs import Scenario as _Scenario

    workloads: list[Any] = []
    classes: list[RequestClass] = []
    changed = False
    names = {w.name for w in scenario.workloads}
    for w in scenario.workloads:
        group = _group_key(w, scenario)
        if not w.sizes:
            workloads.append(w)
            classes.append(RequestClass(w.name, w.name, 0, group))
            continue
        changed = True
        requests = _split_requests(w.requests, [b.share for b in w.sizes]) if w.requests is not None else None
        for k, b in enumerate(w.sizes):
            name = f"{w.name}{CLASS_SEPARATOR}{k}"
            if name in names:
                raise ValueError(f"workload name {name!r} clashes with bucket {k} of workload {w.name!r}")
            update: dict[str, Any] = {
                "name": name,
                "input_tokens": b.sized_input,
                "output_tokens": b.sized_output,
                "sizes": None,
                "trace": None,
                "bucket_edges": None,
            }
            if w.rate_rps is not None:
                update["rate_rps"] = w.rate_rps * b.share
            elif requests is not None:
                if requests[k] == 0:
                    continue
                update["requests"] = requests[k]
            data = {**w.model_dump(), **update}
            workloads.append(data)
            classes.append(RequestClass(name, w.name, k, group))
    if not changed:
        return Classes(scenario, tuple(classes))
    data = scenario.model_dump()
    data["workloads"] = [x.model_dump() if hasattr(x, "model_dump") else x for x in workloads]
    return Classes(_Scenario.model_validate(data), tuple(classes))
