"""The one-coupling-row method (per-workload fleet columns, multiple-choice master) equals the whole-model solve.

Random tables of four online and two offline workloads coupled by one quota, total cap or hourly budget; the
stage-one cost of the decomposed solve (which must take the column path at least sometimes) is compared with the
whole-model MILP, itself checked against brute force in ``tests/test_oracle.py``.
"""

import numpy as np
import pytest
from planner_tables import scenario, table

import solver.planning.decompose as decompose
from solver.errors import InfeasibleError
from solver.planning.planner import solve_candidates
from solver.specs import SolveOptions

OPTS = SolveOptions(time_limit_s=30, tie_break=False)
LIMITS = [
    {"max_instances_per_family": {"a": 3}},
    {"max_instances_per_family": {"b": 2}},
    {"max_total_instances": 7},
    {"budget_usd_per_hour": 9.0},
    {"budget_usd_per_hour": 14.5},
]


def _tables(seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    names = ["w0", "w1", "w2", "w3", "o0", "o1"]
    for name in names:
        offline = name.startswith("o")
        for _ in range(int(rng.integers(2, 4))):
            itype = str(rng.choice(["a.x", "a.2x", "b.x", "c.x"]))
            rows.append(
                {
                    "workload": name,
                    "instance_type": itype,
                    "family": itype.split(".")[0],
                    "usd_per_hour": float(rng.choice([0.5, 1.0, 2.0, 3.0])),
                    "rate_rps": float(rng.choice([0.5, 1.0, 3.0, 6.0])),
                    "region": str(rng.choice(["r1", "r2"])),
                    **({"kind": "offline"} if offline else {}),
                }
            )
        rows.append(
            {
                "workload": name,
                "instance_type": "d.x",
                "family": "d",
                "usd_per_hour": 9.0,
                "rate_rps": 1.0,
                **({"kind": "offline"} if offline else {}),
            }
        )
    workloads = [{"name": n, "rate_rps": float(rng.choice([1.0, 3.0, 8.0]))} for n in names[:4]]
    workloads += [{"name": n, "requests": int(rng.choice([2000, 9000])), "deadline_h": 2} for n in names[4:]]
    return table(*rows), workloads


def _spy_one_row(monkeypatch) -> list[bool]:
    """Record, per call of the one-row method, whether it returned a plan."""
    used: list[bool] = []
    original = decompose.solve_one_row

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        used.append(out is not None)
        return out

    monkeypatch.setattr(decompose, "solve_one_row", spy)
    return used


def _solve(cands, scen, split: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not split:
            m.setattr(decompose, "workload_blocks", lambda fm, compiled: None)
        try:
            return solve_candidates(cands, scen, OPTS).objective
        except InfeasibleError:
            return None


@pytest.mark.parametrize("limit", LIMITS, ids=lambda d: next(iter(d)))
def test_one_row_method_equals_whole_model(limit, monkeypatch):
    used = _spy_one_row(monkeypatch)
    for seed in range(12):
        cands, workloads = _tables(seed)
        scen = scenario(workloads, limits=limit, horizon_h=2)
        split, whole = _solve(cands, scen, True, monkeypatch), _solve(cands, scen, False, monkeypatch)
        if whole is None:
            assert split is None, seed
        else:
            assert split == pytest.approx(whole, rel=1e-6), seed
    if "budget_usd_per_hour" not in limit:  # on these budgets the method hands over to merging (still exact)
        assert any(used), "the one-row method never ran: the test does not cover it"


def test_one_row_method_with_tie_break_matches_the_whole_model_plan(monkeypatch):
    # with a tie-break the workloads on the row are tie-broken together: same cost and same fleet as the whole model
    for seed in range(6):
        cands, workloads = _tables(seed)
        scen = scenario(workloads, limits=LIMITS[0], horizon_h=2)
        opts = SolveOptions(time_limit_s=30)
        try:
            split = solve_candidates(cands, scen, opts)
        except InfeasibleError:
            continue
        with monkeypatch.context() as m:
            m.setattr(decompose, "workload_blocks", lambda fm, compiled: None)
            whole = solve_candidates(cands, scen, opts)
        assert split.objective == pytest.approx(whole.objective, rel=1e-6), seed
        key = ["workload", "instance_type", "region", "count"]
        assert split.to_frame()[key].to_dict("records") == whole.to_frame()[key].to_dict("records"), seed


def test_one_row_method_on_a_binding_budget_equals_whole_model(monkeypatch):
    """Offline jobs under an hourly budget below the uncoupled optimum's spend: the column path, the same cost."""
    from solver.data.scenario import scenario_from_dict
    from solver.planning.evaluate import evaluate
    from solver.planning.planner import plan

    jobs = [
        {"name": f"job{i}", "model": m, "input_tokens": 512, "output_tokens": 128, "requests": r, "deadline_h": d}
        for i, (m, r, d) in enumerate(
            [
                ("llama-3.1-8b", 20_000, 4),
                ("mistral-7b", 40_000, 8),
                ("qwen2.5-7b", 60_000, 12),
                ("opt-6.7b", 20_000, 8),
            ]
        )
    ]
    base = {
        "markets": ["on_demand"],
        "regions": ["us-east-1"],
        "instances": ["g6e.xlarge", "g6.xlarge", "g5.xlarge", "g4dn.xlarge"],
        "workloads": jobs,
    }
    free = plan(scenario_from_dict(base), SolveOptions(time_limit_s=60))
    spend = sum(r.count * r.usd_per_hour for r in free.fleet)
    sc = scenario_from_dict({**base, "limits": {"budget_usd_per_hour": round(0.75 * spend, 4)}})
    used = _spy_one_row(monkeypatch)
    split = plan(sc, SolveOptions(time_limit_s=60))
    assert any(used), "the one-row method did not solve the budget"
    assert split.objective > free.objective * (1 + 1e-6)  # the budget binds
    assert evaluate(split, sc).ok
    assert sum(r.count * r.usd_per_hour for r in split.fleet) <= 0.75 * spend + 1e-6
    with monkeypatch.context() as m:
        m.setattr(decompose, "workload_blocks", lambda fm, compiled: None)
        whole = plan(sc, SolveOptions(time_limit_s=60))
    assert split.objective == pytest.approx(whole.objective, rel=1e-6)
