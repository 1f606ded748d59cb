"""Brute-force oracle: on random small candidate tables, enumerating every (type, count, batch, offload)
combination gives the same optimum as the MILP (with and without the exact presolve)."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planner_tables import scenario, table

from solver.errors import InfeasibleError
from solver.evaluate import evaluate
from solver.planner import solve_candidates
from solver.specs import SolveOptions

U = 0.8  # default utilisation cap
OPTS = SolveOptions(backend="auto", time_limit_s=30)

cand = st.fixed_dictionaries(
    {
        "instance_type": st.sampled_from(["a.x", "a.2x", "b.x"]),
        "region": st.sampled_from(["r1", "r2"]),
        "usd_per_hour": st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.5]),
        "rate_rps": st.sampled_from([0.5, 1.0, 2.0, 3.0]),
        "replicas": st.sampled_from([1, 2]),
        "batch_size": st.sampled_from([4, 8, 16]),
        "offload_fraction": st.sampled_from([0.0, 0.25, 0.5]),
        "ttft_ms": st.sampled_from([100.0, 300.0]),
        "total_gpu_gib": st.sampled_from([10.0, 25.0]),
    }
)


def brute_force(cands, scen):
    """Cheapest feasible fleet by enumeration; None when none exists.

    Counts run to the number that carries the workload alone (no optimal fleet needs more: dropping the
    surplus keeps demand and lowers cost), offline instance-hours are filled cheapest-first within the
    deadline (the exact optimum of the continuous hours for fixed counts).
    """
    wl = {w.name: w for w in scen.workloads}
    slo_ttft = {w.name: w.slo.ttft_ms for w in scen.workloads}
    lim = scen.limits
    horizon = scen.effective_horizon_h
    ok = (cands["total_gpu_gib"] <= cands["available_gpu_gib"]).to_numpy().copy()
    pairs = zip(cands["workload"], cands["ttft_ms"], strict=True)
    ok &= np.array([slo_ttft[w] is None or t <= slo_ttft[w] for w, t in pairs])
    ranges = []
    for i, r in cands.iterrows():
        w = wl[r["workload"]]
        full = r["rate_rps"] * r["replicas"]
        if not ok[i]:
            ranges.append([0])
        elif w.kind == "online":
            ranges.append(range(math.ceil(w.rate_rps / (U * full) - 1e-9) + 1))
        else:
            ranges.append(range(math.ceil(w.requests / (3600 * full * w.deadline_h) - 1e-9) + 1))
    price = cands["usd_per_hour"].to_numpy()
    best = None
    for n in itertools.product(*ranges):
        n = np.array(n)
        if lim.budget_usd_per_hour is not None and price @ n > lim.budget_usd_per_hour + 1e-9:
            continue
        if lim.max_total_instances is not None and n.sum() > lim.max_total_instances:
            continue
        if lim.max_instances and any(
            n[(cands["instance_type"] == t).to_numpy()].sum() > q for t, q in lim.max_instances.items()
        ):
            continue
        cost, feasible = 0.0, True
        for name, w in wl.items():
            rows = np.flatnonzero((cands["workload"] == name).to_numpy())
            full = (cands["rate_rps"] * cands["replicas"]).to_numpy()[rows]
            if w.kind == "online":
                if U * full @ n[rows] < w.rate_rps - 1e-9:
                    feasible = False
                    break
                cost += horizon * price[rows] @ n[rows]
            else:
                need = float(w.requests)
                for k in sorted(rows, key=lambda k: price[k] / full[rows.tolist().index(k)]):
                    per_hour = 3600 * cands["rate_rps"].iloc[k] * cands["replicas"].iloc[k]
                    hours = min(w.deadline_h * n[k], need / per_hour)
                    cost += price[k] * hours
                    need -= hours * per_hour
                if need > 1e-6:
                    feasible = False
                    break
        if feasible and (best is None or cost < best - 1e-12):
            best = cost
    return best


@settings(deadline=None)
@given(
    online=st.lists(cand, min_size=1, max_size=3),
    offline=st.lists(cand, min_size=0, max_size=2),
    rate=st.sampled_from([1.0, 2.5, 4.0]),
    requests=st.sampled_from([3000, 20000]),
    ttft_slo=st.sampled_from([None, 200.0]),
    limit=st.sampled_from(["none", "budget", "total", "quota"]),
)
def test_milp_equals_brute_force(online, offline, rate, requests, ttft_slo, limit):
    rows = [{**c, "workload": "on"} for c in online] + [{**c, "workload": "off", "kind": "offline"} for c in offline]
    for r in rows:
        r["family"] = r["instance_type"].split(".")[0]
    # one offer at one (tp, batch, offload) has one price and one performance: keep the first of duplicates
    cands = (
        table(*rows)
        .drop_duplicates(["workload", "instance_type", "region", "market", "tp", "batch_size", "offload_fraction"])
        .reset_index(drop=True)
    )
    workloads = [{"name": "on", "rate_rps": rate, "slo": {"ttft_ms": ttft_slo} if ttft_slo else {}}]
    if offline:
        workloads.append({"name": "off", "requests": requests, "deadline_h": 2})
    limits = {
        "none": {},
        "budget": {"budget_usd_per_hour": 6},
        "total": {"max_total_instances": 4},
        "quota": {"max_instances": {"a.x": 1}},
    }[limit]
    scen = scenario(workloads, limits=limits)
    expected = brute_force(cands, scen)
    for reduce in (True, False):
        if expected is None:
            with pytest.raises(InfeasibleError):
                solve_candidates(cands, scen, OPTS, reduce=reduce)
            continue
        plan = solve_candidates(cands, scen, OPTS, reduce=reduce)
        assert plan.status == "optimal"
        assert plan.objective == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert evaluate(plan, scen, performance=cands).ok
