"""Offline dominance of the exact presolve (``formulations/README.md``, "Exact presolve").

``d`` dominates ``c`` (same workload, type, region, market, price) when ``g_d >= g_c``, ``m_d <= m_c`` and
``l_d - l_c <= (g_d - g_c) · m_c`` with ``g = 3600·θ·r·ρ``, ``l = b·ρ``, ``m = max(m_bill, e2e/(3600·θ))``.
Checked three ways: the optimum with the presolve equals brute force and the solve without it on random
offline tables (both billings, deadlines down to below the 60 s billing minimum); the kept set is exactly
the undominated rows (rule written out here again); and hand-made cases on both sides of the boundary.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planner_tables import scenario, table
from test_oracle import check, hours_and_share, make_table

from solver.planning.planner import solve_candidates
from solver.planning.presolve import reduce_candidates
from solver.specs import SolveOptions

OPTS = SolveOptions(backend="auto", time_limit_s=30)

# candidates of few (type, price) groups, so that dominance has pairs to compare
off_cand = st.fixed_dictionaries(
    {
        "instance_type": st.sampled_from(["a.x", "a.x", "b.x"]),
        "region": st.just("r1"),
        "usd_per_hour": st.sampled_from([1.0, 1.0, 2.0]),
        "rate_rps": st.sampled_from([0.5, 1.0, 2.0, 3.0]),
        "replicas": st.sampled_from([1, 2]),
        "tp": st.sampled_from([1, 2]),
        "batch_size": st.sampled_from([4, 8, 100, 256]),
        "offload_fraction": st.sampled_from([0.0, 0.25]),
        "total_gpu_gib": st.just(10.0),
        "ttft_ms": st.just(100.0),
        "e2e_s": st.sampled_from([4.0, 30.0, 600.0, None]),  # None: e2e = b / r, as enumerated candidates have
    }
)
on_cand = {"instance_type": "c.x", "usd_per_hour": 0.5, "rate_rps": 2.0, "replicas": 1}


def offline_rows(drawn):
    """Drawn offline candidates with ``e2e_s = b / r`` where none was drawn."""
    return [{**c, "e2e_s": c["e2e_s"] or c["batch_size"] / c["rate_rps"]} for c in drawn]


def rule_terms(cands, scen):
    """(g, l, m) per row of an offline table, from the README's definitions (not from the planner)."""
    off = scen.workloads[-1]
    _, theta = hours_and_share(scen.billing, off.deadline_h)
    least_bill = 1 / 60 if scen.billing == "per_second" else 1.0
    g = 3600 * theta * cands["rate_rps"].to_numpy(float) * cands["replicas"].to_numpy(float)
    lost = cands["batch_size"].to_numpy(float) * cands["replicas"].to_numpy(float)
    m = np.maximum(least_bill, cands["e2e_s"].to_numpy(float) / (3600 * theta))
    return g, lost, m


@settings(deadline=None, max_examples=40)
@given(
    offline=st.lists(off_cand, min_size=2, max_size=4),
    deadline_h=st.sampled_from([2.0, 0.5, 0.01, 0.005]),
    jobs=st.sampled_from([0.002, 0.011, 0.05, 1.0, 3.0]),
    limit=st.sampled_from(["none", "total", "min_a", "budget_usd"]),
    billing=st.sampled_from(["per_second", "per_hour"]),
)
def test_offline_presolve_keeps_the_brute_force_optimum(offline, deadline_h, jobs, limit, billing):
    """Optimum with the presolve == brute force == optimum without it; requests scale with the deadline."""
    cands = make_table([on_cand], offline_rows(offline))
    big_h, theta = hours_and_share(billing, deadline_h)
    # from a few requests (the lost batches decide) to a few instances' whole-deadline work at 1 request/s
    requests = max(1, round(jobs * 3600 * theta * big_h))
    limits = {
        "none": {},
        "total": {"max_total_instances": 4},
        "min_a": {"min_instances": {"a.x": 2}},
        "budget_usd": {"budget_usd": 3},
    }[limit]
    workloads = [{"name": "on", "rate_rps": 1.0}, {"name": "off", "requests": requests, "deadline_h": deadline_h}]
    check(cands, scenario(workloads, limits=limits, billing=billing))


