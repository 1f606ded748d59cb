"""The planner's grouped solve (solve by workload, merge groups on broken quota rows) equals the whole-model solve."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from planner_tables import scenario, table

import solver.planning.decompose as decompose
from solver.errors import InfeasibleError
from solver.planning.planner import solve_candidates
from solver.specs import SolveOptions

OPTS = SolveOptions(time_limit_s=30, tie_break=False)

row = st.fixed_dictionaries(
    {
        "instance_type": st.sampled_from(["a.x", "a.2x", "b.x", "c.x"]),
        "usd_per_hour": st.sampled_from([0.5, 1.0, 2.0, 3.0]),
        "rate_rps": st.sampled_from([0.5, 1.0, 3.0, 6.0]),
        "region": st.sampled_from(["r1", "r2"]),
    }
)


def _solve(cands, scen, split):
    if not split:
        original = decompose.workload_blocks
        decompose.workload_blocks = lambda fm, compiled: None
    try:
        return solve_candidates(cands, scen, OPTS).objective
    except InfeasibleError:
        return None
    finally:
        if not split:
            decompose.workload_blocks = original


@given(
    rows=st.lists(st.tuples(st.integers(0, 3), row), min_size=4, max_size=10),
    rates=st.lists(st.sampled_from([1.0, 3.0, 8.0]), min_size=4, max_size=4),
    quota=st.sampled_from(
        [
            {"max_instances_per_family": {"a": 3}},
            {"max_instances": {"b.x": 2}},
            {"max_instances_per_region": {"r1": 4}},
            {"budget_usd_per_hour": 12.0},
            {"max_total_instances": 9},
            {"max_instances_per_family": {"a": 2, "c": 2}},
        ]
    ),
)
def test_grouped_solve_equals_whole_model(rows, rates, quota):
    names = ["w0", "w1", "w2", "w3"]
    cands = table(
        *[{"workload": names[k], "family": r["instance_type"].split(".")[0], **r} for k, r in rows],
        *[{"workload": n, "instance_type": "d.x", "family": "d", "usd_per_hour": 9.0, "rate_rps": 1.0} for n in names],
    )
    scen = scenario([{"name": n, "rate_rps": r} for n, r in zip(names, rates, strict=True)], limits=quota)
    grouped, whole = _solve(cands, scen, True), _solve(cands, scen, False)
    if whole is None:
        assert grouped is None
    else:
        assert grouped == pytest.approx(whole, rel=1e-6)
