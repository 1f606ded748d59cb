"""How plans, recommendations and sweeps look on a terminal: one number format, tables that fit the width.

Every table here folds or wraps its cells to the console's width (80, 100, 120 columns...) and never cuts one
with an ellipsis; ``wide=True`` prints every field of a plan row, one column each. User text (workload names,
paths, messages) goes into :class:`rich.text.Text` cells, so it is never read as rich markup.

Numbers: :func:`number` (thousands separators, about 3-4 significant digits, never scientific notation),
:func:`money` (``$`` and cents, or 3 decimals under $10), :func:`percent`; units follow the value
(``78.4 ms``, ``6,040 tok/s``, ``$1.861/h``). Instance types sort naturally (:func:`natural_key`:
``g5.2xlarge`` before ``g5.12xlarge``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from solver.specs import Scenario, Workload

_DIGITS = re.compile(r"(\d+)")


# ---- number formats ---------------------------------------------------------------------------------------
def number(value: Any, unit: str = "") -> str:
    """Format a number for people: ``6,040``, ``209``, ``78.4``, ``1.86``, ``0.0421``; ``-`` for NaN/None.

    Never scientific notation: at or above 1,000 the value is rounded to an integer with separators; below it
    shows three significant digits (at least one decimal under 100, unless the value is a whole number).
    """
    if value is None:
        return "-"
    v = float(value)
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 1000 or v == int(v):
        text = f"{v:,.0f}"
    elif a >= 100:
        text = f"{v:.0f}"
    elif a >= 10:
        text = f"{v:.1f}"
    elif a >= 1:
        text = f"{v:.2f}"
    else:
        text = f"{v:.3g}"
    return f"{text} {unit}" if unit else text


def money(value: Any, per: str = "") -> str:
    """Format dollars: cents at or above $10 (``$52.32``, ``$7,423.92``), else 3 decimals (``$1.861``)."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    v = float(value)
    text = f"${v:,.2f}" if abs(v) >= 10 else f"${v:.3f}"
    return f"{text}/{per}" if per else text


