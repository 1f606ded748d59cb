"""Brute-force oracle: on random small candidate tables, enumerating every (type, count, batch, offload)
combination — and, billed per started hour, every split of whole billed hours — gives the same optimum as the
MILP (with and without the exact presolve), under every kind of limit, both billings and both objectives.

The enumeration encodes ``formulations/README.md`` directly, written out here independently of the planner:
an offline candidate c with ``n`` instances and ``h`` billed hours completes ``3600·θ·r·ρ·h − b·ρ·n``
requests, needs ``max(m_bill, e2e/(3600·θ))·n ≤ h ≤ H·n`` and ``e2e ≤ 3600·θ·H``; online instances cost
``p·T`` (``p·ceil(T)`` per started hour).
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planner_tables import scenario, table

from solver.errors import InfeasibleError
from solver.planning.evaluate import evaluate
from solver.planning.planner import solve_candidates
from solver.specs import SolveOptions

U = 0.8  # default utilisation cap
OUT_TOKENS = 100  # planner_tables' output_tokens
OPTS = SolveOptions(backend="auto", time_limit_s=30)
KEYS = ["workload", "instance_type", "region", "market", "tp", "batch_size", "offload_fraction"]

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
        "e2e_s": st.sampled_from([4.0, 600.0, 2000.0]),
    }
)

LIMITS = {
    "none": {},
    "budget": {"budget_usd_per_hour": 6},
    "total": {"max_total_instances": 4},
    "quota": {"max_instances": {"a.x": 1}},
    "family": {"max_instances_per_family": {"a": 2}},
    "region": {"max_instances_per_region": {"r1": 2}},
    "budget_usd": {"budget_usd": 12},
    "min_a": {"min_instances": {"a.x": 2}},
    "min_b": {"min_instances": {"b.x": 1}, "max_total_instances": 5},
}


def hours_and_share(billing, deadline_h):
    """(H, θ): billed hours per instance cap and worked share (README, "Data"), written out again."""
    if billing == "per_second":
        return (deadline_h, 1.0) if deadline_h >= 1 / 60 else (1 / 60, 60 * deadline_h)
    return (float(math.floor(deadline_h)), 1.0) if deadline_h >= 1 else (1.0, deadline_h)


def offline_cost(rows, n, need, big_h, theta, billing, budget_usd):
    """Cheapest billed hours for offline counts ``n`` (None if infeasible): exact LP or integer enumeration."""
    least_bill = 1 / 60 if billing == "per_second" else 1.0
    g = np.array([3600 * theta * r["rate_rps"] * r["replicas"] for r in rows])
    lost = np.array([r["batch_size"] * r["replicas"] for r in rows], dtype=float)
    price = np.array([r["usd_per_hour"] for r in rows])
    low = np.array([max(least_bill, r["e2e_s"] / (3600 * theta)) for r in rows]) * n
    high = big_h * n
    if np.any(low > high + 1e-12):
        return None
    if billing == "per_second":  # continuous hours: the lower bounds, then cheapest work first
        h = low.copy()
        left = need - float(g @ h - lost @ n)
        for k in np.argsort(price / g, kind="stable"):
            if left <= 0:
                break
            add = min(high[k] - h[k], left / g[k])
            h[k] += add
            left -= add * g[k]
        best = float(price @ h) if left <= 1e-6 else None
    else:
        best = None
        choices = [range(math.ceil(low[k] - 1e-9), math.floor(high[k] + 1e-9) + 1) for k in range(len(rows))]
        for hs in itertools.product(*choices):
            h = np.array(hs, dtype=float)
            if g @ h - lost @ n >= need - 1e-6:
                c = float(price @ h)
                best = c if best is None else min(best, c)
    if best is not None and budget_usd is not None and best > budget_usd + 1e-9:
        return None
    return best


def brute_force(cands, scen):
    """Best objective by enumeration (min cost, or max tokens/s); None when no fleet exists.

    Online counts run to what carries the workload alone (max_throughput: to what the hourly budget allows),
    offline counts to what carries it alone at full hours, each raised to its type's ``min_instances`` floor,
    plus one: no optimal fleet needs more.
    """
    wl = {w.name: w for w in scen.workloads}
    lim = scen.limits
    maxtp = scen.objective == "max_throughput"
    billed_t = scen.effective_horizon_h
    if scen.billing == "per_hour":
        billed_t = math.ceil(billed_t - 1e-9)
    recs = cands.to_dict("records")
    off = wl.get("off")
    big_h, theta = hours_and_share(scen.billing, off.deadline_h) if off else (0.0, 1.0)
    ranges = []
    for r in recs:
        w = wl[r["workload"]]
        ok = r["total_gpu_gib"] <= r["available_gpu_gib"]
        ok &= w.slo.ttft_ms is None or r["ttft_ms"] <= w.slo.ttft_ms
        floor = lim.min_instances.get(r["instance_type"], 0)
        if w.kind == "online":
            if maxtp:
                top = math.floor(lim.budget_usd_per_hour / r["usd_per_hour"] + 1e-9)
            else:
                top = math.ceil(w.rate_rps / (U * r["rate_rps"] * r["replicas"]) - 1e-9)
        else:
            ok &= r["e2e_s"] <= 3600 * theta * big_h
            per = 3600 * theta * r["rate_rps"] * r["replicas"] * big_h - r["batch_size"] * r["replicas"]
            top = math.ceil(w.requests / per - 1e-9) if per > 0 else 0
        ranges.append(range(max(top, floor) + 2) if ok else range(1))
    on_idx = [i for i, r in enumerate(recs) if wl[r["workload"]].kind == "online"]
    off_idx = [i for i, r in enumerate(recs) if wl[r["workload"]].kind == "offline"]
    price = cands["usd_per_hour"].to_numpy(dtype=float)
    # online combos, vectorised
    on_n = np.array(list(itertools.product(*[ranges[i] for i in on_idx])), dtype=float).reshape(-1, len(on_idx))
    full = np.array([recs[i]["rate_rps"] * recs[i]["replicas"] for i in on_idx])
    on_ok = U * on_n @ full >= wl["on"].rate_rps - 1e-9
    on_value = on_n @ (U * full * OUT_TOKENS) if maxtp else billed_t * on_n @ price[on_idx]
    best = None
    for off_combo in itertools.product(*[ranges[i] for i in off_idx]):
        n_off = np.array(off_combo, dtype=float)
        extra = 0.0
        if off_idx:
            rows = [recs[i] for i in off_idx]
            extra = offline_cost(rows, n_off, off.requests, big_h, theta, scen.billing, lim.budget_usd)
            if extra is None:
                continue
        n = np.zeros((len(on_n), len(recs)))
        n[:, on_idx] = on_n
        n[:, off_idx] = n_off
        ok = on_ok.copy()
        if lim.budget_usd_per_hour is not None:
            ok &= n @ price <= lim.budget_usd_per_hour + 1e-9
        if lim.max_total_instances is not None:
            ok &= n.sum(axis=1) <= lim.max_total_instances
        for mapping, col, sense in (
            (lim.max_instances, "instance_type", "le"),
            (lim.max_instances_per_family, "family", "le"),
            (lim.max_instances_per_region, "region", "le"),
            (lim.min_instances, "instance_type", "ge"),
        ):
            for key, q in mapping.items():
                total = n[:, (cands[col] == key).to_numpy()].sum(axis=1)
                ok &= total <= q if sense == "le" else total >= q
        if not ok.any():
            continue
        value = on_value[ok] + (0.0 if maxtp else extra)
        top = float(value.max() if maxtp else value.min())
        if best is None or (top > best if maxtp else top < best):
            best = top
    return best


def make_table(online, offline):
    rows = [{**c, "workload": "on", "e2e_s": 4.0} for c in online]
    rows += [{**c, "workload": "off", "kind": "offline"} for c in offline]
    for r in rows:
        r["family"] = r["instance_type"].split(".")[0]
    # one offer at one (tp, batch, offload) has one price and one performance: keep the first of duplicates
    return table(*rows).drop_duplicates(KEYS).reset_index(drop=True)


def check(cands, scen):
    expected = brute_force(cands, scen)
    for reduce in (True, False):
        if expected is None:
            with pytest.raises(InfeasibleError):
                solve_candidates(cands, scen, OPTS, reduce=reduce)
            continue
        plan = solve_candidates(cands, scen, OPTS, reduce=reduce)
        assert plan.status == "optimal"
        assert plan.objective == pytest.approx(expected, rel=1e-6, abs=1e-9)
        report = evaluate(plan, scen, performance=cands)
        assert report.ok, str(report)


@settings(deadline=None, max_examples=40)
@given(
    online=st.lists(cand, min_size=1, max_size=2),
    offline=st.lists(cand, min_size=0, max_size=2),
    rate=st.sampled_from([1.0, 2.5, 4.0]),
    requests=st.sampled_from([3000, 20000]),
    deadline_h=st.sampled_from([2.0, 0.5]),
    ttft_slo=st.sampled_from([None, 200.0]),
    limit=st.sampled_from(sorted(LIMITS)),
    billing=st.sampled_from(["per_second", "per_hour"]),
    horizon_h=st.sampled_from([None, 2.5]),
)
def test_milp_equals_brute_force(online, offline, rate, requests, deadline_h, ttft_slo, limit, billing, horizon_h):
    cands = make_table(online, offline)
    workloads = [{"name": "on", "rate_rps": rate, "slo": {"ttft_ms": ttft_slo} if ttft_slo else {}}]
    if offline:
        workloads.append({"name": "off", "requests": requests, "deadline_h": deadline_h})
    extra = {"horizon_h": horizon_h} if horizon_h else {}
    check(cands, scenario(workloads, limits=LIMITS[limit], billing=billing, **extra))


@settings(deadline=None, max_examples=25)
@given(
    online=st.lists(cand, min_size=1, max_size=2),
    offline=st.lists(cand, min_size=0, max_size=1),
    rate=st.sampled_from([0.5, 2.5]),
    limit=st.sampled_from(["none", "quota", "family", "region", "min_a", "budget_usd"]),
    billing=st.sampled_from(["per_second", "per_hour"]),
)
def test_max_throughput_equals_brute_force(online, offline, rate, limit, billing):
    cands = make_table(online, offline)
    workloads = [{"name": "on", "rate_rps": rate}]
    if offline:
        workloads.append({"name": "off", "requests": 3000, "deadline_h": 2.0})
    limits = {"budget_usd_per_hour": 6, **LIMITS[limit]}
    check(cands, scenario(workloads, limits=limits, billing=billing, objective="max_throughput"))
