"""Re-check a plan with the exact performance model: memory, every SLO, demand, limits and budgets.

:func:`evaluate` does not trust the numbers stored in the plan: it looks each fleet row's hardware and price
up in the catalog again and re-runs :func:`solver.performance.model.predict_frame` at the row's (tp, batch,
offload fraction), in the workload's batching mode (:func:`solver.planning.candidates.batching_mode`: continuous
for online workloads on serving engines, static otherwise). Offline rows are checked with the rules of
``formulations/README.md``: one static batch must end within the time an instance can work
(``e2e_s <= 3600 · theta_w · H_w``), the requests completed are counted without each instance's last,
unfinished batch, and every rented instance bills at least the billing minimum and one whole batch, with no
more instances than its hours need (``count <= ceil(instance_hours / H_w)``, except on types with a
``min_instances`` floor, whose extra instances are billed by the previous rule). A returned plan that breaks
anything here is a planner bug.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations import checks
from formulations.billing import MIN_BILLED_H, offline_hours
from solver.data.catalog import Catalog
from solver.planning.candidates import mixed_tokens, offers, predict_workload, replicas_per_instance
from solver.planning.classes import expand
from solver.planning.plan import Plan
from solver.specs import Scenario
from solver.tolerances import EVALUATE_REL_TOL, WHOLE_HOURS_TOL, ceil_int

KEYS = ["workload", "instance_type", "region", "market", "tp", "ep", "batch_size", "offload_fraction"]


@dataclass(frozen=True)
class Violation:
    """One broken check: where, what, the value found and the limit."""

    check: str
    where: str
    value: float
    limit: float

    def __str__(self) -> str:
        return f"{self.where}: {self.check} {self.value:.6g} vs limit {self.limit:.6g}"


@dataclass(frozen=True)
class Evaluation:
    """The evaluator's report; ``ok`` when there is no violation."""

    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        """True when the plan passes every check."""
        return not self.violations

    def __str__(self) -> str:
        return "ok" if self.ok else "; ".join(str(v) for v in self.violations)


def _exceeds(value: float, limit: float) -> bool:  # the scalar form of CandidateRule.broken
    """``value > limit`` beyond the relative tolerance (NaN value counts as exceeding)."""
    return not (value <= limit + EVALUATE_REL_TOL * max(1.0, abs(limit)))


def evaluate(
    plan: Plan,
    scenario: Scenario,
    catalog: Catalog | None = None,
    performance: pd.DataFrame | None = None,
) -> Evaluation:
    """Check ``plan`` against ``scenario`` with the exact (non-linearised) model.

    Parameters
    ----------
    plan
        The plan to check.
    scenario
        The scenario it was planned for.
    catalog
        Catalog to look hardware and prices up in (default ``scenario.catalog``).
    performance
        A candidate table to take hardware, prices and performance from instead of the catalog and the
        performance model (for planner tests on hand-made tables); rows are matched on
        (workload, instance_type, region, market, tp, batch_size, offload_fraction).

    Returns
    -------
    Evaluation
        Every violation found (memory, SLOs, demand, deadlines, billing, limits, budgets).
    """
    scenario = expand(scenario).scenario  # request classes: one per size bucket (plain workloads unchanged)
    fleet = plan.to_frame()
    out: list[Violation] = []
    if fleet.empty:
        for w in scenario.workloads:
            out.append(Violation("demand", w.name, 0.0, float(w.rate_rps or w.requests or 0)))
        return Evaluation(tuple(out))
    shared = fleet["pool"].to_numpy() >= 0 if "pool" in fleet.columns else np.zeros(len(fleet), dtype=bool)
    pool_rows: pd.DataFrame = pd.DataFrame()
    routed: dict[str, float] = {}
    if shared.any():
        pool_rows, routed, pool_out = _pools(fleet[shared].reset_index(drop=True), scenario, catalog, performance)
        out.extend(pool_out)
        fleet = fleet[~shared].reset_index(drop=True)
    if fleet.empty:
        out.extend(_demand(fleet.assign(rate_rps=[], replicas=[]), scenario, routed))
        out.extend(_limits(pool_rows, scenario))
        return Evaluation(tuple(out))
    rows = _exact_rows(fleet, scenario, catalog, performance)
    where = [
        f"row {i} ({r.workload} on {r.count}x {r.instance_type} {r.market} {r.region})" for i, r in rows.iterrows()
    ]
    known = np.isfinite(rows["usd_per_hour"].to_numpy(dtype=float))
    for i in np.flatnonzero(~known):
        out.append(Violation("offer not in catalog", where[i], math.nan, math.nan))
    counts = rows["count"].to_numpy(dtype=float)
    for i in np.flatnonzero(known & ((counts < 1) | (counts != np.round(counts)))):
        out.append(Violation("count not a positive integer", where[i], float(counts[i]), 1.0))
    price, asked = rows["usd_per_hour"].to_numpy(dtype=float), rows["plan_usd_per_hour"].to_numpy(dtype=float)
    for i in np.flatnonzero(known & (np.abs(price - asked) > EVALUATE_REL_TOL * price)):
        out.append(Violation("price differs from catalog", where[i], float(asked[i]), float(price[i])))
    checked = rows[known]
    for r in checks.rules():
        limit, value = r.limits(checked, scenario), r.values(checked)
        for k in np.flatnonzero(r.broken(checked, scenario, EVALUATE_REL_TOL)):
            out.append(Violation(r.name, where[int(checked.index[k])], float(value[k]), float(limit[k])))
    out.extend(_demand(rows, scenario, routed))
    out.extend(_limits(pd.concat([rows, pool_rows], ignore_index=True) if len(pool_rows) else rows, scenario))
    return Evaluation(tuple(out))