def price(value: Any, per: str = "") -> str:
    """Format a unit price with 3 decimals always (``$1.861``, ``$16.290``), so a price column lines up."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    text = f"${float(value):,.3f}"
    return f"{text}/{per}" if per else text


def percent(share: Any) -> str:
    """Format a share in [0, 1] as a percentage (``78.7%``, ``0%``, ``100%``)."""
    if share is None or not math.isfinite(float(share)):
        return "-"
    p = 100.0 * float(share)
    return f"{p:.0f}%" if p == round(p) or abs(p) >= 10 else f"{p:.1f}%"


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``g5.2xlarge`` before ``g5.12xlarge`` (digit runs compare as numbers)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(str(name)))


def natural_sort(frame: pd.DataFrame, by: Iterable[str]) -> pd.DataFrame:
    """Return ``frame`` sorted by the columns ``by``, instance-type-like strings in natural order."""
    by = list(by)
    return frame.sort_values(
        by, key=lambda col: col.map(natural_key) if not pd.api.types.is_numeric_dtype(col) else col, kind="stable"
    ).reset_index(drop=True)


# ---- generic tables ---------------------------------------------------------------------------------------
def frame_table(
    frame: pd.DataFrame,
    title: str | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
) -> Table:
    """Return a DataFrame as a rich table whose cells fold, never cut; ``formats`` maps a column to a formatter.

    Floats without a formatter go through :func:`number`.
    """
    formats = formats or {}
    table = Table(title=Text(title) if title is not None else None, header_style="bold", box=box.SIMPLE_HEAD)
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(Text(str(col)), justify="right" if numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            if col in formats:
                cells.append(formats[col](value))
            elif isinstance(value, float):
                cells.append(number(value))
            else:
                cells.append(str(value))
        table.add_row(*(Text(c) for c in cells))
    return table


# ---- plans ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowAccount:
    """What one fleet row carries, in the units a reader checks it with.

    ``demand`` is the row's share of its workload's demand (online: requests/s at the workload's utilisation,
    which every row of the workload runs at; offline: requests done in the row's instance-hours), ``capacity``
    the most the row can do (online: ``count · replicas · rate`` requests/s; offline: requests its
    instance-hours can do at full rate). ``headroom`` maps each SLO the workload sets to
    ``(predicted, limit, spare share)``, spare share ``1 - predicted/limit`` (``predicted/limit - 1`` for TPS,
    a floor).
    """

    capacity: float
    demand: float
    unit: str
    headroom: dict[str, tuple[float, float, float]]


PLAN_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("workload", "left"),
    ("instances", "left"),
    ("each instance", "left"),
    ("carries of capacity", "left"),
    ("SLO headroom", "left"),
    ("cost", "right"),
)
"""Columns of the compact plan table, with their justification."""

_SLO_UNITS = {"ttft_ms": ("TTFT", "ms"), "tpot_ms": ("TPOT", "ms"), "e2e_s": ("E2E", "s"), "tps": ("TPS", "tok/s")}


def row_account(row: Any, workload: Workload | None) -> RowAccount:
    """Return the capacity, carried demand and SLO headroom of a fleet row (``workload`` None: no SLOs known)."""
    full = float(row.rate_rps) * float(row.replicas) * float(row.count)
    util = float(row.utilisation) if math.isfinite(float(row.utilisation)) else math.nan
    if row.kind == "offline":
        hours = float(row.instance_hours) if math.isfinite(float(row.instance_hours)) else 0.0
        capacity = float(row.rate_rps) * float(row.replicas) * 3600.0 * hours
        unit = "req"
    else:
        capacity = full
        unit = "req/s"
    demand = capacity * util if math.isfinite(util) else math.nan
    headroom: dict[str, tuple[float, float, float]] = {}
    if workload is not None:
        for key in _SLO_UNITS:
            limit = getattr(workload.slo, key)
            if limit is None:
                continue
            value = float(getattr(row, key))
            spare = value / limit - 1.0 if key == "tps" else 1.0 - value / limit
            headroom[key] = (value, float(limit), spare)
        if row.kind == "offline" and workload.deadline_h is not None and row.count > 0:
            hours = float(row.instance_hours) / row.count if math.isfinite(float(row.instance_hours)) else math.nan
            headroom["deadline_h"] = (hours, float(workload.deadline_h), 1.0 - hours / workload.deadline_h)
    return RowAccount(capacity, demand, unit, headroom)


def _headroom_lines(account: RowAccount) -> list[str]:
    lines = []
    for key, (value, limit, spare) in account.headroom.items():
        if key == "deadline_h":
            lines.append(f"job {number(value)} h of {number(limit)} h: {percent(spare)} spare")
            continue
        label, unit = _SLO_UNITS[key]
        word = "above" if key == "tps" else "spare"
        lines.append(f"{label} {number(value)} of {number(limit)} {unit}: {percent(spare)} {word}")
    return lines or ["no SLO"]


def serves_label(split: object) -> str:
    """Return a shared row's classes and rate, short (``chat#0,2,5 + api: 7.2 req/s``); empty for one class."""
    pairs = list(split) if isinstance(split, list | tuple) else []
    if len(pairs) < 2:
        return ""
    by_workload: dict[str, list[str]] = {}
    for name, _rate in pairs:
        head, _sep, bucket = str(name).partition("#")
        by_workload.setdefault(head, [])
        if bucket:
            by_workload[head].append(bucket)
    parts = [f"{w}#{','.join(sorted(b, key=lambda x: (len(x), x)))}" if b else w for w, b in by_workload.items()]
    return f"{' + '.join(parts)}: {sum(float(r) for _n, r in pairs):.3g} req/s"


def sorted_fleet(plan: Any) -> list[Any]:
    """Return the plan's fleet rows by workload, then instance type in natural order, market and region."""
    return sorted(plan.fleet, key=lambda r: (r.workload, natural_key(r.instance_type), r.market, r.region))


def plan_table(plan: Any, scenario: Scenario | None = None, *, wide: bool = False) -> Table:
    """Return the fleet of ``plan`` as a table; with ``scenario`` each row shows its headroom to the workload's SLOs.

    Compact (default): one row per fleet row with instances (count, type, GPU, market, region), the per-instance
    configuration (TP, batch, replicas per instance, offload), capacity against the demand the row carries, SLO
    headroom and cost; cells wrap to the console's width. ``wide``: every field of a fleet row, one column each.
    """
    title = Text(f"fleet plan ({plan.status}, {plan.backend})")
    rows = sorted_fleet(plan)
    if wide:
        names = [f.name for f in fields(rows[0])] if rows else []
        frame = pd.DataFrame([asdict(r) for r in rows], columns=names)
        fmt: dict[str, Callable[[Any], str]] = {c: price for c in frame.columns if c.startswith("usd")}
        fmt["cost_usd"] = money
        fmt["utilisation"] = percent
        fmt["offload_fraction"] = percent
        table = frame_table(frame, formats=fmt)
        table.title = title
        return table
    workloads = {w.name: w for w in scenario.workloads} if scenario is not None else {}
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, show_lines=True)
    for name, justify in PLAN_COLUMNS:
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        acc = row_account(r, workloads.get(r.workload))
        replicas = f"{r.replicas} replica{'s' if r.replicas != 1 else ''} per instance"
        if r.kind == "offline":
            capacity = [
                f"{number(acc.demand)} of {number(acc.capacity)} req",
                f"in {number(r.instance_hours)} instance-h",
                f"{percent(r.utilisation)} used",
            ]
        else:
            capacity = [f"{number(acc.demand)} of {number(acc.capacity)} req/s", f"{percent(r.utilisation)} used"]
        cells = [
            [r.workload, r.kind, *([label] if (label := serves_label(r.split)) else [])],
            [f"{r.count} × {r.instance_type}", ", ".join(x for x in (r.gpu, r.market) if x), r.region],
            [f"TP {r.tp}{ep_label(r.ep)}, batch {r.batch_size}", replicas, f"offload {percent(r.offload_fraction)}"],
            capacity,
            _headroom_lines(acc),
            [money(r.usd_per_hour * r.count, "h"), f"{r.count} × {price(r.usd_per_hour)}"],
        ]
        table.add_row(*(Text("\n".join(c)) for c in cells))
    return table


