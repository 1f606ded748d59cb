"""The question ``recommend`` answers: one workload, one batch size, a TPS SLO; its task cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from solver.data.models import get_model
from solver.data.scenario import scenario_from_dict
from solver.errors import InputError
from solver.specs import ModelSpec, Scenario, Workload
from solver.tolerances import ceil_int

DEFAULT_BILLING = "per_hour"
"""The paper bills whole hours (``billed_hours = ceil(task_hours)``)."""


# ---- the question ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """What is asked: the scenario's single workload, its batch size, TPS SLO and task size."""

    scenario: Scenario
    workload: Workload
    model: ModelSpec
    batch_size: int
    tps_slo: float | None
    requests: int

    @property
    def task_tokens(self) -> int:
        """Tokens of the whole task: requests · (input + output)."""
        return self.requests * (self.workload.input_tokens + self.workload.output_tokens)

    @property
    def max_price_usd_per_hour(self) -> float | None:
        """InferSave's P_max (``limits.max_price_usd_per_hour``)."""
        return self.scenario.limits.max_price_usd_per_hour


def task_of(scenario: Scenario) -> Task:
    """Check that ``scenario`` asks InferSave's question and return it as a :class:`Task`.

    Raises
    ------
    InputError
        More than one workload, or not exactly one batch size.
    """
    if len(scenario.workloads) != 1:
        raise InputError("workloads", f"recommend answers one workload; the scenario has {len(scenario.workloads)}")
    w = scenario.workloads[0]
    batches = sorted(set(w.batch_sizes or scenario.search.batch_sizes))
    if len(batches) != 1:
        raise InputError(
            "workloads.0.batch_sizes", f"recommend needs exactly one batch size (InferSave's input), got {batches}"
        )
    requests = w.requests if w.requests is not None else batches[0]
    return Task(
        scenario=scenario,
        workload=w,
        model=get_model(w.model, field="workloads.0.model"),
        batch_size=batches[0],
        tps_slo=w.slo.tps,
        requests=int(requests),
    )


def billed_hours(task_hours: np.ndarray, billing: str) -> np.ndarray:
    """Hours charged for ``task_hours``: rounded up to whole hours (``per_hour``) or as they are."""
    if billing == "per_hour":
        return ceil_int(task_hours)
    return np.asarray(task_hours, dtype=float)


def task_costs(tps: np.ndarray, usd_per_hour: np.ndarray, task: Task, billing: str) -> dict[str, np.ndarray]:
    """Return the task's run time, billed hours, cost and cost efficiency for each predicted TPS.

    Parameters
    ----------
    tps
        Predicted TPS of each instance (InferSave's: batch · (input + output) / end-to-end time).
    usd_per_hour
        Price of each instance.
    task
        The question (task tokens and TPS SLO).
    billing
        ``per_hour`` (whole hours) or ``per_second``.

    Returns
    -------
    dict
        ``task_hours`` = task tokens / (tps · 3600), ``billed_hours`` (:func:`billed_hours`), ``task_cost_usd`` =
        billed hours · $/h, ``effective_tps`` = min(tps, SLO), ``cost_efficiency`` = effective TPS / task cost.
        NaN where the TPS is not a positive number.
    """
    tps = np.asarray(tps, dtype=float)
    price = np.asarray(usd_per_hour, dtype=float)
    valid = np.isfinite(tps) & (tps > 0)
    safe = np.where(valid, tps, 1.0)
    hours = np.where(valid, task.task_tokens / (safe * 3600.0), np.nan)
    billed = billed_hours(hours, billing)
    cost = billed * price
    effective = np.minimum(tps, task.tps_slo) if task.tps_slo is not None else tps.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        efficiency = np.where(valid, effective / cost, np.nan)
    return {
        "task_hours": hours,
        "billed_hours": billed,
        "task_cost_usd": cost,
        "effective_tps": effective,
        "cost_efficiency": efficiency,
    }


# ---- building the question from CLI values -------------------------------------------------------------
def recommend_scenario(base: Scenario | None, values: Mapping[str, Any]) -> Scenario:
    """Return the scenario that ``infersave recommend`` answers: ``base`` with CLI values applied.

    Parameters
    ----------
    base
        A scenario file's content, or ``None`` to build one from ``values`` alone.
    values
        CLI values by flag name (``None`` = not given): ``model``, ``batch_size``, ``input_len``,
        ``output_len``, ``tps_slo``, ``max_price``, ``instances`` (list), ``catalog``, ``region`` (list),
        ``market``, ``engine``, ``requests``, ``billing``.

    Without ``base``, ``model``, ``batch_size``, ``input_len``, ``output_len`` and ``tps_slo`` are required;
    the task is ``requests`` requests (default one batch), billed per hour, with the deadline its billed time
    at exactly the SLO (used by the ``milp`` policy).

    Raises
    ------
    InputError
        A required value is missing, or the result does not validate (the message names the field).
    """
    v = {k: val for k, val in values.items() if val is not None}
    if base is None:
        for key in ("model", "batch_size", "input_len", "output_len", "tps_slo"):
            if key not in v:
                raise InputError(key, "required (or give a base scenario)")
        data: dict[str, Any] = {"billing": DEFAULT_BILLING, "workloads": [{"name": "recommend"}]}
    else:
        if len(base.workloads) != 1:
            raise InputError("workloads", f"recommend answers one workload; the scenario has {len(base.workloads)}")
        data = base.model_dump(mode="json", exclude_unset=False)
    workload: dict[str, Any] = dict(data["workloads"][0]) if data.get("workloads") else {"name": "recommend"}
    for key, target in (("model", "model"), ("input_len", "input_tokens"), ("output_len", "output_tokens")):
        if key in v:
            workload[target] = v[key]
    if "batch_size" in v:
        workload["batch_sizes"] = [v["batch_size"]]
    if "tps_slo" in v:
        workload["slo"] = {**(workload.get("slo") or {}), "tps": v["tps_slo"]}
    if "requests" in v or workload.get("requests") is None:
        batch = (workload.get("batch_sizes") or [1])[0]
        workload["requests"] = v.get("requests", batch)
        workload["rate_rps"] = None
    if "max_price" in v:
        data["limits"] = {**dict(data.get("limits") or {}), "max_price_usd_per_hour": v["max_price"]}
    for key, target in (("instances", "instances"), ("catalog", "catalog"), ("region", "regions"),
                        ("engine", "engine"), ("billing", "billing")):  # fmt: skip
        if key in v:
            data[target] = v[key]
    if "market" in v:
        data["markets"] = [v["market"]]
    workload["deadline_h"] = _deadline_h(workload, v, base)
    data["workloads"] = [workload]
    return scenario_from_dict(data)


def _deadline_h(workload: Mapping[str, Any], v: Mapping[str, Any], base: Scenario | None) -> float:
    """Return the base deadline if no token/SLO value changed, else the billed hours at the SLO."""
    changed = any(k in v for k in ("input_len", "output_len", "tps_slo", "requests", "batch_size"))
    if base is not None and not changed and workload.get("deadline_h"):
        return float(workload["deadline_h"])
    tps = (workload.get("slo") or {}).get("tps")
    if tps is None:
        return 1.0
    try:
        tokens = int(workload["requests"]) * (int(workload["input_tokens"]) + int(workload["output_tokens"]))
        hours = tokens / (float(tps) * 3600.0)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0  # validation of the workload reports the bad field
    return float(max(1.0, float(ceil_int(hours))))
