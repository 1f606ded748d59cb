"""Explain why a scenario has no plan, and compute the smallest relaxation that makes it feasible.

Two stages, cheapest first:

1. **Per workload, on the candidate table** (no solver): which filter removes every candidate — weights that fit no
   instance at any TP degree, the price cap, or an SLO that no candidate reaches. For an SLO the smallest
   relaxation is exact: the best value any candidate reaches while meeting the workload's other SLOs (the
   candidate set is finite, so the feasible threshold is one of the candidates' values).
2. **Fleet level, with the solver**: when every workload has candidates but no fleet satisfies the limits
   (budget, quotas, total count, deadlines), each limit is relaxed alone. A limit whose removal makes the scenario
   feasible is a blocker; its smallest feasible value is found by bisection over the solver's yes/no answers
   (integer quotas exactly; budgets and deadlines to 1 % relative precision).

Each relaxation is reported as a dotted scenario path, the current value, the value that makes the scenario
feasible and the cost of the plan at that value, so scripts can apply it with :func:`solver.apps.sweep.set_path`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from formulations import checks
from solver.data.catalog import Catalog
from solver.data.models import get_model
from solver.data.scenario import scenario_from_dict
from solver.errors import InfeasibleError, InfersaveError, InputError
from solver.performance.memory import resolve_dtypes, weights_gib
from solver.planning.candidates import candidate_set, offers
from solver.planning.classes import expand
from solver.planning.presolve import violations
from solver.specs import MAX_DEADLINE_H, Scenario, SolveOptions, Workload
from solver.tolerances import RELAX_NUDGE_REL

REL_TOL = 0.01
"""Relative precision of the bisection on continuous limits (budgets, deadlines)."""


@dataclass(frozen=True)
class Relaxation:
    """One change to the scenario that makes it feasible on its own.

    Attributes
    ----------
    field
        Dotted path into the scenario (``workloads.0.slo.ttft_ms``, ``limits.budget_usd_per_hour``).
    current
        The value in the scenario (``None`` when the change is to add a field, e.g. an instance type).
    suggested
        The smallest (or largest, for lower bounds) value that is feasible.
    cost_usd_per_hour
        Fleet cost of the plan at the suggested value, when a solve was made.
    """

    field: str
    current: Any
    suggested: Any
    cost_usd_per_hour: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Blocker:
    """One constraint that blocks every plan, with the numbers that show it."""

    constraint: str
    workload: str | None
    message: str


@dataclass(frozen=True)
class Diagnosis:
    """Why a scenario has no plan and what would make it feasible (empty lists: it is feasible)."""

    blockers: list[Blocker] = field(default_factory=list)
    relaxations: list[Relaxation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def feasible(self) -> bool:
        """True when nothing blocks (the scenario has a plan)."""
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "blockers": [asdict(b) for b in self.blockers],
            "relaxations": [asdict(r) for r in self.relaxations],
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """Human text: one line per blocker, then a "To fix" line per relaxation."""
        if self.feasible:
            return "the scenario is feasible"
        lines = [b.message for b in self.blockers]
        for r in self.relaxations:
            cost = f" (plan cost ${r.cost_usd_per_hour:,.2f}/h)" if r.cost_usd_per_hour is not None else ""
            if r.suggested is None:
                change = f"remove {r.field}"
            elif r.current is not None:
                change = f"set {r.field}: {_fmt(r.suggested)}"
            else:
                change = f"add {r.suggested} to {r.field}"
            now = f" (now {_fmt(r.current)})" if r.current is not None else ""
            lines.append(f"To fix: {change}{now}{cost}{'; ' + r.note if r.note else ''}")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}"
    return str(v)


PlanFn = Callable[[Scenario, SolveOptions], Any]


def _default_plan(scenario: Scenario, options: SolveOptions) -> Any:
    from solver.planning.planner import plan

    return plan(scenario, options)


def diagnose(
    scenario: Scenario,
    options: SolveOptions | None = None,
    *,
    catalog: Catalog | None = None,
    plan_fn: PlanFn | None = None,
    max_seconds: float = 120.0,
) -> Diagnosis:
    """Explain why ``scenario`` has no plan; return blockers and the smallest relaxations found.

    Parameters
    ----------
    scenario
        The scenario that was found infeasible.
    options
        Solver options for the feasibility checks (each is one MILP solve).
    catalog
        A catalog to use instead of ``scenario.catalog``.
    plan_fn
        The planner (default :func:`solver.planning.planner.plan`); injectable for tests.
    max_seconds
        Stop searching for fleet-level relaxations after this long (the blockers found so far are kept).
    """
    start = time.perf_counter()
    options = options or SolveOptions(time_limit_s=30.0)
    plan_fn = plan_fn or _default_plan
    # a workload with a size distribution is planned as one class per bucket: each class is checked on its own
    # candidates (its bucket's lengths), and its relaxations name the workload's fields
    classes = expand(scenario)
    sc = classes.scenario
    index = {w.name: i for i, w in enumerate(scenario.workloads)}
    cset = candidate_set(sc, catalog)
    blockers: list[Blocker] = []
    relaxations: list[Relaxation] = []
    for w, cls in zip(sc.workloads, classes.classes, strict=True):
        i = index[cls.workload]
        b, r = _workload_blockers(i, w, sc, cset.frame, cset.dropped.get(w.name, {}), catalog)
        blockers += b
        relaxations += r
    relaxations = _merge_relaxations(relaxations)
    if blockers:
        relaxations = [_priced(scenario, r, options, plan_fn) for r in relaxations]
    else:
        b, r = _fleet_blockers(scenario, options, plan_fn, deadline=start + max_seconds)
        blockers += b
        relaxations += r
    return Diagnosis(blockers, relaxations, time.perf_counter() - start)


def _merge_relaxations(relaxations: list[Relaxation]) -> list[Relaxation]:
    """Return one relaxation per field (the classes of one workload share its fields).

    A limit is relaxed as far as its most demanding class needs: an upper limit to the largest suggested value,
    a lower one (``tps``) to the smallest; other changes (dtype, instances, TP degrees) are kept once per field
    and value.
    """
    out: dict[tuple[str, Any], Relaxation] = {}
    for r in relaxations:
        numeric = isinstance(r.suggested, float) and isinstance(r.current, int | float)
        key = (r.field, None) if numeric else (r.field, repr(r.suggested))
        if key not in out:
            out[key] = r
            continue
        if numeric:
            old = out[key]
            lower = r.field.endswith(".tps")
            better = r.suggested < old.suggested if lower else r.suggested > old.suggested
            out[key] = r if better else old
    return list(out.values())


def _priced(scenario: Scenario, r: Relaxation, options: SolveOptions, plan_fn: PlanFn) -> Relaxation:
    """Attach the cost of the plan with relaxation ``r`` applied, when that alone makes the scenario feasible."""
    keys: tuple[str | int, ...] = tuple(int(k) if k.isdigit() else k for k in r.field.split("."))
    value = r.suggested
    if r.current is None and r.field == "instances":
        value = [*(scenario.instances or []), r.suggested]
    elif isinstance(value, float):
        value = value * (1 + RELAX_NUDGE_REL) if keys[-1] != "tps" else value * (1 - RELAX_NUDGE_REL)
    try:
        result = _solve(_with(scenario, keys, value), options, plan_fn)
    except InfersaveError:
        return r
    if result is None:
        return r
    return Relaxation(r.field, r.current, r.suggested, float(result.cost_usd_per_hour), r.note)


# ---- stage 1: per workload, on candidates -------------------------------------------------------------
def _workload_blockers(
    i: int,
    w: Workload,
    scenario: Scenario,
    frame: pd.DataFrame,
    dropped: dict[str, int],
    catalog: Catalog | None,
) -> tuple[list[Blocker], list[Relaxation]]:
    cands = frame[frame["workload"] == w.name] if not frame.empty else frame
    if cands.empty:
        return _no_fit(i, w, scenario, dropped, catalog)
    bad = violations(cands, scenario)
    relaxable = [r for r in checks.rules() if r.field is not None]
    names = [r.name for r in relaxable]
    if not bad[names].any(axis=1).all():
        return [], []
    blockers, relaxations = [], []
    for r in relaxable:
        limit = r.limits(cands, scenario)
        if not np.isfinite(limit).any():
            continue
        pool = cands[~bad[[n for n in names if n != r.name]].any(axis=1)]
        if pool.empty:
            continue
        values = r.values(pool)
        best_i = int(np.nanargmin(values) if r.sense == "<=" else np.nanargmax(values))
        best = pool.iloc[best_i]
        op = "≤" if r.sense == "<=" else "≥"
        where = f"{best['instance_type']}, TP {int(best['tp'])}, batch {int(best['batch_size'])}"
        current = float(limit[np.isfinite(limit)][0])
        field_path = r.field_of(i)
        blockers.append(
            Blocker(
                field_path or r.name,
                w.name,
                f"{w.name}: {r.label} {op} {current:,.6g} {r.unit} is unreachable for {w.input_tokens:,}-token "
                f"prompts and {w.output_tokens:,} output tokens: the {r.best} candidate is "
                f"{values[best_i]:,.4g} {r.unit} ({where})",
            )
        )
        if field_path is not None:
            relaxations.append(Relaxation(field_path, current, float(values[best_i])))
    if not blockers:  # every rule is met alone but never together
        labels = ", ".join(r.label for r in relaxable if np.isfinite(r.limits(cands, scenario)).any())
        blockers.append(Blocker(f"workloads.{i}.slo", w.name, f"{w.name}: no candidate meets {labels} together"))
    return blockers, relaxations


def _no_fit(
    i: int, w: Workload, scenario: Scenario, dropped: dict[str, int], catalog: Catalog | None
) -> tuple[list[Blocker], list[Relaxation]]:
    """Blockers of a workload without any candidate: memory, price cap or TP/heads."""
    model = get_model(w.model, field=f"workloads.{i}.model")
    dtype, _kv = resolve_dtypes(model, w.dtype, w.kv_dtype)
    total_gib = float(weights_gib(model, dtype, 1))
    off = offers(scenario, catalog)
    blockers: list[Blocker] = []
    relaxations: list[Relaxation] = []
    price_cap = "limits.max_price_usd_per_hour"
    if dropped.get("search.tp_degrees") and not dropped.get("memory") and not dropped.get(price_cap):
        listed = scenario.search.tp_degrees
        message = f"{w.name}: search.tp_degrees {listed} leaves no TP degree that shards {model.name} on an instance"
        blockers.append(Blocker("search.tp_degrees", w.name, message))
        relaxations.append(Relaxation("search.tp_degrees", listed, None, note="remove it to try every degree"))
        return blockers, relaxations
    if dropped.get(price_cap) and not dropped.get("memory"):
        cap = scenario.limits.max_price_usd_per_hour
        message = f"{w.name}: the price cap ${cap:,.4g}/h excludes every instance that could serve it"
        blockers.append(Blocker("limits.max_price_usd_per_hour", w.name, message))
        no_cap = scenario.limits.model_copy(update={"max_price_usd_per_hour": None})
        unc = scenario.model_copy(update={"limits": no_cap})
        cheapest = _cheapest_fitting(w, unc, catalog)
        if cheapest is not None:
            relaxations.append(Relaxation("limits.max_price_usd_per_hour", cap, cheapest[1], note=f"for {cheapest[0]}"))
        return blockers, relaxations
    gpus = off["gpu_count"].to_numpy(dtype=float)
    per_gpu = off["gpu_memory_mib"].to_numpy(dtype=float) / 1024
    max_tp = int(max(1, np.floor(gpus.max()))) if len(gpus) else 0
    biggest = float((np.floor(np.maximum(gpus, 1)) * per_gpu).max()) if len(gpus) else 0.0
    where = "the filtered catalog" if (scenario.instances or scenario.regions) else "the catalog"
    blockers.append(
        Blocker(
            f"workloads.{i}.model",
            w.name,
            f"{w.name}: {model.name} {dtype} weights ({total_gib:,.0f} GiB) plus the KV cache of one batch fit no "
            f"instance in {where} with TP ≤ {max_tp} (largest: {biggest:,.0f} GiB of GPU memory per instance)",
        )
    )
    if scenario.instances:
        wider = scenario.model_copy(update={"instances": None})
        cheapest = _cheapest_fitting(w, wider, catalog)
        if cheapest is not None:
            relaxations.append(Relaxation("instances", None, cheapest[0], note=f"${cheapest[1]:,.4g}/h"))
    for smaller in ("fp8", "int4"):
        if dtype in ("fp8", "int4") and smaller != "int4":
            continue
        trial = w.model_copy(update={"dtype": smaller})
        sc = scenario.model_copy(update={"workloads": [trial if x is w else x for x in scenario.workloads]})
        if _cheapest_fitting(trial, sc, catalog) is not None:
            relaxations.append(Relaxation(f"workloads.{i}.dtype", dtype, smaller, note="quantised weights"))
            break
    return blockers, relaxations


def _cheapest_fitting(w: Workload, scenario: Scenario, catalog: Catalog | None) -> tuple[str, float] | None:
    """Return the cheapest instance (type, $/h) with a memory-feasible candidate for ``w``, ignoring SLOs."""
    try:
        sub = scenario.model_copy(update={"workloads": [w]})
        frame = candidate_set(sub, catalog).frame
    except InfersaveError:
        return None
    if frame.empty:
        return None
    row = frame.sort_values(["usd_per_hour", "instance_type"], kind="stable").iloc[0]
    return str(row["instance_type"]), float(row["usd_per_hour"])


# ---- stage 2: fleet level, with the solver ----------------------------------------------------------
def _solve(scenario: Scenario, options: SolveOptions, plan_fn: PlanFn) -> Any | None:
    """Return the plan, or None when the scenario is infeasible (or no plan was found within the limit)."""
    try:
        result = plan_fn(scenario, options)
    except (InfeasibleError, InputError):
        return None
    except InfersaveError:
        return None
    return result if getattr(result, "status", None) in ("optimal", "feasible") else None


def _with(scenario: Scenario, keys: tuple[str | int, ...], value: Any) -> Scenario:
    """Return a copy of ``scenario`` with the field at ``keys`` set to ``value`` (``None`` removes it)."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    node: Any = data
    for k in keys[:-1]:
        node = node[k]
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return scenario_from_dict(data)


