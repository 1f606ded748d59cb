"""TEST-ONLY restatement of Mélange's ILP (Griggs et al., arXiv 2404.14527, section 5), and problem builders.

Mélange buckets requests by (input, output) size, splits each bucket's rate into ``S`` equal *slices*
(``S`` = the slice factor), and assigns every slice to one GPU type (binary ``A_{s,g}``) so that the load of
the slices on a type fits its integer count ``N_g``, a slice of rate ``λ_s`` of bucket ``k`` adding
``λ_s / T_{k,g}`` (``T_{k,g}``: one GPU's profiled maximum throughput for the bucket, req/s; load additivity):

    min  Σ_g c_g N_g
    s.t. Σ_g A_{s,g} = 1                         for every slice s
         Σ_s A_{s,g} · λ_s / T_{k(s),g} <= N_g   for every GPU type g
         A_{s,g} ∈ {0, 1} (0 where T_{k(s),g} = 0),  N_g ∈ Z≥0.

Written here from the paper's description, not from Mélange's code, and solved with SciPy's HiGHS MILP. Also
here: the published example (``melange/config/example.json`` of github.com/tyler-griggs/melange-release), the
6×6 bucket grid with per-GPU capacities from infersave's performance model, and the hand-made candidate table
that poses the same problem to infersave (one shared pool per GPU type, plus every bucket alone on each type).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

from solver.specs import Scenario, Search, Workload

# melange/config/example.json (tyler-griggs/melange-release, commit ebba701b): two GPU types, 2×2 buckets,
# 30 req/s; README/paper answer: 3 × A10G + 1 × A100-80GB = $6.70/h.
EXAMPLE_COSTS = {"A10G": 1.01, "A100-80GB": 3.67}
EXAMPLE_TPUTS = {"A10G": [[2, 1], [5, 2]], "A100-80GB": [[20, 20], [40, 20]]}
EXAMPLE_DISTRIBUTION = [[0.2, 0.1], [0.5, 0.2]]
EXAMPLE_RATE = 30.0
EXAMPLE_ANSWER = {"A10G": 3, "A100-80GB": 1}
EXAMPLE_ANSWER_COST = 6.70


@dataclass(frozen=True)
class MelangeResult:
    """Mélange's ILP answer: status (``optimal``, ``time_limit`` with an incumbent, ``none``), cost, counts."""

    status: str
    cost: float
    counts: dict[str, int]
    seconds: float
    bound: float


def melange_ilp(
    rates: list[float], tputs: dict[str, list[float]], costs: dict[str, float], slice_factor: int, time_limit_s: float
) -> MelangeResult:
    """Solve Mélange's ILP (module docstring) for bucket ``rates`` and per-GPU ``tputs`` (0: infeasible)."""
    gpus = list(costs)
    k_n, g_n, s = len(rates), len(gpus), slice_factor
    slices = [(k, rates[k] / s) for k in range(k_n) for _ in range(s) if rates[k] > 0]
    n_s = len(slices)
    n_a = n_s * g_n
    tput = np.array([[float(tputs[g][k]) for g in gpus] for k in range(k_n)])
    c = np.concatenate([np.zeros(n_a), np.array([costs[g] for g in gpus])])
    ub = np.concatenate([np.ones(n_a), np.full(g_n, np.inf)])
    for i, (k, _lam) in enumerate(slices):
        for g in range(g_n):
            if tput[k, g] <= 0:
                ub[i * g_n + g] = 0.0
    assign = np.zeros((n_s, n_a + g_n))
    for i in range(n_s):
        assign[i, i * g_n : (i + 1) * g_n] = 1.0
    load = np.zeros((g_n, n_a + g_n))
    for i, (k, lam) in enumerate(slices):
        for g in range(g_n):
            if tput[k, g] > 0:
                load[g, i * g_n + g] = lam / tput[k, g]
    for g in range(g_n):
        load[g, n_a + g] = -1.0
    start = time.perf_counter()
    res = milp(
        c,
        constraints=[LinearConstraint(assign, 1.0, 1.0), LinearConstraint(load, -np.inf, 0.0)],
        integrality=np.ones(n_a + g_n),
        bounds=Bounds(np.zeros(n_a + g_n), ub),
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-9},
    )
    seconds = time.perf_counter() - start
    if res.x is None:
        return MelangeResult("none", float("nan"), {}, seconds, float("nan"))
    counts = {g: round(res.x[n_a + j]) for j, g in enumerate(gpus)}
    bound = float(getattr(res, "mip_dual_bound", float("nan")))
    status = "optimal" if res.status == 0 else "time_limit"
    return MelangeResult(status, float(sum(costs[g] * counts[g] for g in gpus)), counts, seconds, bound)


def class_names(k_n: int) -> list[str]:
    """Names of the bucket classes of a hand-made problem."""
    return [f"b{k}" for k in range(k_n)]


def scenario_for(rates: list[float], sizes: list[tuple[int, int]], model: str = "llama-2-7b") -> Scenario:
    """Scenario with one online workload per bucket, no SLO (the capacities carry it), utilisation cap 1.

    Mélange loads a GPU to its profiled maximum throughput, so the cap is 1 here, as in its ILP.
    """
    names = class_names(len(rates))
    workloads = [
        Workload(name=n, model=model, input_tokens=i, output_tokens=o, rate_rps=r)
        for n, r, (i, o) in zip(names, rates, sizes, strict=True)
        if r > 0
    ]
    return Scenario(workloads=workloads, search=Search(utilisation_cap=1.0))


