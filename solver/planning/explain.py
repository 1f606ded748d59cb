"""Why this plan: the binding constraint of each fleet row, runners-up, the on-demand price, K alternatives.

:func:`explain` takes a plan and returns it with :attr:`~solver.planning.plan.Plan.explanation` filled in (plain
data, the ``explanation`` key of ``plan --json``); :func:`explanation_lines` prints it for people.

* **Binding constraint of a row.** Among the candidates of the row's workload, those that are cheaper per unit
  of capacity than the row's (``usd_per_hour / capacity_per_instance``: $/h per req/s online, $ per request
  offline) are what the plan did not take. Each is removed by a per-candidate rule of
  :data:`formulations.checks.CANDIDATE_RULES` (the first it breaks, in README order), or is allowed by every
  rule. When every one of them breaks a rule, the binding constraint is the rule that removes the cheapest;
  when some are allowed (the cheapest allowed one stands for them), it is the fleet limit of
  :data:`formulations.checks.FLEET_LIMITS` that leaves no room for one more instance of it
  (or that the row's own instances hold up: the on-demand floor, the spot share), else ``whole instances``
  (one more instance of the cheaper candidate would cost more than this row's share of the demand). A row with
  nothing cheaper is bound by its demand row alone.
* **Runner-up of a row.** The same scenario solved without the row's instance type for its workload: its cost
  and the extra over the plan.
* **On-demand price.** For a plan that rents spot instances: the plan with on-demand offers only.
* **Alternatives** (``top_k``): the ``K`` cheapest plans whose sets of (workload, instance type) differ from the
  plan's and each other's, each found by adding a no-good cut (README row (28)) for every set seen.

Every re-solve draws on one :class:`~solver.planning.decompose.Clock` of ``options.time_limit_s``; what the
clock leaves no time for is reported as skipped. Every runner-up and alternative is checked by the exact
evaluator (``evaluator_ok``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from formulations.billing import capacity_per_instance, min_hours_per_instance
from formulations.spot import TypeSet
from solver.data.catalog import Catalog
from solver.errors import InfersaveError
from solver.planning.candidates import candidate_set, shared_candidates
from solver.planning.classes import expand
from solver.planning.decompose import MIN_SOLVE_S, Clock
from solver.planning.evaluate import KEYS, LimitUse, capacity_terms, evaluate, limit_uses
from solver.planning.plan import Plan
from solver.planning.presolve import violations
from solver.specs import Scenario, SolveOptions

FLEET_KEYS = (
    *("workload", "instance_type", "market", "region", "count", "tp", "batch_size", "offload_fraction"),
    *("usd_per_hour", "instance_hours"),
)
"""Fields of each fleet row of a re-solved plan (enough for :meth:`Plan.from_dict` and ``infersave check``)."""
UNIT_REL_TOL = 1e-9
"""A candidate is cheaper per unit of capacity when its unit cost is below the row's by more than this (relative)."""


def type_set(plan: Plan) -> TypeSet:
    """Return the (workload, instance type) pairs ``plan`` rents."""
    return frozenset((k, r.instance_type) for r in plan.fleet if r.count > 0 for k in served_classes(r))


