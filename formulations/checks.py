"""Per-candidate rules, each declared once: presolve, the MILP rows, the evaluator and the diagnosis read them.

A per-candidate rule compares one candidate column with a limit: ``value_c <= limit_c`` or
``value_c >= limit_c``. The limit is either another candidate column (memory) or a number the scenario sets
for the candidate's workload (an SLO, the offline batch deadline) or for every candidate (the price cap).
In the MILP a rule is the row ``value_c · y_c <= limit_c`` (``(limit_c − value_c) · y_c <= 0`` for ``>=``):
a candidate that breaks it cannot be used, and one that keeps it is not constrained further.

Every use goes through :data:`CANDIDATE_RULES`, read at call time (``formulations/README.md`` numbers each rule):

* presolve (:func:`solver.planning.presolve.violations`) removes the candidates that break a rule;
* :func:`formulations.rules.add_candidate_rules` writes one row block per rule, named :attr:`CandidateRule.name`;
* the evaluator (:func:`solver.planning.evaluate.evaluate`) re-checks each fleet row against every rule;
* the diagnosis (:func:`solver.planning.diagnose.diagnose`) reports a rule that removes every candidate of a
  workload, with the best value any candidate reaches when the rule's limit is a scenario field.

Adding a per-candidate rule is one entry here and its line in ``formulations/README.md``.
:data:`ENUMERATION_FILTERS` names the filters applied while candidates are enumerated (before any prediction),
and :data:`FLEET_LIMITS` the limits on the whole fleet (budgets, quotas, floors) that the formulation, the
evaluator, the diagnosis and the planner's messages read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from formulations.billing import worked_seconds
from solver.specs import Limits, Scenario, Workload

Sense = Literal["<=", ">="]
WorkloadLimit = Callable[[Scenario, Workload], float | None]


@dataclass(frozen=True)
class CandidateRule:
    """One per-candidate rule.

    Attributes
    ----------
    name
        The rule's one name, used as presolve's removal reason, the MILP's row block, the evaluator's check and
        the diagnosis's constraint; the scenario field it reads where there is one (``slo.tpot_ms``).
    column
        Candidate column holding the value compared.
    sense
        ``"<="``: the value may not exceed the limit; ``">="``: it may not fall below it.
    number
        The rule's number in ``formulations/README.md``.
    hint
        What to change when the rule removes every candidate of a workload (``{i}``: the workload's index).
    workload_limit
        The limit for a workload (``None``: the rule does not apply to it); exclusive with ``limit_column``.
    limit_column
        A candidate column holding the limit instead.
    field
        The scenario field that holds the limit (``{i}``: workload index), when the limit is that field's value
        itself; the diagnosis then suggests the frontier value for it.
    label, unit, best
        Words of messages: ``TPOT ≤ 100 ms ... the fastest candidate is 62.1 ms``.
    """

    name: str
    column: str
    sense: Sense
    number: str
    hint: str
    workload_limit: WorkloadLimit | None = None
    limit_column: str | None = None
    field: str | None = None
    label: str = ""
    unit: str = ""
    best: str = ""

    def limits(self, cands: pd.DataFrame, scenario: Scenario) -> np.ndarray:
        """Per candidate, the limit (NaN where the rule does not apply)."""
        if self.limit_column is not None:
            return cands[self.limit_column].to_numpy(dtype=float)
        if self.workload_limit is None:
            raise ValueError(f"rule {self.name!r} declares neither workload_limit nor limit_column")
        wl = {w.name: w for w in scenario.workloads}
        code, uniques = pd.factorize(cands["workload"], use_na_sentinel=False)
        read = self.workload_limit
        per_workload = np.array([_number(read(scenario, wl[str(n)])) for n in uniques], dtype=float)
        return per_workload[code] if len(uniques) else np.zeros(0)

    def values(self, cands: pd.DataFrame) -> np.ndarray:
        """Per candidate, the value compared with the limit."""
        return cands[self.column].to_numpy(dtype=float)

    def broken(self, cands: pd.DataFrame, scenario: Scenario, rel_tol: float) -> np.ndarray:
        """Per candidate, True where the rule applies and the value misses the limit by more than ``rel_tol``.

        The tolerance is relative to ``max(1, |limit|)``; a value that is not a number breaks the rule.
        """
        limit = self.limits(cands, scenario)
        value = self.values(cands)
        slack = rel_tol * np.maximum(1.0, np.abs(limit))
        with np.errstate(invalid="ignore"):
            holds = value <= limit + slack if self.sense == "<=" else value >= limit - slack
        return np.isfinite(limit) & ~holds

    def field_of(self, index: int) -> str | None:
        """Return the scenario field of the limit for workload ``index`` (``None`` when it is not a field)."""
        return self.field.format(i=index) if self.field is not None else None


def _number(value: float | None) -> float:
    """Return a limit as a float, NaN when unset."""
    return float(value) if value is not None else float("nan")


def _slo(name: str) -> WorkloadLimit:
    """Read the limit from ``workload.slo.<name>``."""
    return lambda scenario, w: getattr(w.slo, name)


def _price_cap(scenario: Scenario, w: Workload) -> float | None:
    """Read the price cap, the same for every workload."""
    return scenario.limits.max_price_usd_per_hour


def _batch_window_s(scenario: Scenario, w: Workload) -> float | None:
    """Seconds one offline instance can work before the deadline (``None`` online)."""
    return worked_seconds(scenario, w) if w.kind == "offline" else None


CANDIDATE_RULES: tuple[CandidateRule, ...] = (
    CandidateRule(
        "memory.gpu", "total_gpu_gib", "<=", "(2)", "allow larger instances, regions or markets, or a smaller dtype",
        limit_column="available_gpu_gib", label="GPU memory", unit="GiB",
    ),
    CandidateRule(
        "memory.host", "offloaded_kv_gib", "<=", "(3)", "allow instances with more host memory, or offload less",
        limit_column="host_available_gib", label="host memory", unit="GiB",
    ),
    CandidateRule(
        "slo.ttft_ms", "ttft_ms", "<=", "(4)", "raise workloads.{i}.slo.ttft_ms", _slo("ttft_ms"),
        field="workloads.{i}.slo.ttft_ms", label="TTFT", unit="ms", best="fastest",
    ),
    CandidateRule(
        "slo.tpot_ms", "tpot_ms", "<=", "(5)", "raise workloads.{i}.slo.tpot_ms", _slo("tpot_ms"),
        field="workloads.{i}.slo.tpot_ms", label="TPOT", unit="ms", best="fastest",
    ),
    CandidateRule(
        "slo.e2e_s", "e2e_s", "<=", "(6)", "raise workloads.{i}.slo.e2e_s", _slo("e2e_s"),
        field="workloads.{i}.slo.e2e_s", label="end-to-end time", unit="s", best="fastest",
    ),
    CandidateRule(
        "slo.tps", "tps", ">=", "(7)", "lower workloads.{i}.slo.tps", _slo("tps"),
        field="workloads.{i}.slo.tps", label="TPS", unit="tokens/s", best="highest",
    ),
    CandidateRule(
        "deadline_h", "e2e_s", "<=", "(7a)",
        "extend workloads.{i}.deadline_h (one static batch must end before it)", _batch_window_s,
        label="one static batch", unit="s", best="fastest",
    ),
    CandidateRule(
        "limits.max_price_usd_per_hour", "usd_per_hour", "<=", "(12)", "raise limits.max_price_usd_per_hour",
        _price_cap, field="limits.max_price_usd_per_hour", label="price", unit="$/h", best="cheapest",
    ),
)  # fmt: skip
"""Every per-candidate rule, in the order of ``formulations/README.md``."""

ENUMERATION_FILTERS: dict[str, str] = {
    "tp_heads": "use instances whose GPU count allows a TP degree that shards the model",
    "search.tp_degrees": "add degrees to search.tp_degrees (or remove it)",
    "memory": "allow larger instances, regions or markets, or a smaller dtype",
}
"""Filters applied while candidates are enumerated, each with what would bring its rows back: ``tp_heads``
(the TP degree does not shard the model's heads), ``search.tp_degrees`` (a degree not listed there) and
``memory`` (no KV offload fraction in [0, 1] fits GPU and host memory). The price cap, a rule, is applied
then too (before any prediction), under its rule's name."""


def rules() -> tuple[CandidateRule, ...]:
    """Return the per-candidate rules in force (read at call time, so a test can add one)."""
    return CANDIDATE_RULES


def rule(name: str) -> CandidateRule:
    """Return the rule called ``name``."""
    for r in rules():
        if r.name == name:
            return r
    raise KeyError(name)


def hint(name: str, index: int = 0) -> str | None:
    """Return what brings back the candidates removed by the rule or enumeration filter ``name``."""
    for r in rules():
        if r.name == name:
            return r.hint.format(i=index)
    return ENUMERATION_FILTERS.get(name)


@dataclass(frozen=True)
class FleetLimit:
    """One limit on the whole fleet, a field of :class:`~solver.specs.Limits` (or of every workload).

    Attributes
    ----------
    field
        The :class:`~solver.specs.Limits` attribute (its scenario path is ``limits.<field>``), or with
        ``scope="workload"`` the :class:`~solver.specs.Workload` attribute (``workloads.<i>.<field>``).
    number
        The row's number in ``formulations/README.md``.
    kind
        ``budget`` (dollars, an upper bound), ``quota`` (an upper bound on instances), ``floor`` (a lower
        bound on instances), ``share`` (an upper bound on a workload's share of capacity on spot),
        ``share_floor`` (a lower bound on the share of a workload's demand carried by on-demand capacity) or
        ``types`` (an upper bound on a workload's instance types). Budgets, quotas and floors are written by
        :mod:`formulations.limits`, the rest by :mod:`formulations.spot`.
    column
        For quotas and floors given per key: the candidate column the key is matched against (``None``: one
        number for the whole fleet).
    market
        For quotas: count only instances of this market (``spot``); ``None`` counts every market.
    scope
        ``limits``: a field of ``limits``; ``workload``: a field each workload may set.
    """

    field: str
    number: str
    kind: Literal["budget", "quota", "floor", "share", "share_floor", "types"]
    column: str | None = None
    market: str | None = None
    scope: Literal["limits", "workload"] = "limits"

    @property
    def path(self) -> str:
        """Return the limit's scenario path (``workloads.*.<field>`` for a per-workload field)."""
        return f"limits.{self.field}" if self.scope == "limits" else f"workloads.*.{self.field}"

    def value(self, limits: Limits) -> float | dict[str, int] | None:
        """Return the limit as the scenario sets it (``None`` or an empty mapping: not set)."""
        if self.scope != "limits":
            return None
        value: float | dict[str, int] | None = getattr(limits, self.field)
        return value

    def is_set(self, limits: Limits) -> bool:
        """Return True when the scenario sets this limit (per-workload fields: see :meth:`per_workload`)."""
        return self.value(limits) not in (None, {})

    def per_workload(self, scenario: Scenario) -> dict[int, int]:
        """For a per-workload limit: workload index → value, for the workloads that set it."""
        if self.scope != "workload":
            return {}
        return {i: v for i, w in enumerate(scenario.workloads) if (v := getattr(w, self.field)) is not None}

    def is_set_in(self, scenario: Scenario) -> bool:
        """Return True when ``scenario`` sets this limit (in ``limits`` or on some workload)."""
        return self.is_set(scenario.limits) if self.scope == "limits" else bool(self.per_workload(scenario))

    def paths(self, scenario: Scenario) -> list[str]:
        """Return the scenario paths where ``scenario`` sets this limit."""
        if self.scope == "limits":
            return [self.path] if self.is_set(scenario.limits) else []
        return [f"workloads.{i}.{self.field}" for i in self.per_workload(scenario)]


FLEET_LIMITS: tuple[FleetLimit, ...] = (
    FleetLimit("budget_usd_per_hour", "(13)", "budget"),
    FleetLimit("budget_usd", "(14)", "budget"),
    FleetLimit("max_instances", "(15)", "quota", "instance_type"),
    FleetLimit("max_instances_per_family", "(16)", "quota", "family"),
    FleetLimit("max_instances_per_region", "(17)", "quota", "region"),
    FleetLimit("max_total_instances", "(18)", "quota"),
    FleetLimit("min_instances", "(19)", "floor", "instance_type"),
    FleetLimit("max_spot_share", "(23)", "share"),
    FleetLimit("min_on_demand_share", "(24)", "share_floor"),
    FleetLimit("max_spot_instances", "(25)", "quota", "instance_type", market="spot"),
    FleetLimit("max_spot_instances_per_region", "(26)", "quota", "region", market="spot"),
    FleetLimit("max_instance_types", "(27)", "types", scope="workload"),
)
"""Every fleet-level limit, in the order of ``formulations/README.md``."""

INSTANCE_LIMIT_KINDS = ("budget", "quota", "floor")
"""Kinds of :class:`FleetLimit` that :mod:`formulations.limits` writes (the others: :mod:`formulations.spot`)."""


def fleet_limits_set(limits: Limits) -> list[FleetLimit]:
    """Return the fleet-level limits of ``limits`` the scenario sets (not the per-workload ones)."""
    return [fl for fl in FLEET_LIMITS if fl.is_set(limits)]


def scenario_limits_set(scenario: Scenario) -> list[FleetLimit]:
    """Return every fleet-level limit ``scenario`` sets, per-workload ones included."""
    return [fl for fl in FLEET_LIMITS if fl.is_set_in(scenario)]


def limit_paths_set(scenario: Scenario) -> list[str]:
    """Return the scenario paths of every fleet-level limit ``scenario`` sets (for messages)."""
    return [p for fl in scenario_limits_set(scenario) for p in fl.paths(scenario)]