def hand_table(rates: list[float], tputs: dict[str, list[float]], costs: dict[str, float], sharing: bool = True):
    """Candidate table posing Mélange's problem to infersave: one GPU = one instance with one replica.

    Every (bucket, GPU type) with a positive throughput is a candidate on its own (``pool = -1``); with
    ``sharing``, each GPU type is also one pool serving every bucket it can, at the same throughputs (Mélange's
    load additivity). Memory and latency columns are placeholders that every rule accepts (no SLO is set).
    """
    rows = []
    names = class_names(len(rates))
    for p, (g, cost) in enumerate(costs.items()):
        for k, name in enumerate(names):
            t = float(tputs[g][k])
            if t <= 0 or rates[k] <= 0:
                continue
            for pool in [-1, p] if sharing else [-1]:
                rows.append(
                    {
                        "workload": name,
                        "instance_type": g,
                        "family": g,
                        "region": "any",
                        "market": "on_demand",
                        "usd_per_hour": cost,
                        "gpu": g,
                        "tp": 1,
                        "replicas": 1,
                        "batch_size": 1,
                        "offload_fraction": 0.0,
                        "total_gpu_gib": 0.0,
                        "available_gpu_gib": 1.0,
                        "offloaded_kv_gib": 0.0,
                        "host_available_gib": 1.0,
                        "ttft_ms": 0.0,
                        "tpot_ms": 0.0,
                        "e2e_s": 1.0 / t,
                        "tps": 0.0,
                        "rate_rps": t,
                        "kind": "online",
                        "pool": pool,
                    }
                )
    return pd.DataFrame(rows)


def example_problem() -> tuple[list[float], dict[str, list[float]], dict[str, float], list[tuple[int, int]]]:
    """Mélange's published example flattened row-major: bucket rates, throughputs, costs, nominal sizes."""
    rates = [EXAMPLE_RATE * x for row in EXAMPLE_DISTRIBUTION for x in row]
    tputs = {g: [float(x) for row in t for x in row] for g, t in EXAMPLE_TPUTS.items()}
    sizes = [(i, o) for i in (25, 100) for o in (25, 100)]  # example.json gives no sizes; nominal only
    return rates, tputs, dict(EXAMPLE_COSTS), sizes


# The 6×6 grid: sizes 25 … 2,000 tokens (log-spaced), Llama-2-7B, TPOT <= 120 ms, four GPU types priced per GPU
# from the shipped AWS catalog (us-east-1 on-demand): g5.xlarge, g6.xlarge, p4de.24xlarge / 8, p5.4xlarge.
GRID_SIZES = [25, 60, 145, 350, 836, 2000]
GRID_GPUS = {
    # gpu: (catalog instance, usd/h per GPU, usable MiB per GPU, host GiB per GPU)
    "A10G": ("g5.xlarge", 1.006, 22888.0, 16.0),
    "L4": ("g6.xlarge", 0.8048, 22888.0, 16.0),
    "A100-80GB": ("p4de.24xlarge / 8", 27.44705 / 8, 81920.0, 1152.0 / 8),
    "H100": ("p5.4xlarge", 6.88, 81920.0, 256.0),
}
GRID_TPOT_MS = 120.0
GRID_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def grid_capacities(model: str = "llama-2-7b", tpot_ms: float = GRID_TPOT_MS) -> tuple[dict[str, list[float]], list]:
    """Per GPU and bucket (row-major over input × output), the largest ``b / E2E`` with TPOT within the SLO.

    infersave's performance model (vLLM profile, continuous batching) on one GPU, best batch of
    :data:`GRID_BATCHES` that fits; 0 where none meets the SLO. Returns (throughputs, sizes).
    """
    from solver.data.models import get_model
    from solver.performance.model import predict_frame

    spec = get_model(model)
    frame = pd.DataFrame(
        [
            {
                "gpu": g,
                "gpu_count": 1.0,
                "gpu_memory_mib": mib,
                "host_memory_gib": host,
                "tp": 1,
                "batch_size": b,
                "offload_fraction": 0.0,
            }
            for g, (_i, _p, mib, host) in GRID_GPUS.items()
            for b in GRID_BATCHES
        ]
    )
    sizes = [(i, o) for i in GRID_SIZES for o in GRID_SIZES]
    tputs: dict[str, list[float]] = {g: [] for g in GRID_GPUS}
    for i, o in sizes:
        pred = predict_frame(frame, spec, input_tokens=i, output_tokens=o, engine="vllm", batching="continuous")
        ok = pred["fits"].to_numpy(dtype=bool) & (pred["tpot_ms"].to_numpy(dtype=float) <= tpot_ms)
        rate = np.where(ok, pred["batch_size"].to_numpy(dtype=float) / pred["e2e_s"].to_numpy(dtype=float), 0.0)
        for g in GRID_GPUS:
            sel = (pred["gpu"] == g).to_numpy()
            tputs[g].append(float(rate[sel].max()))
    return tputs, sizes


def grid_problem(total_rate: float = 100.0, shares: list[float] | None = None):
    """The 6×6 grid problem: bucket rates (uniform unless ``shares``), throughputs, per-GPU costs, sizes."""
    tputs, sizes = grid_capacities()
    k_n = len(sizes)
    shares = shares if shares is not None else [1.0 / k_n] * k_n
    rates = [total_rate * s for s in shares]
    costs = {g: v[1] for g, v in GRID_GPUS.items()}
    return rates, tputs, costs, sizes
