"""Parameter sweeps: solve a scenario over a grid of field values and return a tidy DataFrame.

A field is a dotted path into the scenario with list indices, as in the YAML file:
``workloads.0.slo.tpot_ms``, ``limits.budget_usd_per_hour``, ``markets``. Every combination of the given values
is one point; each point is validated (a bad value gives an :class:`~solver.errors.InputError` naming the path
before anything is solved) and planned in a worker process. A point that has no plan never stops the sweep: its
row carries the status (``infeasible``, ``no_solution``, ``error``) and the message.

Resources are bounded before any work: a grid of more than :data:`MAX_POINTS` points is refused (the count is the
product of the value counts, computed before the grid is built), and workers are capped by the points and CPUs.
With a CSV, each point's row is appended and flushed as it finishes, so a stopped sweep keeps what it did and
``resume=True`` skips the points already there.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from solver.data.scenario import scenario_from_dict
from solver.errors import InfersaveError, InputError
from solver.specs import Scenario, SolveOptions
from solver.validation import load_yaml, write_text_atomic

Row = dict[str, Any]

MAX_POINTS = 10_000
"""Largest grid solved unless raised (``--max-points``). A point takes 0.1–60 s and holds one validated scenario
(a few kB) until solved, so 10,000 points is already hours of solving and tens of MB; a bigger grid is far more
often a typo (a value list pasted twice, a stray ``--over``) than intended, and 10^6 points used 2.3 GB before
solving anything."""
SUMMARY_COLUMNS = [
    *("status", "cost_usd_per_hour", "total_cost_usd", "gap", "backend", "solve_seconds", "message"),
    *("n_instances", "composition", "max_ttft_ms", "max_tpot_ms", "max_tps", "max_offload_fraction"),
    "max_batch_size",
]
"""Columns of a result row after the point index and the swept paths (the CSV header, in order); the ``max_*``
columns are over every workload of the fleet; :data:`WORKLOAD_COLUMNS` follow, per workload."""
WORKLOAD_COLUMNS = ("instances", "usd_per_hour", "max_ttft_ms", "max_tpot_ms", "max_e2e_s", "min_tps")
"""Per-workload columns, named ``{workload}.{column}`` after the base scenario's workload names, in its order: the
workload's instances and $/h, its slowest TTFT, TPOT and end-to-end time and its lowest TPS over its fleet rows.
A point's workloads are matched by position, so the columns stay the same when a sweep renames one."""
EXECUTORS = ("processes", "dask")
"""Where points are solved: local worker processes (the default), or a Dask cluster."""


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
        values.append(load_yaml(item, f"--over {path}"))
    return path, values


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse every ``--over FIELD=VALUES`` into a grid; a field given twice is an error (not last-one-wins)."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        path, values = parse_over(spec)
        if path in grid:
            raise InputError(f"--over {path}", "this field is given twice; list all its values in one --over")
        grid[path] = values
    return grid


def grid_size(over: Mapping[str, Sequence[Any]], max_points: int | None = MAX_POINTS) -> int:
    """Return the number of grid points (the product of the value counts) without building the grid.

    ``max_points=None`` sets no limit.

    Raises
    ------
    InputError
        No field, or more than ``max_points`` points.
    """
    if not over:
        raise InputError("over", "give at least one FIELD=VALUES to sweep over")
    n = math.prod(len(v) for v in over.values())
    if max_points is not None and n > max_points:
        raise InputError(
            "max_points",
            f"the grid has {n:,} points, more than the limit of {max_points:,}; sweep fewer values or raise the limit",
        )
    return n


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
    grid_size(over, max_points=None)
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


def workload_columns(scenario: Scenario) -> list[str]:
    """Return the per-workload column names of a sweep over ``scenario`` (:data:`WORKLOAD_COLUMNS`)."""
    return [f"{w.name}.{c}" for w in scenario.workloads for c in WORKLOAD_COLUMNS]


