"""Request classes: a scenario's workloads split by their size distributions, and who may share replicas.

A workload with a size distribution (``sizes`` or ``trace``, :class:`solver.specs.Workload`) is planned as one
*request class* per bucket: the bucket's share of the arrival rate (online) or of the requests (offline), sized
by the bucket's upper lengths. :func:`expand` returns the scenario with every workload replaced by its classes
(a workload without a distribution is its own single class, under its own name, so plans of such scenarios are
unchanged) and, per class, the workload it came from and its *sharing group*: the classes that may share
replicas of one configuration (``formulations/README.md``, "Shared replicas"): online classes of one model,
dtype and KV dtype (the engine is the scenario's), all buckets of a ``dedicated`` workload apart from the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from solver.specs import Scenario, Workload

CLASS_SEPARATOR = "#"
"""A bucket class is named ``<workload>#<bucket index>``."""


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
    """Return the sharing group of a workload's classes (online only; a dedicated workload is a group of its own)."""
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
    return Classes(Scenario.model_validate(data), tuple(classes))