def _display(keys: tuple[str | int, ...]) -> str:
    return ".".join(str(k) for k in keys)


Limit = tuple[tuple[str | int, ...], Any, str]


def _limits_to_relax(scenario: Scenario) -> list[Limit]:
    """(keys, current value, kind) of every fleet-level limit set.

    Kinds: upper (float), int, share, share_floor, deadline.

    The limits come from :data:`formulations.checks.FLEET_LIMITS`; floors (``min_instances``) are never what
    blocks a plan for lack of room, so they are not relaxed. The on-demand floor (24) is lowered, the spot share
    cap (23) raised, and a workload's ``max_instance_types`` (27) raised like a quota.
    """
    lim = scenario.limits
    out: list[Limit] = []
    for fl in checks.scenario_limits_set(scenario):
        value = fl.value(lim)
        if fl.kind == "floor":
            continue
        if fl.kind == "types":
            out.extend((("workloads", i, fl.field), v, "int") for i, v in fl.per_workload(scenario).items())
            continue
        kind = {"budget": "upper", "share": "share", "share_floor": "share_floor"}.get(fl.kind, "int")
        if isinstance(value, dict):
            out.extend((("limits", fl.field, key), v, kind) for key, v in value.items())
        else:
            out.append((("limits", fl.field), value, kind))
    for i, w in enumerate(scenario.workloads):
        if w.deadline_h is not None:
            out.append((("workloads", i, "deadline_h"), w.deadline_h, "deadline"))
    return out