def explain(
    plan: Plan,
    scenario: Scenario,
    options: SolveOptions | None = None,
    catalog: Catalog | None = None,
    *,
    rows: bool = True,
    top_k: int = 0,
) -> Plan:
    """Return ``plan`` with its explanation (module docstring); ``plan`` itself is not changed.

    Parameters
    ----------
    plan, scenario
        A plan and the scenario it was planned for.
    options
        Solver options of the re-solves; ``time_limit_s`` bounds the whole explanation.
    catalog
        A catalog to use instead of ``scenario.catalog``.
    rows
        Explain each fleet row (binding constraint, runner-up) and the on-demand price of a spot plan.
    top_k
        Number of alternatives with other sets of instance types (0: none).
    """
    options = options or SolveOptions()
    clock = Clock(options.time_limit_s)
    quiet = options.model_copy(update={"tie_break": False, "verbose": False})
    # request classes and shared pools, as the planner sees them: size buckets are classes, and the re-solves
    # may share replicas as the plan did
    scenario, frame = planning_frame(scenario, catalog)
    out: dict[str, Any] = {"time_limit_s": options.time_limit_s}
    if rows:
        uses = limit_uses(plan.to_frame(), scenario) if plan.fleet else []
        runners: dict[tuple[str, str], dict[str, Any]] = {}
        reliefs: dict[tuple[str, str], float | None] = {}

        def relief(path: str, where: str) -> float | None:
            """Return the dollars saved without the limit at ``path`` (key ``where``); None: unknown."""
            if (path, where) not in reliefs:
                loose = without_limit(scenario, path, where)
                alt = _resolve(frame, loose, quiet, clock, plan, catalog)
                ok = alt.get("status") in ("optimal", "feasible")
                reliefs[path, where] = -float(alt["extra_cost_usd"]) if ok else None
            return reliefs[path, where]

        explained = []
        for r in plan.fleet:
            served = served_classes(r)
            pair = (r.workload, r.instance_type)
            if pair not in runners:  # without the type for every class the row serves (pooled rows too)
                gone = (
                    frame["workload"].isin(served).to_numpy() & (frame["instance_type"] == r.instance_type).to_numpy()
                )
                runners[pair] = _resolve(frame[~gone], scenario, quiet, clock, plan, catalog, without=r.instance_type)
            explained.append(
                {
                    "workload": r.workload,
                    "instance_type": r.instance_type,
                    "market": r.market,
                    "region": r.region,
                    "binding": _pool_binding(r) if r.pool >= 0 else _binding(r, plan, frame, scenario, uses, relief),
                    "runner_up": runners[pair],
                }
            )
        out["rows"] = explained
        out["on_demand"] = _on_demand(plan, scenario, frame, quiet, clock, catalog)
    if top_k > 0:
        out["alternatives"] = _alternatives(plan, scenario, frame, quiet, clock, catalog, top_k)
    out["seconds"] = clock.spent()
    return dataclasses.replace(plan, explanation=out)


def planning_frame(scenario: Scenario, catalog: Catalog | None = None) -> tuple[Scenario, pd.DataFrame]:
    """Return the class scenario (:func:`solver.planning.classes.expand`) and its candidates with the pools.

    The table the planner solves, before its presolve: every class's own candidates (``pool = -1``) and, when
    classes may share replicas, the pooled rows of :func:`solver.planning.candidates.shared_candidates`.
    """
    classes = expand(scenario)
    sc = classes.scenario
    frame = candidate_set(sc, catalog).frame
    if classes.shares:
        pooled = shared_candidates(frame, sc, classes.groups(), across=False)  # re-solves change the table
        if not pooled.empty:
            frame = pd.concat([frame.assign(pool=-1), pooled], ignore_index=True)
    return sc, frame


def served_classes(row: Any) -> list[str]:
    """Return the request classes a fleet row serves: its split (pooled and online rows), else its workload."""
    return [k for k, _rate in row.split] if row.split else [row.workload]


def _pool_binding(row: Any) -> dict[str, Any]:
    """Return the binding of a shared row: its count covers the rates routed to its classes (row (20))."""
    parts = ", ".join(f"{k} {rate:,.4g} req/s" for k, rate in row.split)
    return {
        "constraint": "sharing.capacity",
        "reason": f"{row.count} shared instance(s) carry the rates routed to them, {parts}, at "
        f"{row.utilisation:.0%} of their sustainable load (row (20))",
        "classes": [k for k, _rate in row.split],
        "removed_by": {},
    }


