"""The answer of ``recommend``: choices best first and rejected instances, as values with a JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from solver.apps.recommend.task import DEFAULT_BILLING

CHOICE_KEYS = ("instance_type", "offload_fraction", "predicted_tps", "usd_per_hour", "cost_efficiency", "meets_slo")
"""Keys of one choice in the JSON output, first and in this order (issue 5); :data:`CHOICE_EXTRA_KEYS` follow."""
CHOICE_EXTRA_KEYS = ("rank", "gpu", "region", "market", "effective_tps", "task_hours", "billed_hours", "task_cost_usd")
"""The other fields the human table shows, after :data:`CHOICE_KEYS` (issue 16: JSON carries every field)."""
QUESTION_KEYS = (*("policy", "model", "batch_size", "input_tokens", "output_tokens", "tps_slo", "requests", "billing"),)
"""The question a recommendation answers, as the human output's first line states it."""
REJECTED_KEYS = ("instance_type", "reason")
"""Keys of one rejected instance in the JSON output, exactly."""


# ---- the answer -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """One recommended instance, with its offload fraction, predicted TPS and cost."""

    instance_type: str
    offload_fraction: float
    predicted_tps: float
    usd_per_hour: float
    cost_efficiency: float
    meets_slo: bool
    region: str = ""
    market: str = ""
    gpu: str = ""
    effective_tps: float = math.nan
    task_hours: float = math.nan
    billed_hours: float = math.nan
    task_cost_usd: float = math.nan

    def to_dict(self, rank: int = 1) -> dict[str, Any]:
        """Return the JSON object of one choice: :data:`CHOICE_KEYS`, then :data:`CHOICE_EXTRA_KEYS`."""
        return {
            "instance_type": self.instance_type,
            "offload_fraction": float(self.offload_fraction),
            "predicted_tps": float(self.predicted_tps),
            "usd_per_hour": float(self.usd_per_hour),
            "cost_efficiency": float(self.cost_efficiency),
            "meets_slo": bool(self.meets_slo),
            "rank": rank,
            "gpu": self.gpu,
            "region": self.region,
            "market": self.market,
            "effective_tps": float(self.effective_tps),
            "task_hours": float(self.task_hours),
            "billed_hours": float(self.billed_hours),
            "task_cost_usd": float(self.task_cost_usd),
        }


@dataclass(frozen=True)
class Rejection:
    """An instance that was dropped, and why."""

    instance_type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of one rejected instance: exactly :data:`REJECTED_KEYS`."""
        return {"instance_type": self.instance_type, "reason": self.reason}


@dataclass(frozen=True)
class Recommendation:
    """The answer of :func:`recommend`: choices best first and the instances dropped, with reasons.

    Attributes
    ----------
    policy
        The policy that chose (a key of :data:`POLICIES`).
    choices
        Best first (at most ``top_k``).
    rejected
        Instances dropped by the price filter, the memory check, the SLO or the solver.
    tps_slo, requests, billing, batch_size, model
        The question, for the human output.
    """

    policy: str
    choices: tuple[Choice, ...]
    rejected: tuple[Rejection, ...]
    model: str = ""
    batch_size: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tps_slo: float | None = None
    requests: int = 0
    billing: str = DEFAULT_BILLING
    notes: tuple[str, ...] = field(default=())

    @property
    def best(self) -> Choice | None:
        """The first choice, or ``None`` when nothing qualifies."""
        return self.choices[0] if self.choices else None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON of ``infersave recommend --json``: the question, choices, rejected and trade-offs.

        Every field the human output shows is here: the question (:data:`QUESTION_KEYS`), each choice's
        region, market, hours and task cost, every rejected instance with its reason, the trade-off lines.
        """
        question = {k: getattr(self, k) for k in QUESTION_KEYS}
        return {
            **question,
            "choices": [c.to_dict(rank=i + 1) for i, c in enumerate(self.choices)],
            "rejected": [r.to_dict() for r in self.rejected],
            "tradeoffs": self.tradeoffs(),
        }

    def choices_frame(self) -> pd.DataFrame:
        """Return the choices as a table, best first, with region, market, run and billed hours and task cost."""
        cols = [
            "instance_type",
            "gpu",
            "region",
            "market",
            "offload_fraction",
            "predicted_tps",
            "meets_slo",
            "usd_per_hour",
            "task_hours",
            "billed_hours",
            "task_cost_usd",
            "cost_efficiency",
        ]
        rows = [{c: getattr(ch, c) for c in cols} for ch in self.choices]
        frame = pd.DataFrame(rows, columns=cols)
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame

    def tradeoffs(self) -> list[str]:
        """One line per choice after the first: what it costs and gains against the best."""
        best = self.best
        if best is None:
            return []
        lines = []
        for c in self.choices[1:]:
            d_price = c.usd_per_hour - best.usd_per_hour
            d_tps = c.predicted_tps - best.predicted_tps
            d_cost = c.task_cost_usd - best.task_cost_usd
            ce = c.cost_efficiency / best.cost_efficiency - 1.0 if best.cost_efficiency > 0 else math.nan
            lines.append(
                f"{c.instance_type}: {d_price:+.4g} $/h ({_pct(d_price, best.usd_per_hour)}), "
                f"{d_tps:+,.0f} TPS ({_pct(d_tps, best.predicted_tps)}), task {d_cost:+.2f} $ "
                f"({_pct(d_cost, best.task_cost_usd)}), cost efficiency {ce:+.1%} vs {best.instance_type}"
            )
        return lines


def _pct(delta: float, base: float) -> str:
    """``delta`` as a signed percentage of ``base`` ('n/a' when base is 0)."""
    return f"{delta / base:+.1%}" if base else "n/a"


def choice_of_row(row: Mapping[Any, Any]) -> Choice:
    """Build a Choice from a screened row."""
    return Choice(
        instance_type=str(row["instance_type"]),
        offload_fraction=float(row["offload_fraction"]),
        predicted_tps=float(row["tps"]),
        usd_per_hour=float(row["usd_per_hour"]),
        cost_efficiency=float(row["cost_efficiency"]),
        meets_slo=bool(row["meets_slo"]),
        region=str(row["region"]),
        market=str(row["market"]),
        gpu=str(row["gpu"]),
        effective_tps=float(row["effective_tps"]),
        task_hours=float(row["task_hours"]),
        billed_hours=float(row["billed_hours"]),
        task_cost_usd=float(row["task_cost_usd"]),
    )


def slo_reason(row: Mapping[Any, Any], slo: float | None) -> str:
    """Say why an instance misses the TPS SLO."""
    return f"predicted {row['tps']:,.1f} TPS is below the SLO of {slo:,.4g} TPS"