def plan_totals(plan: Any) -> list[str]:
    """Return lines saying what the plan costs per hour, day and 30 days, and how its horizon total is made.

    The hourly figure is every instance of the fleet running at once. The horizon total is the online rows'
    instances for the billed horizon plus the offline rows' billed instance-hours (an offline job's instances
    stop when the job is done, so its hours are usually fewer than ``count · horizon``).
    """
    per_h = float(plan.cost_usd_per_hour)
    online = [r for r in plan.fleet if r.kind != "offline"]
    offline = [r for r in plan.fleet if r.kind == "offline"]
    n = sum(r.count for r in plan.fleet)
    lines = [
        f"cost {money(per_h, 'h')} with {'its 1 instance' if n == 1 else f'all {n} instances'} running: "
        f"{money(24 * per_h)} per day, {money(720 * per_h)} per 30 days",
    ]
    parts = []
    online_h = sum(r.usd_per_hour * r.count for r in online)
    online_total = sum(r.cost_usd for r in online)
    if online:
        billed = online_total / online_h if online_h > 0 else math.nan
        parts.append(f"online {money(online_h, 'h')} × {number(round(billed, 6))} h = {money(online_total)}")
    for r in offline:
        parts.append(
            f"offline {r.workload} {number(r.instance_hours)} instance-hours × {price(r.usd_per_hour)} = "
            f"{money(r.cost_usd)} (not {number(r.count * plan.horizon_h)}: its {r.count} stop when the job is done)"
        )
    if parts:
        lines.append(f"total {money(plan.total_cost_usd)} over {number(plan.horizon_h)} h = " + " + ".join(parts))
    gap = f"{plan.gap:.2g}" if math.isfinite(plan.gap) else "unknown"
    lines.append(f"gap {gap}; solved in {number(plan.solve_seconds)} s")
    return lines


def print_plan(console: Console, plan: Any, scenario: Scenario | None = None, *, wide: bool = False) -> None:
    """Print the plan's table and its cost lines on ``console``."""
    table = plan_table(plan, scenario, wide=wide)
    if wide:  # every column at its natural width, however wide the console is
        width = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
        if width > console.width:  # Console.print caps width at the console's own: print on a wider one
            console = Console(file=console.file, width=width, no_color=console.no_color)
        console.print(table)
    else:
        console.print(table)
    for line in plan_totals(plan):
        console.print(Text(line), highlight=False)


# ---- recommend --------------------------------------------------------------------------------------------
def recommend_table(rec: Any) -> Table:
    """Return the choices of a recommendation as a table, best first, every field its JSON carries."""
    frame = rec.choices_frame()
    fmt: dict[str, Callable[[Any], str]] = {
        "usd_per_hour": price,
        "task_cost_usd": money,
        "offload_fraction": percent,
    }
    return frame_table(frame, title="choices, best first", formats=fmt)


# ---- sweep ------------------------------------------------------------------------------------------------
def sweep_table(frame: pd.DataFrame, paths: Iterable[str], out_csv: str) -> Table:
    """Return the sweep's points as a table: swept values, status, cost, instances and composition."""
    shown = [c for c in [*paths, "status", "cost_usd_per_hour", "n_instances", "composition"] if c in frame]
    return frame_table(
        frame[shown],
        title=f"sweep: {len(frame)} points -> {out_csv}",
        formats={"cost_usd_per_hour": lambda v: money(v, "h"), "n_instances": number},
    )


def ep_label(ep: int) -> str:
    """``, EP n`` for a row with expert parallelism, else nothing."""
    return f", EP {ep}" if ep > 1 else ""