def _pools(
    fleet: pd.DataFrame, scenario: Scenario, catalog: Catalog | None, performance: pd.DataFrame | None
) -> tuple[pd.DataFrame, dict[str, float], list[Violation]]:
    """Check the shared rows (``formulations/README.md``, "Shared replicas", (20)-(22)).

    Per row and served class: the class predicted in the mix of the classes the row actually serves (prompt
    raised by :func:`solver.planning.candidates.mixed_tokens` to their ceiling) meets every per-candidate rule;
    the class predicted alone at the row's configuration fits memory (the mix needs no more than its most
    demanding class); the row's load ``sum_k x_k / r_k`` is at most ``u · rho · N``. Returns the rows (catalog
    price, count: for the fleet limits), the rate routed to each class, and the violations.
    """
    out: list[Violation] = []
    wl = {w.name: w for w in scenario.workloads}
    u = scenario.search.utilisation_cap
    routed: dict[str, float] = {}
    limit_rows = []
    off = offers(scenario, catalog) if performance is None else None
    rule_list = checks.rules()
    memory_rules = [r for r in rule_list if r.name.startswith("memory.")]
    for i, row in fleet.iterrows():
        where = (
            f"shared row {i} ({row['workload']} on {row['count']}x {row['instance_type']} {row['market']} "
            f"{row['region']})"
        )
        split = [(str(k), float(v)) for k, v in row["split"]]
        unknown = [k for k, _v in split if k not in wl or wl[k].kind != "online"]
        if unknown or not split:
            out.append(Violation(f"split names no online class ({', '.join(unknown) or 'empty'})", where, 0.0, 0.0))
            continue
        for k, v in split:
            routed[k] = routed.get(k, 0.0) + v
            if v < 0:
                out.append(Violation("split rate negative", where, v, 0.0))
        cfg = {key: row[key] for key in ("instance_type", "region", "market", "tp", "batch_size", "offload_fraction")}
        cfg["ep"] = int(row["ep"]) if "ep" in row.index else 1
        if performance is not None:
            perf = performance[performance["pool"].to_numpy() >= 0] if "pool" in performance else performance
            if "ep" not in perf.columns:
                perf = perf.assign(ep=1)
            match = perf
            for key, value in cfg.items():
                match = match[match[key] == value]
            found = match[match["workload"].isin([k for k, _v in split])].drop_duplicates("workload")
            mixed = found.set_index("workload")
            alone = mixed
            price = float(found["usd_per_hour"].iloc[0]) if len(found) else math.nan
        else:
            assert off is not None
            hw = off[(off["instance_type"] == cfg["instance_type"]) & (off["region"] == cfg["region"])]
            hw = hw[hw["market"] == cfg["market"]]
            if hw.empty:
                out.append(Violation("offer not in catalog", where, math.nan, math.nan))
                continue
            price = float(hw["usd_per_hour"].iloc[0])
            base = hw.iloc[[0]].assign(
                tp=cfg["tp"], batch_size=cfg["batch_size"], offload_fraction=cfg["offload_fraction"], ep=cfg["ep"]
            )
            ceil_in = max(wl[k].input_tokens for k, _v in split)
            ceil_out = max(wl[k].output_tokens for k, _v in split)
            parts_mixed, parts_alone = [], []
            for k, _v in split:
                w = wl[k]
                prompt = mixed_tokens(ceil_in, ceil_out, w.output_tokens)
                parts_mixed.append(
                    predict_workload(base, w.model_copy(update={"input_tokens": prompt}), scenario).assign(workload=k)
                )
                parts_alone.append(predict_workload(base, w, scenario).assign(workload=k))
            mixed = pd.concat(parts_mixed).set_index("workload")
            alone = pd.concat(parts_alone).set_index("workload")
            mixed["tps"] = (
                mixed["batch_size"]
                * pd.Series({k: wl[k].input_tokens + wl[k].output_tokens for k, _v in split})
                / mixed["e2e_s"]
            )
        if abs(price - float(row["usd_per_hour"])) > EVALUATE_REL_TOL * price:
            out.append(Violation("price differs from catalog", where, float(row["usd_per_hour"]), price))
        count = float(row["count"])
        if count < 1 or count != round(count):
            out.append(Violation("count not a positive integer", where, count, 1.0))
        missing = [k for k, _v in split if k not in mixed.index]
        if missing:
            out.append(Violation(f"no shared configuration for {', '.join(missing)}", where, math.nan, math.nan))
            continue
        order = [k for k, _v in split]  # rows in the split's order (the load below pairs them)
        mixed = mixed.loc[order].reset_index()
        alone = alone.loc[order].reset_index()
        for r in rule_list:
            frame = alone if r in memory_rules else mixed
            limit, value = r.limits(frame, scenario), r.values(frame)
            served = frame["workload"].tolist()
            for j in np.flatnonzero(r.broken(frame, scenario, EVALUATE_REL_TOL)).tolist():
                out.append(Violation(r.name, f"{where}, class {served[j]}", float(value[j]), float(limit[j])))
        rate = (mixed["batch_size"] / mixed["e2e_s"]).to_numpy(dtype=float)
        rho = (
            float(replicas_per_instance(mixed.iloc[[0]])[0])
            if performance is None
            else float(mixed["replicas"].iloc[0])
        )
        load = float(sum(v / r for (_k, v), r in zip(split, rate, strict=True)))
        if _exceeds(load, u * rho * count):
            out.append(Violation("sharing.capacity (sum_k x_k / r_k <= u rho N)", where, load, u * rho * count))
        limit_rows.append(
            {
                "instance_type": cfg["instance_type"],
                "region": cfg["region"],
                "count": count,
                "usd_per_hour": price,
                "instance_hours": math.nan,
            }
        )
    return pd.DataFrame(limit_rows), routed, out