def _solve_point(args: tuple[Row, Scenario, SolveOptions] | tuple[Row, Scenario, SolveOptions, list[str]]) -> Row:
    """Plan one point in a worker; never raise for a planning outcome."""
    from solver.data.gpus import add_gpus
    from solver.planning.planner import plan  # imported here: workers start fresh

    values, scenario, options = args[0], args[1], args[2]
    add_gpus(scenario.gpus)  # a worker started fresh (spawn, Dask) has not seen the scenario's GPUs
    names = list(args[3]) if len(args) > 3 else [w.name for w in scenario.workloads]
    row: Row = {k: _cell(v) for k, v in values.items()}
    try:
        result = plan(scenario, options)
    except InfersaveError as exc:
        status = {3: "infeasible", 4: "no_solution"}.get(exc.exit_code, "error")
        row.update(status=status, message=str(exc))
        return row
    row.update(plan_summary(result, scenario, names))
    return row


def plan_summary(result: Any, scenario: Scenario | None = None, names: Sequence[str] | None = None) -> Row:
    """Summarise a Plan as flat columns: status, costs, gap, composition and predicted latencies.

    With ``scenario``, also the per-workload columns (:data:`WORKLOAD_COLUMNS`), named after ``names`` (the base
    scenario's workload names, by position; default the scenario's own).
    """
    fleet = result.to_frame()
    per_workload: Row = {}
    if scenario is not None:
        labels = list(names) if names is not None else [w.name for w in scenario.workloads]
        for label, w in zip(labels, scenario.workloads, strict=False):
            rows = fleet[fleet["workload"] == w.name] if not fleet.empty else fleet
            if rows.empty:
                continue
            per_workload[f"{label}.instances"] = int(rows["count"].sum())
            per_workload[f"{label}.usd_per_hour"] = float((rows["usd_per_hour"] * rows["count"]).sum())
            per_workload[f"{label}.max_ttft_ms"] = float(rows["ttft_ms"].max())
            per_workload[f"{label}.max_tpot_ms"] = float(rows["tpot_ms"].max())
            per_workload[f"{label}.max_e2e_s"] = float(rows["e2e_s"].max())
            per_workload[f"{label}.min_tps"] = float(rows["tps"].min())
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
    row.update(per_workload)
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
    out_csv: str | Path | None = None,
    resume: bool = False,
    max_points: int = MAX_POINTS,
    executor: str = "processes",
    scheduler: str | None = None,
    on_point: Callable[[Row], None] | None = None,
) -> pd.DataFrame:
    """Plan ``scenario`` at every combination of ``over`` and return one row per point, in grid order.

    Parameters
    ----------
    scenario
        The base scenario.
    over
        Dotted field path -> values; several paths make a grid (their product).
    options
        Solver options for every point.
    processes
        Worker processes, capped at ``min(points, CPU count)`` (the default); ``1`` solves in this process.
    progress
        Called as ``progress(done, total)`` after each point.
    out_csv
        Append each point's row to this CSV as it finishes (flushed), then sort the file into grid order. It
        is replaced unless ``resume``.
    resume
        Keep the rows already in ``out_csv`` (they must be this grid's) and solve only the missing points.
    max_points
        Refuse a larger grid before building it (:data:`MAX_POINTS` by default).
    executor
        ``processes`` (local worker processes) or ``dask`` (the ``[dask]`` extra): the points run as tasks on
        the Dask scheduler at ``scheduler``, or on a local cluster of ``processes`` workers without one. Both give
        the same rows.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); only with ``executor="dask"``.
    on_point
        Called with each point's result row as it finishes (before ``progress``).

    Returns
    -------
    pandas.DataFrame
        Columns: ``point`` (grid index), one per swept path, then ``status``, ``cost_usd_per_hour``,
        ``total_cost_usd``, ``gap``, ``backend``, ``solve_seconds``, ``message``, ``n_instances``,
        ``composition`` and the largest predicted ``ttft_ms``, ``tpot_ms``, ``tps``, offload fraction and batch
        size in the fleet, then per workload its instances, $/h, slowest TTFT, TPOT and end-to-end time and lowest
        TPS (:data:`WORKLOAD_COLUMNS`); cells are empty where a point has no plan. The columns are the same
        whatever the points' outcomes.

    Raises
    ------
    InputError
        A bad field or value, a grid over ``max_points``, or a CSV to resume that holds another grid.
    """
    if processes is not None and processes < 1:
        raise InputError("processes", f"must be at least 1, got {processes}")
    if executor not in EXECUTORS:
        raise InputError("executor", f"must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise InputError("scheduler", "a scheduler address needs executor dask")
    options = options or SolveOptions()
    total = grid_size(over, max_points)
    points = sweep_points(scenario, over)
    names = [w.name for w in scenario.workloads]
    columns = ["point", *over, *SUMMARY_COLUMNS, *workload_columns(scenario)]
    done: dict[int, list[str]] = {}
    path = Path(out_csv).expanduser() if out_csv is not None else None
    if path is not None and resume and path.is_file():
        done = _read_done(path, columns, points)
    if path is not None:
        write_text_atomic(path, _csv_text([columns, *(done[i] for i in sorted(done))]))
    todo = [i for i in range(total) if i not in done]
    workers = max(1, min(processes or os.cpu_count() or 1, len(todo), os.cpu_count() or 1))
    rows: dict[int, Row] = {}
    count = len(done)

    def finished(i: int, row: Row) -> None:
        nonlocal count
        rows[i] = row
        count += 1
        if path is not None:
            _append(path, [_text(row.get(c)) for c in columns])
        if on_point:
            on_point(row)
        if progress:
            progress(count, total)

    jobs = {i: (points[i][0], points[i][1], options, names) for i in todo}
    if executor == "dask":
        _run_dask(jobs, todo, finished, workers, scheduler)
    elif workers <= 1:
        for i in todo:
            finished(i, {"point": i} | _solve_point(jobs[i]))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: dict[Future[Row], int] = {pool.submit(_solve_point, jobs[i]): i for i in todo}
            try:
                while pending:
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in ready:
                        i = pending.pop(fut)
                        finished(i, {"point": i} | fut.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    if path is None:
        return pd.DataFrame([{c: rows[i].get(c) for c in columns} for i in sorted(rows)], columns=columns)
    with open(path, encoding="utf-8", newline="") as fh:
        lines = list(csv.reader(fh))[1:]
    lines.sort(key=lambda r: int(r[0]))
    write_text_atomic(path, _csv_text([columns, *lines]))
    return pd.read_csv(path)


def _run_dask(
    jobs: Mapping[int, Any],
    todo: Sequence[int],
    finished: Callable[[int, Row], None],
    workers: int,
    scheduler: str | None,
) -> None:
    """Solve ``jobs`` as Dask tasks and call ``finished`` as each completes (a local cluster without ``scheduler``)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("executor", "dask needs the [dask] extra: pip install 'infersave[dask]'") from None
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise InputError("scheduler", f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    try:
        futures = {
            client.submit(_solve_point, jobs[i], key=f"infersave-point-{i}-{id(jobs)}", pure=False): i for i in todo
        }
        for fut in as_completed(list(futures)):
            finished(futures[fut], {"point": futures[fut]} | fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _read_done(path: Path, columns: list[str], points: Sequence[tuple[Row, Scenario]]) -> dict[int, list[str]]:
    """Rows of a CSV to resume, by point; a half-written last line is dropped, another grid's file refused."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError("--resume", f"cannot read {str(path)!r}: {exc}") from None
    if not lines:
        return {}
    if lines[0] != columns:
        raise InputError("--resume", f"{str(path)!r} holds another sweep's columns; pass --force to start over")
    done: dict[int, list[str]] = {}
    for k, line in enumerate(lines[1:], start=2):
        if len(line) != len(columns) or not line[0].isdigit():
            continue  # the row being written when the sweep stopped
        i = int(line[0])
        expected = [_text(_cell(v)) for v in points[i][0].values()] if i < len(points) else None
        if expected is None or line[1 : 1 + len(expected)] != expected:
            raise InputError(
                "--resume", f"{str(path)!r} line {k} is not a point of this grid; pass --force to start over"
            )
        done[i] = line
    return done


def _text(value: Any) -> str:
    """One CSV cell: empty for None, ``str`` otherwise (the same on writing and on resuming)."""
    return "" if value is None else str(value)


def _csv_text(lines: Iterable[Sequence[str]]) -> str:
    """Lines as CSV text."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    return buf.getvalue()


def _append(path: Path, line: Sequence[str]) -> None:
    """Append one CSV line to ``path`` and flush it to the disk."""
    try:
        with open(path, "a", encoding="utf-8", newline="") as fh:
            fh.write(_csv_text([line]))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise InputError("--out", f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


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
