"""``infersave simulate``: simulate a plan's fleet under each workload's arrivals and report SLO attainment.

The command's logic; ``solver/apps/cli.py`` only registers it. The plan is read from ``--plan`` (as
``infersave plan --json`` writes it) or made from the scenario first. The table shows, per workload and SLO,
the limit, the statistic it is checked at (its percentile, or the mean), the simulated value, p50 and p99,
and whether it is met; then goodput and, for offline jobs, the makespan against the deadline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from solver.errors import InputError
from solver.simulation.results import SimulationResult


def load_plan(plan_file: str, scenario: Any) -> Any:
    """Read a plan JSON and check that its workloads belong to ``scenario`` (one-line errors)."""
    from solver.planning.plan import Plan

    try:
        payload = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(plan_file, f"cannot read: {exc.__class__.__name__}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(plan_file, f"not valid JSON ({str(exc)[:80]})") from None
    from solver.planning.classes import expand

    saved = Plan.from_dict(payload, field=plan_file)
    names = {w.name for w in expand(scenario).scenario.workloads}  # workloads, or their size buckets' classes
    for i, row in enumerate(saved.fleet):
        if row.split:  # the classes a row serves (a shared row's workload joins its sources with "+")
            for k, (name, _rate) in enumerate(row.split):
                if name not in names:
                    where = f"{plan_file}: fleet.{i}.split.{k}"
                    raise InputError(where, f"{name!r} is not a workload (or request class) of the scenario")
        elif row.workload not in names:
            raise InputError(f"{plan_file}: fleet.{i}.workload", f"{row.workload!r} is not a workload of the scenario")
    return saved


def simulate(scenario: Any, plan: Any = None, *, options: Any = None, **settings: Any) -> SimulationResult:
    """Simulate ``plan`` (default: ``solver.plan(scenario, options)`` first).

    ``settings`` as in :func:`solver.simulation.fleet.simulate` (``duration_s``, ``warmup_s``, ``seed``,
    ``routing``, ``trace``, ``chunked_prefill``).
    """
    from solver.planning.planner import plan as make_plan
    from solver.simulation.arrivals import read_trace
    from solver.simulation.fleet import simulate as simulate_plan

    trace = settings.get("trace")
    if isinstance(trace, str | Path):  # a bad trace is reported before any planning
        settings["trace"] = read_trace(trace)
    if plan is None:
        plan = make_plan(scenario, options)
    return simulate_plan(scenario, plan, **settings)


def simulate_files(
    scenario_file: str | None,
    plan_file: str | None = None,
    *,
    duration_s: float | None = None,
    seed: int = 0,
    trace: str | None = None,
    routing: str = "jsq",
    chunked_prefill: bool = False,
) -> SimulationResult:
    """Load the scenario (and plan, and trace), simulate, and return the result."""
    from solver.data.scenario import load_scenario

    scenario = load_scenario(scenario_file)
    plan = load_plan(plan_file, scenario) if plan_file is not None else None
    if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
        raise InputError("--duration", f"must be a positive number of seconds, got {duration_s!r}")
    if trace is not None and not any(w.kind == "online" for w in scenario.workloads):
        raise InputError("--trace", "the scenario has no online workload to replay the trace for")
    return simulate(
        scenario,
        plan,
        duration_s=duration_s,
        seed=seed,
        trace=trace,
        routing=routing,
        chunked_prefill=chunked_prefill,
    )


def attainment_table(result: SimulationResult) -> pd.DataFrame:
    """Return the table printed by ``infersave simulate`` (one row per workload and SLO; goodput per workload)."""
    rows = []
    for w in result.workloads:
        for a in w.attainment:
            rows.append(
                {
                    "workload": w.workload,
                    "slo": a["slo"],
                    "limit": a["limit"],
                    "at": a["statistic"],
                    "simulated": a["simulated"],
                    "p50": a["p50"],
                    "p99": a["p99"],
                    "met": "yes" if a["met"] else "NO",
                    "goodput": w.goodput,
                }
            )
        if w.kind == "offline":
            rows.append(
                {
                    "workload": w.workload,
                    "slo": "deadline_h",
                    "limit": w.deadline_h,
                    "at": "makespan",
                    "simulated": w.makespan_h,
                    "p50": math.nan,
                    "p99": math.nan,
                    "met": "yes" if w.makespan_h <= w.deadline_h else "NO",
                    "goodput": w.goodput,
                }
            )
    return pd.DataFrame(rows)


def render(result: SimulationResult, print_table: Callable[..., None], say: Callable[[str], None]) -> None:
    """Print the attainment table and one summary line."""
    table = attainment_table(result)
    if table.empty:
        say("no SLO or deadline to check in this scenario")
    else:
        print_table(table, title=f"Simulated attainment ({result.duration_s:g} s, seed {result.seed})")
    for w in result.workloads:
        for note in w.notes:
            say(f"{w.workload}: {note}")
    verdict = "every SLO met" if result.met else "some SLO missed"
    n = sum(len(w.requests) for w in result.workloads)
    say(f"{verdict}; {n:,} requests simulated in {result.seconds:.2f} s (routing {result.routing})")


def verification_table(plan: Any) -> pd.DataFrame:
    """Return the simulated p50/p99 beside each SLO of a verified plan (``infersave plan``), per workload and SLO."""
    rows = []
    for name, w in plan.verification.get("workloads", {}).items():
        for a in w["attainment"]:
            rows.append(
                {
                    "workload": name,
                    "slo": a["slo"],
                    "limit": a["limit"],
                    "at": a["statistic"],
                    "simulated": a["simulated"],
                    "p50": a["p50"],
                    "p99": a["p99"],
                    "met": "yes" if a["met"] else "NO",
                }
            )
        if w.get("kind") == "offline":
            span, deadline = w["makespan_h"], w["deadline_h"]
            met = "yes" if span <= deadline else "NO"
            rows.append({"workload": name, "slo": "deadline_h", "limit": deadline, "at": "makespan"})
            rows[-1].update({"simulated": span, "p50": math.nan, "p99": math.nan, "met": met})
    return pd.DataFrame(rows)