# ---- re-solves ------------------------------------------------------------------------------------------------
def _resolve(
    cands: pd.DataFrame,
    scenario: Scenario,
    options: SolveOptions,
    clock: Clock,
    base: Plan,
    catalog: Catalog | None,
    *,
    without: str | None = None,
    nogoods: Sequence[TypeSet] = (),
) -> dict[str, Any]:
    """Solve ``cands`` in the time the clock has left; the plan's cost, its extra over ``base``, the evaluator."""
    from solver.planning.planner import solve_candidates

    info: dict[str, Any] = {"without": without} if without is not None else {}
    if clock.left() <= MIN_SOLVE_S:
        return {**info, "status": "skipped", "reason": "time limit of the explanation reached"}
    try:
        alt = solve_candidates(
            cands.reset_index(drop=True),
            scenario,
            options.model_copy(update={"time_limit_s": clock.left()}),
            nogoods=nogoods,
        )
    except InfersaveError as exc:
        status = getattr(exc, "exit_code", None)
        return {**info, "status": "infeasible" if status == 3 else "no_plan", "reason": str(exc).splitlines()[0]}
    ev = evaluate(alt, scenario, catalog)
    types: dict[str, list[str]] = {}
    for row in alt.fleet:
        types.setdefault(row.workload, [])
        if row.instance_type not in types[row.workload]:
            types[row.workload].append(row.instance_type)
    return {
        **info,
        "status": alt.status,
        "total_cost_usd": alt.total_cost_usd,
        "cost_usd_per_hour": alt.cost_usd_per_hour,
        "extra_cost_usd": alt.total_cost_usd - base.total_cost_usd,
        "types": types,
        "fleet": [{k: getattr(row, k) for k in FLEET_KEYS} for row in alt.fleet],
        "pairs": sorted([list(pair) for pair in type_set(alt)]),
        "evaluator_ok": ev.ok,
        **({"violations": [str(v) for v in ev.violations]} if not ev.ok else {}),
    }


def _on_demand(
    plan: Plan,
    scenario: Scenario,
    frame: pd.DataFrame,
    options: SolveOptions,
    clock: Clock,
    catalog: Catalog | None,
) -> dict[str, Any] | None:
    """Solve with on-demand offers only, for a plan that rents spot instances (else ``None``)."""
    if not any(r.market == "spot" for r in plan.fleet):
        return None
    od = scenario.model_copy(update={"markets": ["on_demand"]})
    if "on_demand" in scenario.markets:
        cands = frame[frame["market"] == "on_demand"]
    else:
        cands = planning_frame(od, catalog)[1]
    return _resolve(cands, od, options, clock, plan, catalog)


def _alternatives(
    plan: Plan,
    scenario: Scenario,
    frame: pd.DataFrame,
    options: SolveOptions,
    clock: Clock,
    catalog: Catalog | None,
    k: int,
) -> list[dict[str, Any]]:
    """Up to ``k`` plans, each the cheapest whose (workload, type) set differs from every earlier one."""
    seen: list[TypeSet] = [type_set(plan)]
    out = []
    for rank in range(2, k + 2):
        alt = _resolve(frame, scenario, options, clock, plan, catalog, nogoods=seen)
        out.append({"rank": rank, **alt})
        if alt.get("status") not in ("optimal", "feasible"):
            break
        seen.append(frozenset((k, t) for k, t in alt["pairs"]))
    return out


# ---- binding constraints ----------------------------------------------------------------------------------------
def without_limit(scenario: Scenario, path: str, where: str) -> Scenario:
    """``scenario`` without the fleet limit at ``path`` (only key ``where`` of a per-key quota)."""
    parts = path.split(".")
    if parts[0] == "workloads":
        i = int(parts[1])
        w = scenario.workloads[i].model_copy(update={parts[2]: None})
        return scenario.model_copy(update={"workloads": [*scenario.workloads[:i], w, *scenario.workloads[i + 1 :]]})
    value = getattr(scenario.limits, parts[1])
    loose = {k: v for k, v in value.items() if k != where} if isinstance(value, dict) else None
    return scenario.model_copy(update={"limits": scenario.limits.model_copy(update={parts[1]: loose})})


Relief = Callable[[str, str], "float | None"]