def _exact_rows(
    fleet: pd.DataFrame, scenario: Scenario, catalog: Catalog | None, performance: pd.DataFrame | None
) -> pd.DataFrame:
    """Fleet rows with hardware, catalog price and freshly predicted performance columns."""
    plan_cols = fleet[[*KEYS, "count", "instance_hours", "usd_per_hour"]].rename(
        columns={"usd_per_hour": "plan_usd_per_hour"}
    )
    if performance is not None:
        if "ep" not in performance.columns:  # a hand-made table without expert parallelism
            performance = performance.assign(ep=1)
        perf = performance.drop_duplicates(KEYS)
        merged = plan_cols.merge(perf, on=KEYS, how="left")
    else:
        off = offers(scenario, catalog)
        hw = plan_cols.merge(off, on=["instance_type", "region", "market"], how="left")
        parts = []
        wl = {w.name: w for w in scenario.workloads}
        for name, part in hw.groupby("workload", sort=False):
            known = part["gpu"].notna()
            w = wl[str(name)]
            index = [x.name for x in scenario.workloads].index(w.name)
            predicted = predict_workload(
                part[known].drop(columns=["workload"]), w, scenario, field=f"workloads.{index}.model"
            )
            predicted.insert(0, "workload", name)
            parts.append(pd.concat([predicted, part[~known]], ignore_index=False))
        merged = pd.concat(parts).sort_index()
    merged["usd_per_hour"] = merged["usd_per_hour"].astype(float)
    if performance is None or "replicas" not in merged:
        merged["replicas"] = replicas_per_instance(merged)
    if performance is None or "rate_rps" not in merged:
        merged["rate_rps"] = merged["batch_size"].to_numpy(dtype=float) / merged["e2e_s"].to_numpy(dtype=float)
    return merged.reset_index(drop=True)


