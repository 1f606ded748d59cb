"""Parameter sweeps: solve a scenario over a grid of field values and return a tidy DataFrame.

A field is a dotted path into the scenario with list indices, as in the YAML file:
``workloads.0.slo.tpot_ms``, ``limits.budget_usd_per_hour``, ``markets``. Every combination of the given values
is one point; each point is validated (a bad value gives an :class:`~solver.errors.InputError` naming the path
before anything is solved) and planned in a worker process. A point that has no plan never stops the sweep: its
row carries the status (``infeasible``, ``no_solution``, ``error``) and the message.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd
import yaml

from solver.data.scenario import scenario_from_dict
from solver.errors import InfersaveError, InputError
from solver.specs import Scenario, SolveOptions

Row = dict[str, Any]


def parse_over(spec: str) -> tuple[str, list[Any]]:
    """Parse a CLI ``FIELD=V1,V2,...`` into the path and its values (each value read as a YAML scalar).

    ``workloads.0.slo.tpot_ms=50,100`` gives ``("workloads.0.slo.tpot_ms", [50, 100])``; a value may be a YAML
    flow list, as in ``markets=[on_demand],[on_demand,spot]`` — commas inside brackets do not split.
    """
    if "=" not in spec:
        raise InputError("--over", f"expected FIELD=V1,V2,..., got {spec!r}")
    path, raw = spec.split("=", 1)
    path = path.strip()
    if not path:
        raise InputError("--over", f"no field name in {spec!r}")
    items, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    values = []
    for item in items:
        if not item.strip():
            raise InputError(f"--over {path}", f"empty value in {raw!r}")
        try:
            values.append(yaml.safe_load(item))
        except yaml.YAMLError:
            raise InputError(f"--over {path}", f"cannot read the value {item!r}") from None
    return path, values


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a deep copy of ``data`` with the dotted ``path`` set to ``value``.

    Raises
    ------
    InputError
        A list index out of range or a key under something that is not a mapping.
    """
    out = copy.deepcopy(data)
    parts = path.split(".")
    node: Any = out
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(where, f"no list item {part!r} (the list has {len(node)} items)")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise InputError(where, "cannot set a field inside a value that is not a mapping or a list")
    return out


def sweep_points(scenario: Scenario, over: Mapping[str, Sequence[Any]]) -> list[tuple[Row, Scenario]]:
    """Return every grid point as ``(values by path, validated scenario)``, in grid order."""
    if not over:
        raise InputError("--over", "give at least one FIELD=VALUES to sweep over")
    base = scenario.model_dump(mode="json", exclude_none=True)
    paths = list(over)
    points = []
    for combo in itertools.product(*(over[p] for p in paths)):
        data = base
        for path, value in zip(paths, combo, strict=True):
            data = set_path(data, path, value)
        values = dict(zip(paths, combo, strict=True))
        points.append((values, scenario_from_dict(data)))
    return points


def _solve_point(args: tuple[Row, Scenario, SolveOptions]) -> Row:
    """Plan one point in a worker; never raise for a planning outcome."""
    from solver.planning.planner import plan  # imported here: workers start fresh

    values, scenario, options = args
    row: Row = {k: _cell(v) for k, v in values.items()}
    try:
        result = plan(scenario, options)
    except InfersaveError as exc:
        status = {3: "infeasible", 4: "no_solution"}.get(exc.exit_code, "error")
        row.update(status=status, message=str(exc))
        return row
    row.update(plan_summary(result))
    return row


def plan_summary(result: Any) -> Row:
    """Summarise a Plan as flat columns: status, costs, gap, composition and predicted latencies."""
    fleet = result.to_frame()
    row: Row = {
        "status": result.status,
        "cost_usd_per_hour": result.cost_usd_per_hour,
        "total_cost_usd": result.total_cost_usd,
        "gap": result.gap,
        "backend": result.backend,
        "solve_seconds": result.solve_seconds,
        "message": "",
    }
    if fleet.empty:
        row.update(n_instances=0, composition="")
        return row
    row["n_instances"] = int(fleet["count"].sum())
    comp = fleet.groupby(["instance_type", "market"], sort=True)["count"].sum()
    row["composition"] = " + ".join(f"{int(n)}x {t} ({m})" for (t, m), n in comp.items())
    for col in ("ttft_ms", "tpot_ms", "tps", "offload_fraction", "batch_size"):
        if col in fleet:
            row[f"max_{col}"] = float(fleet[col].max())
    return row


def _cell(v: Any) -> Any:
    return (
        v
        if isinstance(v, int | float | str | bool) or v is None
        else yaml.safe_dump(v, default_flow_style=True).strip()
    )


def sweep(
    scenario: Scenario,
    over: Mapping[str, Sequence[Any]],
    options: SolveOptions | None = None,
    *,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Plan ``scenario`` at every combination of ``over`` and return one row per point.

    Parameters
    ----------
    scenario
        The base scenario.
    over
        Dotted field path -> values; several paths make a grid (their product).
    options
        Solver options for every point.
    processes
        Worker processes; default ``min(points, CPU count)``; ``1`` solves in this process.
    progress
        Called as ``progress(done, total)`` after each point.

    Returns
    -------
    pandas.DataFrame
        Columns: one per swept path, then ``status``, ``cost_usd_per_hour``, ``total_cost_usd``, ``gap``,
        ``backend``, ``solve_seconds``, ``message``, ``instances``, ``composition`` and the largest predicted
        ``ttft_ms``, ``tpot_ms``, ``tps``, offload fraction and batch size in the fleet.
    """
    options = options or SolveOptions()
    points = sweep_points(scenario, over)
    jobs = [(values, sc, options) for values, sc in points]
    workers = processes or min(len(jobs), os.cpu_count() or 1)
    rows: list[Row] = []
    if workers <= 1:
        for i, job in enumerate(jobs):
            rows.append(_solve_point(job))
            if progress:
                progress(i + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, row in enumerate(pool.map(_solve_point, jobs)):
                rows.append(row)
                if progress:
                    progress(i + 1, len(jobs))
    return pd.DataFrame(rows)


def plot_sweep(frame: pd.DataFrame, paths: Iterable[str], out_png: str) -> None:
    """Plot cost against the first swept field (one line per value of the second, if any) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = list(paths)
    x = paths[0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups = list(frame.groupby(paths[1], sort=False)) if len(paths) > 1 else [("cost", frame)]
    solved = frame["status"].isin(["optimal", "feasible"])
    numeric = pd.api.types.is_numeric_dtype(frame[x])

    def xs(part: pd.DataFrame) -> pd.Series:
        return part[x] if numeric else part[x].astype(str)

    for key, part in groups:
        ok = part[solved.loc[part.index]]
        label = f"{paths[1]} = {key}" if len(paths) > 1 else str(key)
        ax.plot(xs(ok), ok["cost_usd_per_hour"], marker="o", label=label)
    failed = frame[~solved]
    if not failed.empty:
        ax.scatter(xs(failed), [0.0] * len(failed), marker="x", color="red", label="no plan")
    ax.set_xlabel(x)
    ax.set_ylabel("fleet cost (USD/h)")
    ax.set_title("infersave sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