def _binding(
    row: Any, plan: Plan, frame: pd.DataFrame, scenario: Scenario, uses: list[LimitUse], relief: Relief
) -> dict[str, Any]:
    """Return the binding constraint of one fleet row (module docstring)."""
    pool = frame[frame["workload"] == row.workload]
    cap = capacity_per_instance(pool, scenario)
    price = pool["usd_per_hour"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(cap > 0, price / cap, np.inf)
    mine = np.ones(len(pool), dtype=bool)
    for key in KEYS:
        mine &= pool[key].to_numpy() == getattr(row, key)
    own = (
        float(unit[mine][0]) if mine.any() else float(row.usd_per_hour) / max(float(row.rate_rps) * row.replicas, 1e-12)
    )
    kind = "online" if row.kind == "online" else "offline"
    per = "$/h per req/s" if kind == "online" else "$ per request"
    idx = np.flatnonzero(unit < own * (1 - UNIT_REL_TOL))
    cheaper = pool.iloc[idx]
    info: dict[str, Any] = {"unit_cost": own, "unit": per, "cheaper_candidates": len(cheaper)}
    if cheaper.empty:
        constraint, why = _own_capacity_limit(row, pool, scenario)
        return {
            **info,
            "constraint": constraint,
            "reason": f"the cheapest capacity of all {len(pool)} candidates of {row.workload}; {why}",
            "removed_by": {},
        }
    bad = violations(cheaper, scenario)
    flags = bad.to_numpy(dtype=bool)
    first = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    names = list(bad.columns)
    removed: dict[str, int] = {}
    for j in first[first >= 0]:
        removed[names[j]] = removed.get(names[j], 0) + 1
    info["removed_by"] = dict(sorted(removed.items(), key=lambda kv: -kv[1]))
    order = np.argsort(unit[idx], kind="stable")
    best = _describe(cheaper.iloc[int(order[0])], float(unit[idx][order[0]]), per)
    j = int(first[order[0]])
    if (first >= 0).all():  # every cheaper candidate breaks a rule: the cheapest one's rule is what binds
        from formulations import checks

        rule = checks.rule(names[j])
        value = float(rule.values(cheaper.iloc[[int(order[0])]])[0])
        limit = float(rule.limits(cheaper.iloc[[int(order[0])]], scenario)[0])
        op = ">" if rule.sense == "<=" else "<"
        return {
            **info,
            "constraint": rule.name,
            "reason": f"the cheapest per unit, {best['text']}, has {rule.label} {value:,.4g} {rule.unit} {op} "
            f"{limit:,.4g} {rule.unit}",
            "cheapest": best,
        }
    allowed = cheaper[first < 0]
    first_allowed = allowed.iloc[int(np.argsort(unit_of(allowed, scenario), kind="stable")[0])]
    best = _describe(first_allowed, float(unit_of(first_allowed, scenario)), per)
    k_allowed = float(capacity_per_instance(first_allowed.to_frame().T, scenario)[0])
    own_cap = float(cap[mine][0]) if mine.any() else 0.0
    need = max(1, math.ceil(row.count * own_cap / k_allowed - UNIT_REL_TOL)) if k_allowed > 0 else 1
    saved = [
        (relief(path, key), path, words)
        for path, words, key in _tight_for(first_allowed, row, plan, scenario, uses, need)
    ]
    binding = [t for t in saved if t[0] is not None and t[0] > UNIT_REL_TOL * max(1.0, abs(plan.total_cost_usd))]
    if binding:
        saves, path, words = max(binding, key=lambda t: t[0] or 0.0)
        others = [p for _s, p, _w in saved if p != path]
        return {
            **info,
            "constraint": path,
            "reason": f"{best['text']} is allowed, but {words}; without that limit the plan costs ${saves:,.2f} less"
            + (f" (tight too: {', '.join(others)})" if others else ""),
            "cheapest": best,
            "saves_usd": saves,
            "also_tight": others,
        }
    note = f" ({', '.join(p for _s, p, _w in saved)} tight too, but removing it saves nothing)" if saved else ""
    return {
        **info,
        "constraint": "whole instances",
        "reason": f"{best['text']} is allowed and cheaper per unit, but instances are whole: this row covers the "
        f"rest of the demand for less than one more of it{note}",
        "cheapest": best,
    }


def _own_capacity_limit(row: Any, pool: pd.DataFrame, scenario: Scenario) -> tuple[str, str]:
    """Return what keeps the cheapest row from a larger batch (more capacity per instance at the same price)."""
    same = pool[
        (pool["instance_type"] == row.instance_type)
        & (pool["region"] == row.region)
        & (pool["market"] == row.market)
        & (pool["tp"] == row.tp)
        & (pool["batch_size"] > row.batch_size)
    ]
    w = next(x for x in scenario.workloads if x.name == row.workload)
    searched = w.batch_sizes or scenario.search.batch_sizes
    larger = [b for b in searched if b > row.batch_size]
    if not larger:
        field = "batch_sizes" if w.batch_sizes else "search.batch_sizes"
        return field, f"batch {row.batch_size} is the largest searched ({field}); its count is set by the demand"
    if same.empty:
        return "memory", (
            f"the KV cache of batch {larger[0]} fits no offload fraction on it (GPU and host memory); its count is "
            "set by the demand"
        )
    demand = "demand.online" if row.kind == "online" else "demand.offline_work"
    return demand, "its count is set by the demand"


def unit_of(cands: pd.DataFrame | pd.Series, scenario: Scenario) -> Any:
    """Return the price per unit of capacity of candidates (a table) or of one candidate (a row)."""
    table = cands.to_frame().T if isinstance(cands, pd.Series) else cands
    cap = capacity_per_instance(table, scenario)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(cap > 0, table["usd_per_hour"].to_numpy(dtype=float) / cap, np.inf)
    return float(unit[0]) if isinstance(cands, pd.Series) else unit


def ep_label(ep: int) -> str:
    """``, EP n`` for a candidate with expert parallelism, else nothing."""
    return f", EP {ep}" if ep > 1 else ""


def _describe(c: pd.Series, unit: float, per: str) -> dict[str, Any]:
    """Describe a candidate in words and numbers."""
    text = (
        f"{c['instance_type']} {c['market']} {c['region']} (TP {int(c['tp'])}{ep_label(int(c.get('ep', 1)))}, "
        f"batch {int(c['batch_size'])}, "
        f"{unit:,.4g} {per})"
    )
    return {
        "instance_type": str(c["instance_type"]),
        "market": str(c["market"]),
        "region": str(c["region"]),
        "tp": int(c["tp"]),
        "batch_size": int(c["batch_size"]),
        "offload_fraction": float(c["offload_fraction"]),
        "unit_cost": unit,
        "text": text,
    }


def _tight_for(
    d: pd.Series, row: Any, plan: Plan, scenario: Scenario, uses: list[LimitUse], need: int = 1
) -> list[tuple[str, str, str]]:
    """Return the fleet limits that stop one more ``d`` (or hold up ``row``).

    ``need``: instances of ``d`` that would carry this row's demand; a quota with less room than that stops
    ``d`` from replacing the row (the caller re-solves without it to see whether it saves money).

    Each is (scenario path, words, key of the limit as :class:`~solver.planning.evaluate.LimitUse` names it).
    """
    spot = d["market"] == "spot"
    family = str(d["instance_type"]).split(".")[0]
    one = {"instance_type": str(d["instance_type"]), "family": family, "region": str(d["region"])}
    price = float(d["usd_per_hour"])
    table = d.to_frame().T
    k_d = float(capacity_per_instance(table, scenario)[0])
    least = float(min_hours_per_instance(table, scenario)[0])
    fleet = plan.to_frame()
    found: list[tuple[str, str, str]] = []
    for u in uses:
        field = u.path.split(".")[-1]
        room = u.bound - u.used
        if field == "budget_usd_per_hour" and room < price:
            found.append(
                (u.path, f"the hourly budget has ${room:,.4g}/h left, less than one more at ${price:,.4g}/h", u.where)
            )
            continue
        if field == "budget_usd" and row.kind == "offline" and room < price * least:
            found.append(
                (u.path, f"the offline budget has ${room:,.4g} left, less than one more instance bills", u.where)
            )
            continue
        if field == "max_total_instances" and room < 1:
            found.append((u.path, f"the fleet is at its {u.bound:g} instances", u.where))
            continue
        quota_column = {
            "max_instances": "instance_type",
            "max_instances_per_family": "family",
            "max_instances_per_region": "region",
            "max_spot_instances": "instance_type",
            "max_spot_instances_per_region": "region",
        }.get(field)
        if quota_column is not None and u.where == one[quota_column] and room < need:
            if field.startswith("max_spot") and not spot:
                continue
            words = (
                f"{u.where} is at its quota of {u.bound:g}"
                if room < 1
                else (f"{u.where}'s quota of {u.bound:g} leaves room for {room:g}, and this row needs {need} of it")
            )
            found.append((u.path, words, u.where))
            continue
        if field == "max_instance_types" and u.where == row.workload and room < 1:
            used = set(fleet.loc[fleet["workload"] == row.workload, "instance_type"])
            if str(d["instance_type"]) not in used:
                found.append((u.path, f"{row.workload} already uses its {u.bound:g} instance type(s)", u.where))
                continue
        if u.where != row.workload:
            continue
        if field == "max_spot_share" and spot:
            total = float(capacity_terms(fleet[fleet["workload"] == row.workload], scenario, False).sum())
            s = u.bound / total if total > 0 else 0.0
            if u.used + k_d > s * (total + k_d) * (1 + UNIT_REL_TOL):
                found.append((u.path, f"the spot share of {row.workload} is capped at {s:.3g}", u.where))
                continue
        if field == "min_on_demand_share" and spot and row.market == "on_demand":
            mine = fleet[(fleet["workload"] == row.workload)]
            own = mine[(mine["instance_type"] == row.instance_type) & (mine["market"] == row.market)]
            per_instance = float(capacity_terms(own, scenario, True).sum()) / max(int(own["count"].sum()), 1)
            if u.used - per_instance < u.bound:
                found.append(
                    (u.path, f"the on-demand floor of {row.workload} needs this row's on-demand capacity", u.where)
                )
                continue
    return found


# ---- printing ---------------------------------------------------------------------------------------------------
def _money(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"${v:,.2f}"


def _alt_line(alt: dict[str, Any]) -> str:
    """Describe one re-solve in words."""
    if alt.get("status") not in ("optimal", "feasible"):
        return f"none ({alt.get('status')}: {alt.get('reason', '')})"
    types = "; ".join(f"{w}: {', '.join(t)}" for w, t in alt["types"].items())
    check = "evaluator ok" if alt["evaluator_ok"] else "EVALUATOR FAILED"
    return (
        f"{_money(alt['total_cost_usd'])} total ({'+' if alt['extra_cost_usd'] >= 0 else ''}"
        f"{_money(alt['extra_cost_usd'])}), {_money(alt['cost_usd_per_hour'])}/h [{types}]; {alt['status']}, {check}"
    )


def explanation_lines(explanation: dict[str, Any] | None) -> list[str]:
    """Return the explanation as lines of text for people (empty when there is none)."""
    if not explanation:
        return []
    lines: list[str] = []
    for i, r in enumerate(explanation.get("rows", [])):
        b = r["binding"]
        head = f"row {i} {r['workload']} on {r['instance_type']} {r['market']} {r['region']}"
        lines.append(f"{head}: bound by {b['constraint']}: {b['reason']}")
        if b.get("removed_by"):
            shown = ", ".join(f"{v} by {k}" for k, v in b["removed_by"].items())
            lines.append(f"  {b['cheaper_candidates']} cheaper candidates per unit; removed {shown}")
        lines.append(f"  runner-up without {r['instance_type']}: {_alt_line(r['runner_up'])}")
    od = explanation.get("on_demand")
    if od is not None:
        lines.append(f"on-demand only: {_alt_line(od)}")
    for alt in explanation.get("alternatives", []):
        lines.append(f"alternative {alt['rank']}: {_alt_line(alt)}")
    lines.append(
        f"explained in {explanation['seconds']:.2f} s (re-solves bounded by {explanation['time_limit_s']:g} s)"
    )
    return lines