def _fleet_blockers(
    scenario: Scenario, options: SolveOptions, plan_fn: PlanFn, deadline: float
) -> tuple[list[Blocker], list[Relaxation]]:
    blockers: list[Blocker] = []
    relaxations: list[Relaxation] = []
    for keys, current, kind in _limits_to_relax(scenario):
        if time.perf_counter() > deadline:
            break
        relaxed_value = MAX_DEADLINE_H if kind == "deadline" else None
        loose = _solve(_with(scenario, keys, relaxed_value), options, plan_fn)
        if loose is None:
            continue
        found = _bisect(scenario, keys, current, kind, loose, options, plan_fn, deadline)
        if found is None:
            continue
        value, result = found
        path = _display(keys)
        blockers.append(Blocker(path, None, _limit_message(keys, current, value)))
        relaxations.append(Relaxation(path, current, value, float(getattr(result, "cost_usd_per_hour", math.nan))))
    if not blockers:
        blockers.append(
            Blocker("limits", None, "no plan satisfies the limits together, and no single limit relaxed alone helps")
        )
    return blockers, relaxations


def _limit_message(keys: tuple[str | int, ...], current: Any, value: Any) -> str:
    path = _display(keys)
    if keys[-1] == "deadline_h":
        return f"{path} = {current:,.4g} h is too short: the earliest deadline any fleet meets is about {value:,.4g} h"
    if keys[-1] in ("budget_usd_per_hour", "budget_usd"):
        unit = "$/h" if keys[-1] == "budget_usd_per_hour" else "$"
        return f"{path} = {current:,.6g} {unit} is too small: the cheapest plan costs {value:,.6g} {unit}"
    if keys[-1] == "max_spot_share":
        return f"{path} = {current:,.4g} is too small: a plan needs a spot share of capacity of about {value:,.4g}"
    if keys[-1] == "min_on_demand_share":
        return (
            f"{path} = {current:,.4g} is too large: on-demand capacity can carry at most about {value:,.4g} of demand"
        )
    if keys[-1] == "max_instance_types":
        return f"{path} = {current} is too small: at least {value} instance types are needed"
    return f"{path} = {current} is too small: at least {value} instances are needed"


