"""The planner's result: an immutable fleet with predicted latencies, costs and the solver's account.

A :class:`Plan` is a value: it is built once from the solver's answer and never modified; nothing is
written back onto the scenario or the candidate table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from formulations.billing import billed_horizon_h, capacity_per_instance
from formulations.linear import CompiledModel
from formulations.model import FleetModel
from solver.backends.base import SolveResult

TIE_ORDER = (
    *("usd_per_hour", "instance_type", "region", "market", "workload", "tp", "ep", "batch_size", "offload_fraction"),
)
"""Candidate order that defines ``rank_c`` of the tie-break stage (and the order of the fleet rows)."""

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
    pool: int = -1
    """Shared replicas (``formulations/README.md``, "Shared replicas"): the pool number, ``-1`` for a row that
    serves one class on its own instances."""
    split: tuple[tuple[str, float], ...] = ()
    """Online rows: the request classes the row serves and the rate routed to each (req/s); the rates of one
    class over all rows add up to its arrival rate. A pool row lists every class it serves."""
    ep: int = 1
    """Expert-parallel degree (mixture-of-experts models): 1, experts sharded by TP; ``tp``, whole experts spread
    over the replica's GPUs. In the JSON output only when above 1."""


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
        Relative gap from the bound the solver reported (NaN when it reported none: unknown, never 0 by default).
    backend, solve_seconds
        The solver used and the wall time of the whole plan (every solver call).
    solver_version
        The solver build that ran (``CBC 2.10.3``, ``OR-Tools 9.15.6755 SCIP``).
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
    solver_version: str = ""
    explanation: dict[str, Any] | None = None
    """``plan --explain`` / ``--top-k``: binding constraints, runners-up, alternatives
    (:func:`solver.planning.explain.explain`); ``None`` when not asked for."""
    verification: dict[str, Any] = field(default_factory=dict)
    """Simulated SLO attainment of the plan (:mod:`solver.simulation.verify`); empty when not verified."""

    @classmethod
    def from_solution(
        cls,
        fm: FleetModel,
        compiled: CompiledModel,
        x: np.ndarray,
        result: SolveResult,
        seconds: float,
        n_cands: int,
        message: str = "",
    ) -> Plan:
        """Read a plan off a checked solution of the fleet model.

        Parameters
        ----------
        fm, compiled
            The fleet model and its compiled form the solution belongs to.
        x
            Variable values (integers rounded, checked by the planner).
        result
            The stage-one answer: status, gap, backend and solver version.
        seconds, n_cands
            Wall time of the whole plan; number of candidates before presolve.
        message
            What the planner had to do to get this plan (e.g. solved again with another backend).
        """
        scenario = fm.scenario
        cands = fm.cands
        n = np.rint(x[fm.family("n").index]).astype(np.int64)
        h_all = np.zeros(len(cands))
        hfam = fm.family("h")
        h_vals = x[hfam.index]
        if hfam.integer:
            h_vals = np.rint(h_vals)
        h_all[fm.offline_idx] = np.maximum(h_vals, 0.0)
        pool_of = fm.pool_of if fm.pool_of is not None else np.full(len(cands), -1, dtype=np.int64)
        pooled = pool_of >= 0
        shares = np.where(pooled, np.maximum(x[fm.family("n").index], 0.0), 0.0)
        n = np.where(pooled, 0, n)
        used = np.flatnonzero(n > 0)
        wl = fm.workloads
        cap = capacity_per_instance(cands, scenario)
        full = cands["rate_rps"].to_numpy(dtype=float) * cands["replicas"].to_numpy(dtype=float)
        horizon = scenario.effective_horizon_h
        billed = billed_horizon_h(scenario)
        names = cands["workload"].to_numpy()
        # workload utilisation: demand over the full capacity of its rows
        util: dict[str, float] = {}
        # routed rate: each class's rate spread over its rows in proportion to the capacity (8) gives it
        served = full * np.where(pooled, shares, n) * scenario.search.utilisation_cap
        offered: dict[str, float] = {}
        for name_, v in zip(names, served, strict=True):
            offered[str(name_)] = offered.get(str(name_), 0.0) + float(v)
        routed = np.array(
            [
                float(v) * float(wl[str(k)].rate_rps or 0.0) / offered[str(k)] if offered[str(k)] > 0 else 0.0
                for k, v in zip(names, served, strict=True)
            ]
        )
        for name, w in wl.items():
            rows = used[names[used] == name]
            if w.kind == "online":
                capacity = float((full[rows] * n[rows]).sum()) + float((full * shares)[names == name].sum())
                util[name] = float(w.rate_rps or 0.0) / capacity if capacity > 0 else math.nan
            else:
                work = float((cap[rows] * h_all[rows]).sum())
                util[name] = float(w.requests or 0) / work if work > 0 else math.nan
        fleet = []
        sub = cands.iloc[used]
        order = used[
            np.asarray(
                sub.reset_index(drop=True)
                .sort_values(["workload", *(k for k in TIE_ORDER if k in sub.columns)], kind="stable")
                .index
            )
        ]
        picked = cands.iloc[order]
        columns = {
            k: picked[k].tolist()
            for k in (*(f for f in FLEET_FIELDS if f not in ("count", "utilisation")), "replicas", "e2e_s", "rate_rps")
        }  # the candidate's own columns; count and utilisation come from the solution
        eps = picked["ep"].tolist() if "ep" in picked.columns else [1] * len(order)
        gpus = picked["gpu"].tolist() if "gpu" in picked.columns else [""] * len(order)
        for j, i in enumerate(order):
            w = wl[str(columns["workload"][j])]
            online = w.kind == "online"
            price = float(columns["usd_per_hour"][j])
            hours = math.nan if online else float(h_all[i])
            fleet.append(
                FleetRow(
                    workload=str(columns["workload"][j]),
                    instance_type=str(columns["instance_type"][j]),
                    market=str(columns["market"][j]),
                    region=str(columns["region"][j]),
                    count=int(n[i]),
                    tp=int(columns["tp"][j]),
                    ep=int(eps[j]),
                    batch_size=int(columns["batch_size"][j]),
                    offload_fraction=float(columns["offload_fraction"][j]),
                    usd_per_hour=price,
                    ttft_ms=float(columns["ttft_ms"][j]),
                    tpot_ms=float(columns["tpot_ms"][j]),
                    tps=float(columns["tps"][j]),
                    utilisation=util[w.name],
                    kind=w.kind,
                    gpu=str(gpus[j]),
                    replicas=int(columns["replicas"][j]),
                    e2e_s=float(columns["e2e_s"][j]),
                    rate_rps=float(columns["rate_rps"][j]),
                    capacity_rps=float(full[i] * n[i]),
                    output_tokens_per_s=float(full[i] * n[i] * w.output_tokens),
                    instance_hours=hours,
                    cost_usd=price * n[i] * billed if online else price * hours,
                    split=((str(columns["workload"][j]), float(routed[i])),) if online else (),
                )
            )
        fleet.extend(_pool_rows(fm, x, shares, routed, billed))
        per_hour = float(sum(r.usd_per_hour * r.count for r in fleet))
        total = float(sum(r.cost_usd for r in fleet))
        objective = float(compiled.objective @ x + compiled.objective_offset)
        return cls(
            fleet=tuple(fleet),
            status=result.status,
            cost_usd_per_hour=per_hour,
            total_cost_usd=total,
            objective=objective,
            gap=result.gap,
            backend=result.backend,
            solve_seconds=seconds,
            objective_name=scenario.objective,
            horizon_h=horizon,
            model_size={**fm.lm.summary(), "compiled_rows": compiled.n_rows},
            candidates=n_cands,
            message=message or result.message,
            solver_version=result.solver_version,
        )

    @classmethod
    def from_dict(cls, payload: Any, field: str = "plan") -> Plan:
        """Read a plan back from :meth:`to_dict` / ``plan --json`` output (e.g. edited by hand).

        Parameters
        ----------
        payload
            The parsed JSON object.
        field
            How the source is named in error messages (the file's path).

        Raises
        ------
        InputError
            A field is missing or has the wrong type (one line naming it).
        """
        from solver.errors import InputError

        if not isinstance(payload, dict):
            raise InputError(field, "must be a JSON object as `infersave plan --json` prints it")
        rows = payload.get("fleet")
        if not isinstance(rows, list):
            raise InputError(f"{field}: fleet", "must be a list of fleet rows")
        kinds = {f.name: f for f in fields(FleetRow)}
        required = {"workload", "instance_type", "market", "region", "count", "tp", "batch_size"}
        fleet = []
        for i, row in enumerate(rows):
            where = f"{field}: fleet.{i}"
            if not isinstance(row, dict):
                raise InputError(where, "must be an object")
            missing = sorted(required - set(row))
            if missing:
                raise InputError(f"{where}.{missing[0]}", "is missing")
            values: dict[str, Any] = {}
            for name, value in row.items():
                if name not in kinds:
                    continue
                if name == "split":
                    values[name] = _split(value, f"{where}.split")
                    continue
                values[name] = _typed(value, kinds[name].type, f"{where}.{name}")
            values.setdefault("offload_fraction", 0.0)
            for name in ("usd_per_hour", "ttft_ms", "tpot_ms", "tps", "utilisation"):
                values.setdefault(name, math.nan)
            fleet.append(FleetRow(**values))
        status = payload.get("status", "")
        return cls(
            fleet=tuple(fleet),
            status=status if isinstance(status, str) else "",
            cost_usd_per_hour=math.nan,
            total_cost_usd=math.nan,
            objective=math.nan,
            gap=math.nan,
            backend=str(payload.get("backend", "")),
            solve_seconds=math.nan,
        )

    def to_frame(self) -> pd.DataFrame:
        """Return the fleet as a DataFrame (one row per fleet row; columns in :data:`FLEET_FIELDS` order first)."""
        cols = [f.name for f in fields(FleetRow)]
        return pd.DataFrame([asdict(r) for r in self.fleet], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: status, costs, gap, backend, solve time, the fleet rows and the plan's message."""
        return {
            "status": self.status,
            "objective_name": self.objective_name,
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "total_cost_usd": self.total_cost_usd,
            "objective": self.objective,
            "gap": self.gap,
            "backend": self.backend,
            "solver_version": self.solver_version,
            "solve_seconds": self.solve_seconds,
            "horizon_h": self.horizon_h,
            "model_size": dict(self.model_size),
            "candidates": self.candidates,
            "fleet": [_row_dict(r) for r in self.fleet],
            **({"message": self.message} if self.message else {}),
            **({"explanation": self.explanation} if self.explanation is not None else {}),
            **({"verification": self.verification} if self.verification else {}),
        }


def _row_dict(row: FleetRow) -> dict[str, Any]:
    """Return a fleet row as JSON: every field, ``ep`` only when the row uses expert parallelism (``ep`` > 1)."""
    out = asdict(row)
    if out["ep"] == 1:
        del out["ep"]
    return out


def _pool_rows(fm: FleetModel, x: np.ndarray, shares: np.ndarray, routed: np.ndarray, billed: float) -> list[FleetRow]:
    """One fleet row per shared pool with instances: its count ``N_p``, the classes it serves and their rates.

    ``workload`` names the workloads the classes come from (``+``-joined); ``ttft_ms``/``tpot_ms`` are the worst
    over the served classes (each predicted for the mix); ``utilisation`` is ``sum_k x_k / r_k`` over the
    pool's replicas ``rho · N`` (share of its sustainable load used).
    """
    if fm.pool_n is None or fm.pool_of is None:
        return []
    cands = fm.cands
    counts = np.rint(x[fm.pool_n.index]).astype(np.int64)
    names = cands["workload"].to_numpy()
    rate = cands["rate_rps"].to_numpy(dtype=float)
    out = []
    for p in np.flatnonzero(counts > 0).tolist():
        members = np.flatnonzero((fm.pool_of == p) & (shares > 0))
        if members.size == 0:  # instances a min_instances floor keeps, serving nothing: shown with one class at 0
            members = np.flatnonzero(fm.pool_of == p)[:1]
        members = members[np.argsort(names[members].astype(str), kind="stable")]
        lead = cands.iloc[int(np.flatnonzero(fm.pool_of == p)[0])]
        rho = float(lead["replicas"])
        load = float((routed[members] / rate[members]).sum())
        sources = dict.fromkeys(str(k).split("#")[0] for k in names[members])
        price = float(lead["usd_per_hour"])
        out.append(
            FleetRow(
                workload="+".join(sources),
                instance_type=str(lead["instance_type"]),
                market=str(lead["market"]),
                region=str(lead["region"]),
                count=int(counts[p]),
                tp=int(lead["tp"]),
                ep=int(lead["ep"]) if "ep" in lead.index else 1,
                batch_size=int(lead["batch_size"]),
                offload_fraction=float(lead["offload_fraction"]),
                usd_per_hour=price,
                ttft_ms=float(cands["ttft_ms"].to_numpy(dtype=float)[members].max()),
                tpot_ms=float(cands["tpot_ms"].to_numpy(dtype=float)[members].max()),
                tps=math.nan,
                utilisation=load / (rho * counts[p]),
                kind="online",
                gpu=str(lead["gpu"]) if "gpu" in cands.columns else "",
                replicas=int(rho),
                capacity_rps=float(routed[members].sum()),
                cost_usd=price * counts[p] * billed,
                pool=int(p),
                split=tuple((str(names[c]), float(routed[c])) for c in members),
            )
        )
    return out


def _typed(value: Any, kind: Any, where: str) -> Any:
    """Return ``value`` as the fleet field's type (``int``, ``float``, ``str``); null is NaN for floats."""
    from solver.errors import InputError

    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(where, f"must be an integer, got {value!r}")
        return value
    if name == "float":
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(where, f"must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise InputError(where, f"must be a string, got {value!r}")
    return value


def _split(value: Any, where: str) -> tuple[tuple[str, float], ...]:
    """Read a fleet row's ``split``: a list of ``[class, rate]`` pairs."""
    from solver.errors import InputError

    if not isinstance(value, list | tuple):
        raise InputError(where, "must be a list of [class, rate_rps] pairs")
    out = []
    for k, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InputError(f"{where}.{k}", "must be a [class, rate_rps] pair")
        out.append((_typed(pair[0], "str", f"{where}.{k}.0"), _typed(pair[1], "float", f"{where}.{k}.1")))
    return tuple(out)
