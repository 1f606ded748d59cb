"""Recommendation policies, in a registry: how the instances are chosen (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solver.apps.recommend.result import Choice, Rejection, choice_of_row, slo_reason
from solver.apps.recommend.screen import screen
from solver.apps.recommend.task import Task, task_costs
from solver.data.scenario import scenario_from_dict
from solver.errors import InfeasibleError, InputError, UnknownNameError
from solver.specs import SolveOptions


# ---- policies ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What a policy gets: the task, solver options (``milp``) and how many choices are wanted."""

    task: Task
    options: SolveOptions | None
    top_k: int | None


PolicyResult = tuple[list[Choice], list[Rejection]]


@dataclass(frozen=True)
class Policy:
    """A named way of choosing instances; ``select`` returns (choices best first, rejected)."""

    name: str
    summary: str
    select: Callable[[Context], PolicyResult]


def _ranked_by_cost_efficiency(ctx: Context, allow_offload: bool) -> PolicyResult:
    """InferSave steps 1-5, with or without KV offloading."""
    frame = screen(ctx.task.scenario, allow_offload=allow_offload)
    passed = frame[frame["reason"] == ""]
    ok = passed[passed["meets_slo"]]
    ok = ok.sort_values(
        ["cost_efficiency", "tps", "usd_per_hour", "instance_type"],
        ascending=[False, False, True, True],
        kind="stable",
    )
    rejected = [
        Rejection(str(r["instance_type"]), str(r["reason"])) for r in frame[frame["reason"] != ""].to_dict("records")
    ]
    rejected += [
        Rejection(str(r["instance_type"]), slo_reason(r, ctx.task.tps_slo))
        for r in passed[~passed["meets_slo"]].to_dict("records")
    ]
    return [choice_of_row(r) for r in ok.to_dict("records")], rejected


def _infersave(ctx: Context) -> PolicyResult:
    """Run the paper's algorithm (module docstring)."""
    return _ranked_by_cost_efficiency(ctx, allow_offload=True)


def _no_offload(ctx: Context) -> PolicyResult:
    """InferSave without KV offloading."""
    return _ranked_by_cost_efficiency(ctx, allow_offload=False)


def _max_performance(ctx: Context) -> PolicyResult:
    """Most powerful first: predicted TPS, then peak FP16 TFLOPS, then the lower price."""
    frame = screen(ctx.task.scenario, allow_offload=True)
    passed = frame[frame["reason"] == ""].sort_values(
        ["tps", "peak_tflops", "usd_per_hour", "instance_type"],
        ascending=[False, False, True, True],
        kind="stable",
    )
    rejected = [
        Rejection(str(r["instance_type"]), str(r["reason"])) for r in frame[frame["reason"] != ""].to_dict("records")
    ]
    return [choice_of_row(r) for r in passed.to_dict("records")], rejected


def _milp(ctx: Context) -> PolicyResult:
    """Solve the fleet MILP restricted to one instance; later choices re-solve without the earlier ones."""
    from solver.planning.planner import plan

    task = ctx.task
    if task.tps_slo is None:
        raise InputError("tps_slo", "the milp policy needs a TPS SLO")
    frame = screen(task.scenario, allow_offload=True)
    by_type = {str(r["instance_type"]): r for r in frame.to_dict("records")}
    remaining = list(by_type)
    wanted = ctx.top_k if ctx.top_k is not None else len(remaining)
    base = task.scenario.model_dump(mode="json")
    base["limits"] = {**base["limits"], "max_total_instances": 1}
    choices: list[Choice] = []
    blocked = ""
    while remaining and len(choices) < wanted:
        sc = scenario_from_dict({**base, "instances": remaining})
        try:
            fleet = plan(sc, ctx.options).fleet
        except InfeasibleError as exc:
            blocked = str(exc)
            break
        if not fleet:
            break
        row = fleet[0]
        screened = by_type[row.instance_type]
        costs = task_costs(np.array([row.tps]), np.array([row.usd_per_hour]), task, sc.billing)
        c = {k: float(v[0]) for k, v in costs.items()}
        choices.append(
            Choice(
                instance_type=row.instance_type,
                offload_fraction=row.offload_fraction,
                predicted_tps=row.tps,
                usd_per_hour=row.usd_per_hour,
                cost_efficiency=c["cost_efficiency"],
                meets_slo=row.tps >= task.tps_slo,
                region=row.region,
                market=row.market,
                gpu=str(screened["gpu"]),
                effective_tps=c["effective_tps"],
                task_hours=c["task_hours"],
                billed_hours=c["billed_hours"],
                task_cost_usd=c["task_cost_usd"],
            )
        )
        remaining.remove(row.instance_type)
    rejected = []
    for name in remaining:  # screened out or below the SLO: rejected even when top_k choices were found
        r = by_type[name]
        if r["reason"]:
            reason = str(r["reason"])
        elif not r["meets_slo"]:
            reason = slo_reason(r, task.tps_slo)
        elif len(choices) < wanted:
            reason = f"no one-instance plan: {blocked}" if blocked else "no one-instance plan"
        else:
            continue  # qualifies, but top_k choices were found before it
        rejected.append(Rejection(name, reason))
    return choices, rejected


POLICIES: dict[str, Policy] = {
    "milp": Policy("milp", "our fleet MILP restricted to one instance", _milp),
    "infersave": Policy(
        "infersave", "the paper's algorithm: cheapest per effective TPS, KV offload as needed", _infersave
    ),
    "max-performance": Policy("max-performance", "the most powerful instance (paper's baseline)", _max_performance),
    "no-offload": Policy("no-offload", "InferSave without KV offloading (paper's baseline)", _no_offload),
}
"""Recommendation policies by name; the first is the default (issue 5: ``milp`` is the default)."""
DEFAULT_POLICY = next(iter(POLICIES))
"""``milp``: our planner restricted to one instance."""


def get_policy(name: str) -> Policy:
    """Return the policy called ``name``; raises :class:`UnknownNameError` listing the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        raise UnknownNameError("policy", "policy", name, POLICIES) from None