def _bisect(
    scenario: Scenario,
    keys: tuple[str | int, ...],
    current: Any,
    kind: str,
    loose: Any,
    options: SolveOptions,
    plan_fn: PlanFn,
    deadline: float,
) -> tuple[Any, Any] | None:
    """Smallest feasible value of the limit at ``path`` between ``current`` (infeasible) and a feasible bound."""
    if kind == "upper":
        # The plan without the budget costs ``hi``, so a budget of ``hi`` is feasible; for a single-objective
        # scenario (online $/h, or offline $) it is the smallest, since that plan minimises the same cost.
        column = "cost_usd_per_hour" if keys[-1] == "budget_usd_per_hour" else "total_cost_usd"
        hi = float(getattr(loose, column))
        return hi, loose

    def solve_at(value: float) -> Any | None:
        return _solve(_with(scenario, keys, value), options, plan_fn)

    if kind == "int":
        hi_int = _count_used(loose, keys, scenario)
        return _narrow(int(current), hi_int, (hi_int, loose), solve_at, deadline, integer=True)
    if kind == "share":  # (23): infeasible at the current cap, feasible at 1 (no cap)
        return _narrow(float(current), 1.0, (1.0, loose), solve_at, deadline, integer=False)
    if kind == "share_floor":  # (24): bisect on 1 - share: infeasible at the current floor, feasible at 0
        value, plan_at = _narrow(
            1.0 - float(current), 1.0, (1.0, loose), lambda x: solve_at(1.0 - x), deadline, integer=False
        )
        return 1.0 - value, plan_at
    # deadline: grow from the current value until feasible, then bisect
    lo, hi = float(current), min(float(current) * 2, MAX_DEADLINE_H)
    result = solve_at(hi)
    while result is None and hi < MAX_DEADLINE_H and time.perf_counter() < deadline:
        lo, hi = hi, min(hi * 2, MAX_DEADLINE_H)
        result = solve_at(hi)
    if result is None:
        return None
    return _narrow(lo, hi, (hi, result), solve_at, deadline, integer=False)