def _demand(rows: pd.DataFrame, scenario: Scenario, routed: dict[str, float] | None = None) -> list[Violation]:
    """Online rate under the utilisation cap (plus what shared rows carry: ``routed``); offline rules."""
    out = []
    u = scenario.search.utilisation_cap
    routed = routed or {}
    for w in scenario.workloads:
        part = rows[rows["workload"] == w.name] if len(rows) else rows
        rate = (part["rate_rps"] * part["replicas"]).to_numpy(dtype=float)
        if w.kind == "online":
            capacity = float((u * rate * part["count"].to_numpy(dtype=float)).sum()) + routed.get(w.name, 0.0)
            if _exceeds(float(w.rate_rps or 0.0), capacity):
                out.append(Violation("demand.online (req/s at the utilisation cap)", w.name, capacity, w.rate_rps or 0))
            continue
        big_h, theta = offline_hours(scenario, w)
        hours = part["instance_hours"].to_numpy(dtype=float)
        counts = part["count"].to_numpy(dtype=float)
        batch = (part["batch_size"] * part["replicas"]).to_numpy(dtype=float)
        e2e = part["e2e_s"].to_numpy(dtype=float)
        # completed requests: every instance's last, unfinished batch is not counted
        work = float((3600.0 * theta * rate * hours - batch * counts).sum())
        if _exceeds(float(w.requests or 0), work):
            out.append(Violation("demand.offline_work (requests)", w.name, work, float(w.requests or 0)))
        least = np.maximum(MIN_BILLED_H[scenario.billing], e2e / (3600.0 * theta))
        types = part["instance_type"].to_numpy()
        floors = {k for k, v in scenario.limits.min_instances.items() if v > 0}
        for k in range(len(part)):
            if _exceeds(hours[k], big_h * counts[k]):
                out.append(Violation("demand.offline_hours (deadline)", w.name, hours[k], big_h * counts[k]))
            if counts[k] > 0 and not hours[k] > 0:
                out.append(Violation("demand.offline_idle (instances without hours)", w.name, hours[k], counts[k]))
            needed = int(ceil_int(hours[k] / big_h)) if hours[k] > 0 else 0
            if counts[k] > needed and types[k] not in floors:  # a min_instances floor may need more (billed)
                out.append(Violation("demand.offline_count (more than ceil(hours / H))", w.name, counts[k], needed))
            if _exceeds(least[k] * counts[k], hours[k]):
                out.append(
                    Violation(
                        "demand.offline_min_hours (billing minimum, one batch)", w.name, hours[k], least[k] * counts[k]
                    )
                )
            if scenario.billing == "per_hour" and abs(hours[k] - round(hours[k])) > WHOLE_HOURS_TOL:
                out.append(Violation("billing.per_hour (whole hours)", w.name, hours[k], round(hours[k])))
    return out


@dataclass(frozen=True)
class LimitUse:
    """How much of one fleet limit a plan uses: ``used`` against ``bound`` (a floor when ``floor``)."""

    path: str
    where: str
    used: float
    bound: float
    floor: bool = False

    @property
    def broken(self) -> bool:
        """True when the plan misses the limit beyond the evaluator's tolerance."""
        return _exceeds(-self.used, -self.bound) if self.floor else _exceeds(self.used, self.bound)


