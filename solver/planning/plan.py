"""The planner's result: an immutable fleet with predicted latencies, costs and the solver's account.

A :class:`Plan` is a value: it is built once from the solver's answer and never modified; nothing is
written back onto the scenario or the candidate table.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pandas as pd

FLEET_FIELDS: tuple[str, ...] = (
    "workload",
    "instance_type",
    "market",
    "region",
    "count",
    "tp",
    "batch_size",
    "offload_fraction",
    "usd_per_hour",
    "ttft_ms",
    "tpot_ms",
    "tps",
    "utilisation",
)
"""The fleet row fields of the JSON output, with exactly these names (then the extra fields)."""


@dataclass(frozen=True)
class FleetRow:
    """One line of the fleet: ``count`` instances of one type serving one workload in one configuration.

    ``utilisation`` is the share of the rows' full sustainable capacity the workload uses (online: arrival
    rate over ``sum count · replicas · rate_rps`` of the workload's rows; offline: requests over the work the
    billed instance-hours can do). ``capacity_rps`` is this row's full sustainable rate
    (``count · replicas · rate_rps``). ``instance_hours`` is NaN for online rows.
    """

    workload: str
    instance_type: str
    market: str
    region: str
    count: int
    tp: int
    batch_size: int
    offload_fraction: float
    usd_per_hour: float
    ttft_ms: float
    tpot_ms: float
    tps: float
    utilisation: float
    kind: str = "online"
    gpu: str = ""
    replicas: int = 1
    e2e_s: float = math.nan
    rate_rps: float = math.nan
    capacity_rps: float = math.nan
    output_tokens_per_s: float = math.nan
    instance_hours: float = math.nan
    cost_usd: float = math.nan


@dataclass(frozen=True)
class Plan:
    """A fleet plan and how it was found.

    Attributes
    ----------
    fleet
        The fleet rows (empty when there is no plan).
    status
        ``optimal``, ``feasible`` (stopped at a limit with a plan), or the status without a plan.
    cost_usd_per_hour
        Hourly cost of every instance of the fleet running at once (online and offline).
    total_cost_usd
        Online $/h times the horizon plus the offline jobs' billed instance-hours times their prices.
    objective
        The MILP's objective value (``min_cost``: total $; ``max_throughput``: output tokens/s).
    gap
        Relative optimality gap the solver proved (0 when optimal within tolerance; NaN when unknown).
    backend, solve_seconds
        The solver used and the wall time of all solver calls.
    horizon_h
        Hours over which online cost counts in ``total_cost_usd``.
    model_size
        Variables, integer variables, rows and nonzeros of the MILP.
    """

    fleet: tuple[FleetRow, ...]
    status: str
    cost_usd_per_hour: float
    total_cost_usd: float
    objective: float
    gap: float
    backend: str
    solve_seconds: float
    objective_name: str = "min_cost"
    horizon_h: float = 1.0
    model_size: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    message: str = ""

    def to_frame(self) -> pd.DataFrame:
        """Return the fleet as a DataFrame (one row per fleet row; columns in :data:`FLEET_FIELDS` order first)."""
        cols = [f.name for f in fields(FleetRow)]
        return pd.DataFrame([asdict(r) for r in self.fleet], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: status, costs, gap, backend, solve time, and the fleet rows."""
        return {
            "status": self.status,
            "objective_name": self.objective_name,
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "total_cost_usd": self.total_cost_usd,
            "objective": self.objective,
            "gap": self.gap,
            "backend": self.backend,
            "solve_seconds": self.solve_seconds,
            "horizon_h": self.horizon_h,
            "model_size": dict(self.model_size),
            "candidates": self.candidates,
            "fleet": [asdict(r) for r in self.fleet],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Return the plan as JSON text (NaN and infinity become null)."""
        return json.dumps(_clean(self.to_dict()), indent=indent)


def _clean(value: Any) -> Any:
    """Replace non-finite floats with None, recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