def _narrow(
    lo: float,
    hi: float,
    best: tuple[Any, Any],
    solve_at: Callable[[float], Any | None],
    deadline: float,
    *,
    integer: bool,
) -> tuple[Any, Any]:
    """Bisect between an infeasible ``lo`` and a feasible ``hi``; return (smallest feasible value, its plan).

    Integers stop when ``hi - lo == 1`` (exact); continuous values at :data:`REL_TOL` relative precision.
    """
    while time.perf_counter() < deadline and ((hi - lo > 1) if integer else ((hi - lo) / hi > REL_TOL)):
        mid = (lo + hi) // 2 if integer else (lo + hi) / 2
        trial = solve_at(mid)
        if trial is None:
            lo = mid
        else:
            hi, best = mid, (mid, trial)
    return best


def _count_used(result: Any, keys: tuple[str | int, ...], scenario: Scenario | None = None) -> int:
    """Instances of the plan counted by the quota at ``keys`` (types of a workload for ``max_instance_types``)."""
    fleet = result.to_frame()
    if fleet.empty:
        return 0
    group, key = keys[1], keys[-1]
    if keys[0] == "workloads" and scenario is not None:  # (27): instance types the workload uses
        return int(fleet.loc[fleet["workload"] == scenario.workloads[int(group)].name, "instance_type"].nunique())
    if group in ("max_spot_instances", "max_spot_instances_per_region"):
        spot = fleet[fleet["market"] == "spot"]
        column = "instance_type" if group == "max_spot_instances" else "region"
        return int(spot.loc[spot[column] == key, "count"].sum())
    if group == "max_instances_per_family":
        return int(fleet.loc[fleet["instance_type"].str.split(".").str[0] == key, "count"].sum())
    if group == "max_instances_per_region":
        return int(fleet.loc[fleet["region"] == key, "count"].sum())
    if group == "max_instances":
        return int(fleet.loc[fleet["instance_type"] == key, "count"].sum())
    return int(fleet["count"].sum())