def limit_uses(rows: pd.DataFrame, scenario: Scenario) -> list[LimitUse]:
    """Every fleet limit the scenario sets (:data:`formulations.checks.FLEET_LIMITS`), as used by the fleet ``rows``.

    ``rows`` needs ``count``, ``instance_hours``, ``usd_per_hour``, ``instance_type``, ``region``, ``market``,
    ``workload`` and, for the spot shares (23)-(24), ``rate_rps``, ``replicas`` and ``batch_size``. A share is
    reported as its two sides: (23) spot capacity against ``s`` × the workload's capacity, (24) on-demand work
    against ``s'`` × demand.
    """
    lim = scenario.limits
    out: list[LimitUse] = []
    counts = rows["count"].to_numpy(dtype=float)
    price = rows["usd_per_hour"].to_numpy(dtype=float)
    spot = (rows["market"] == "spot").to_numpy() if "market" in rows else np.zeros(len(rows), dtype=bool)
    keys = {
        "instance_type": rows["instance_type"],
        "family": rows["instance_type"].str.split(".").str[0],
        "region": rows["region"],
    }
    for fl in checks.scenario_limits_set(scenario):
        value = fl.value(lim)
        if fl.kind in ("share", "share_floor"):
            out.extend(_share_uses(rows, scenario, fl, float(value)))  # type: ignore[arg-type]
            continue
        if fl.kind == "types":
            for i, bound in fl.per_workload(scenario).items():
                w = scenario.workloads[i]
                kinds = rows.loc[(rows["workload"] == w.name).to_numpy() & (counts > 0), "instance_type"].nunique()
                out.append(LimitUse(f"workloads.{i}.{fl.field}", w.name, float(kinds), float(bound)))
            continue
        if isinstance(value, dict) and fl.column is not None:
            market = spot if fl.market == "spot" else np.ones(len(rows), dtype=bool)
            for key, bound in value.items():
                total = float(counts[(keys[fl.column] == key).to_numpy() & market].sum())
                out.append(LimitUse(fl.path, key, total, float(bound), floor=fl.kind == "floor"))
            continue
        if fl.field == "budget_usd":
            used, where = float(price @ np.nan_to_num(rows["instance_hours"].to_numpy(dtype=float))), "offline jobs"
        else:
            used, where = float(price @ counts if fl.kind == "budget" else counts.sum()), "fleet"
        if value is not None and not isinstance(value, dict):
            out.append(LimitUse(fl.path, where, used, float(value)))
    return out


def capacity_terms(rows: pd.DataFrame, scenario: Scenario, completed: bool) -> np.ndarray:
    """Per fleet row, its capacity as rows (23)-(24) count it.

    Online ``u · rate_rps · replicas · count`` (requests/s at the utilisation cap); offline the requests its
    billed hours can do, ``3600 · theta_w · rate_rps · replicas · instance_hours``, less one batch per instance
    when ``completed`` (row (9)'s completed work).
    """
    u = scenario.search.utilisation_cap
    wl = {w.name: w for w in scenario.workloads}
    rate = (rows["rate_rps"] * rows["replicas"]).to_numpy(dtype=float)
    counts = rows["count"].to_numpy(dtype=float)
    hours = np.nan_to_num(rows["instance_hours"].to_numpy(dtype=float))
    batch = (rows["batch_size"] * rows["replicas"]).to_numpy(dtype=float)
    out = np.zeros(len(rows))
    for k, name in enumerate(rows["workload"].to_numpy()):
        w = wl[str(name)]
        if w.kind == "online":
            out[k] = u * rate[k] * counts[k]
        else:
            theta = offline_hours(scenario, w)[1]
            out[k] = 3600.0 * theta * rate[k] * hours[k] - (batch[k] * counts[k] if completed else 0.0)
    return out


def _share_uses(rows: pd.DataFrame, scenario: Scenario, fl: checks.FleetLimit, share: float) -> list[LimitUse]:
    """(23) spot capacity ≤ s · capacity, (24) on-demand completed work ≥ s' · demand, per workload."""
    spot = (rows["market"] == "spot").to_numpy()
    names = rows["workload"].to_numpy()
    out = []
    floor = fl.kind == "share_floor"
    cap = capacity_terms(rows, scenario, completed=floor)
    for w in scenario.workloads:
        mine = names == w.name
        if floor:
            used, bound = float(cap[mine & ~spot].sum()), share * float(w.rate_rps or w.requests or 0)
        else:
            used, bound = float(cap[mine & spot].sum()), share * float(cap[mine].sum())
            if not (mine & spot).any():
                continue
        out.append(LimitUse(fl.path, w.name, used, bound, floor=floor))
    return out


def _limits(rows: pd.DataFrame, scenario: Scenario) -> list[Violation]:
    """Every fleet-level limit of :data:`formulations.checks.FLEET_LIMITS` the scenario sets, that the plan breaks."""
    return [Violation(u.path, u.where, u.used, u.bound) for u in limit_uses(rows, scenario) if u.broken]