@settings(deadline=None, max_examples=60)
@given(
    offline=st.lists(off_cand, min_size=1, max_size=12),
    deadline_h=st.sampled_from([8.0, 0.5, 0.01]),
    billing=st.sampled_from(["per_second", "per_hour"]),
)
def test_kept_rows_are_exactly_the_undominated_ones(offline, deadline_h, billing):
    """Every removed row has a kept dominator in its group, and no kept row dominates another."""
    cands = make_table([], offline_rows(offline))
    scen = scenario([{"name": "off", "requests": 1000, "deadline_h": deadline_h}], billing=billing)
    big_h, theta = hours_and_share(billing, deadline_h)
    fits = (cands["e2e_s"] <= 3600 * theta * big_h).to_numpy()
    kept, removed = reduce_candidates(cands, scen)
    g, lost, m = rule_terms(cands, scen)
    group = (cands["instance_type"] + "/" + cands["usd_per_hour"].astype(str)).to_numpy()

    def dominates(d, c):
        return group[d] == group[c] and g[d] >= g[c] and m[d] <= m[c] and lost[d] - lost[c] <= (g[d] - g[c]) * m[c]

    keep = set(kept.index.tolist())
    assert keep <= set(np.flatnonzero(fits).tolist())
    for c in np.flatnonzero(fits).tolist():
        if c not in keep:
            assert any(dominates(d, c) for d in keep), f"row {c} removed without a kept dominator"
        else:
            assert not any(dominates(d, c) for d in keep if d != c), f"kept row {c} is dominated"
    assert removed.get("off", {}).get("dominated", 0) == int(fits.sum()) - len(keep)


def offline_pair(deadline_h, billing, requests, big):
    """A small-batch candidate and a larger one on the same offer, and the scenario that plans them."""
    small = {"batch_size": 4, "rate_rps": 1.0, "e2e_s": 4.0, "tp": 1}
    cands = table(*[{**r, "workload": "off", "kind": "offline", "total_gpu_gib": 10.0} for r in (small, big)])
    return cands, scenario([{"name": "off", "requests": requests, "deadline_h": deadline_h}], billing=billing)


def test_larger_batch_with_more_capacity_wins_when_its_loss_is_recovered():
    """Per hour, m = 1 h: 8 more lost requests cost less than 3600 more per hour, so the small batch goes."""
    big = {"batch_size": 12, "rate_rps": 2.0, "e2e_s": 6.0, "tp": 2}
    cands, scen = offline_pair(2.0, "per_hour", 5000, big)
    kept, removed = reduce_candidates(cands, scen)
    assert kept["batch_size"].tolist() == [12]
    assert removed["off"] == {"dominated": 1}
    # the previous (capacity up, loss down) front kept both; the optimum is the same either way
    plan = solve_candidates(cands, scen, OPTS)
    assert plan.objective == pytest.approx(solve_candidates(cands, scen, OPTS, reduce=False).objective)


def test_larger_batch_is_not_dominating_when_a_short_job_cannot_recover_its_loss():
    """Per second, both at the 60 s minimum (m = 1/60 h): 3600 more per hour recovers 60 < 96 more lost."""
    big = {"batch_size": 100, "rate_rps": 2.0, "e2e_s": 50.0, "tp": 2}  # e2e = b / r
    cands, scen = offline_pair(2.0, "per_second", 80, big)
    g, lost, m = rule_terms(cands, scen)
    assert g[1] > g[0] and m[1] == m[0]  # only the third condition fails
    assert lost[1] - lost[0] > (g[1] - g[0]) * m[0]
    kept, removed = reduce_candidates(cands, scen)
    assert sorted(kept["batch_size"].tolist()) == [4, 100]
    assert "dominated" not in removed.get("off", {})
    # and keeping it matters: 80 requests (+4 lost) take 84 s on the small batch, (80 + 100) / 2 = 90 s on
    # the large one
    plan = solve_candidates(cands, scen, OPTS)
    assert [r.batch_size for r in plan.fleet] == [4]
    assert plan.objective == pytest.approx(84 / 3600)
    assert plan.objective == pytest.approx(solve_candidates(cands, scen, OPTS, reduce=False).objective)


def test_larger_least_hours_blocks_dominance():
    """More capacity and no more loss, but a longer batch (larger m): not dominating (row 11 would break)."""
    big = {"batch_size": 4, "rate_rps": 1.5, "e2e_s": 3000.0, "tp": 2}  # e2e independent of b / r, as in tables
    cands, scen = offline_pair(1.0, "per_second", 100, big)
    g, lost, m = rule_terms(cands, scen)
    assert g[1] > g[0] and lost[1] <= lost[0] and m[1] > m[0]
    kept, _ = reduce_candidates(cands, scen)
    assert len(kept) == 2
    assert math.isclose(
        solve_candidates(cands, scen, OPTS).objective, solve_candidates(cands, scen, OPTS, reduce=False).objective
    )
