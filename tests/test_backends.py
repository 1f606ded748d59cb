"""Golden instances with a known optimum, solved by every available backend (objectives equal, rel 1e-6)."""

import multiprocessing
import sys

import pytest
from planner_tables import scenario, table

from solver.backends import AUTO_ORDER, BACKENDS, available_backends, get_backend
from solver.errors import InfeasibleError, UnknownNameError
from solver.planning.evaluate import evaluate
from solver.planning.planner import solve_candidates
from solver.specs import SolveOptions

BACKEND_NAMES = available_backends()


def golden():
    """(name, table, scenario, known optimum) — optima worked out by hand in the comments."""
    two = table(
        {"instance_type": "a.x", "usd_per_hour": 1.0, "rate_rps": 2.0},
        {"instance_type": "b.x", "family": "b", "usd_per_hour": 3.0, "rate_rps": 8.0},
    )
    return [
        # min n_a + 3 n_b s.t. 1.6 n_a + 6.4 n_b >= 10: n_b = 1, n_a = 3 (or n_b = 2) -> 6
        ("online_mix", two, scenario(), 6.0),
        # quota a.x <= 2: 1.6*2 + 6.4 n_b >= 10 -> n_b = 2 (cost 6) vs n_a = 2, n_b = 2 (8) -> 6
        ("quota", two, scenario(limits={"max_instances": {"a.x": 2}}), 6.0),
        # b breaks TPOT (SLO 5 ms): 7 a.x -> 7
        (
            "slo",
            table({"tpot_ms": 4.0, "rate_rps": 2.0}, {"instance_type": "b.x", "usd_per_hour": 3.0, "rate_rps": 8.0}),
            scenario([{"name": "w", "rate_rps": 10, "slo": {"tpot_ms": 5}}]),
            7.0,
        ),
        # offline per second: 36000 requests, 3600 req per instance-hour at $2. Within the 2 h deadline an
        # instance does 7200 requests less its last unfinished batch of 8 (row 9): 5 instances carry 35960 <
        # 36000, so 6 are needed and 3600 h - 8 * 6 >= 36000 -> h = 10 + 48/3600 -> $2 h = 20.02667
        (
            "offline_per_second",
            table({"kind": "offline", "usd_per_hour": 2.0, "rate_rps": 1.0}),
            scenario([{"name": "w", "requests": 36000, "deadline_h": 2}]),
            2.0 * (10 + 6 * 8 / 3600),
        ),
        # per started hour: 12600 requests = 3.5 instance-hours -> 4 billed hours at $2 -> $8
        (
            "offline_per_hour",
            table({"kind": "offline", "usd_per_hour": 2.0, "rate_rps": 1.0}),
            scenario([{"name": "w", "requests": 12600, "deadline_h": 2.5}], billing="per_hour"),
            8.0,
        ),
        # per hour with a 30-minute deadline: each instance bills 1 h and works 0.5 h (1800 requests):
        # 4000 requests -> 3 instances -> $6
        (
            "offline_short_deadline",
            table({"kind": "offline", "usd_per_hour": 2.0, "rate_rps": 1.0}),
            scenario([{"name": "w", "requests": 4000, "deadline_h": 0.5}], billing="per_hour"),
            6.0,
        ),
        # online horizon = offline deadline 4 h: online 2 a.x (3.2 >= 3) * $1 * 4 h = 8; offline 7200 req at
        # 7200 req/h on b.x, one instance losing its last batch of 8: 7200 h - 8 >= 7200 -> h = 1 + 8/7200,
        # $3 h -> 8 + 3 (1 + 8/7200) = 11.00333
        (
            "mixed_horizon",
            table(
                {"workload": "on", "rate_rps": 2.0},
                {"workload": "off", "kind": "offline", "instance_type": "b.x", "usd_per_hour": 3.0, "rate_rps": 2.0},
            ),
            scenario([{"name": "on", "rate_rps": 3}, {"name": "off", "requests": 7200, "deadline_h": 4}]),
            8 + 3 * (1 + 8 / 7200),
        ),
        # max throughput, $7/h: 2 b (1280 tok/s) + 1 a (160) = 1440 tokens/s
        ("max_throughput", two, scenario(objective="max_throughput", limits={"budget_usd_per_hour": 7}), 1440.0),
    ]


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("case", golden(), ids=lambda c: c[0])
def test_golden_optimum(case, backend):
    _, cands, scen, optimum = case
    plan = solve_candidates(cands, scen, SolveOptions(backend=backend, time_limit_s=30))
    assert plan.status == "optimal"
    assert plan.backend == backend
    assert plan.objective == pytest.approx(optimum, rel=1e-6)
    if scen.objective == "min_cost":
        assert plan.total_cost_usd == pytest.approx(optimum, rel=1e-6)
    assert evaluate(plan, scen, performance=cands).ok, evaluate(plan, scen, performance=cands)


def test_backends_registered_and_available():
    assert list(BACKENDS) == ["ortools", "cbc", "highs"]
    assert {"ortools", "cbc"} <= set(BACKEND_NAMES)


def test_auto_order_names_every_backend():
    assert sorted(AUTO_ORDER) == sorted(BACKENDS)


def test_tie_break_gives_the_same_plan_on_every_backend():
    # two identical offers in two regions, and two equally good mixes: ties everywhere
    cands = table(
        {"instance_type": "a.x", "region": "r1", "rate_rps": 2.0},
        {"instance_type": "a.x", "region": "r2", "rate_rps": 2.0},
        {"instance_type": "b.x", "family": "b", "region": "r1", "usd_per_hour": 3.0, "rate_rps": 8.0},
        {"instance_type": "b.x", "family": "b", "region": "r2", "usd_per_hour": 3.0, "rate_rps": 8.0},
    )
    frames = []
    for backend in BACKEND_NAMES:
        plan = solve_candidates(cands, scenario(), SolveOptions(backend=backend))
        frames.append(plan.to_frame()[["instance_type", "region", "count"]].to_dict("records"))
    assert all(f == frames[0] for f in frames)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(UnknownNameError, match="ortools"):
        get_backend("gurobi-ish")


def test_auto_is_first_available_in_measured_order():
    assert get_backend("auto").name == next(n for n in AUTO_ORDER if n in BACKEND_NAMES)


def test_auto_works_without_highspy(monkeypatch):
    # highspy is optional: without it auto falls back to the next measured backend
    from solver.backends.highs import HighsBackend

    monkeypatch.setitem(BACKENDS, "highs", HighsBackend())
    monkeypatch.setitem(sys.modules, "highspy", None)  # import highspy now raises ImportError
    assert not BACKENDS["highs"].available
    assert get_backend("auto").name == next(n for n in AUTO_ORDER if n != "highs" and n in BACKEND_NAMES)
    p = solve_candidates(*golden()[0][1:3], SolveOptions(time_limit_s=30))
    assert p.backend != "highs" and p.objective == pytest.approx(6.0)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_infeasible_status_becomes_infeasible_error(backend):
    cands = table({"usd_per_hour": 1.0, "rate_rps": 2.0})
    scen = scenario(limits={"max_total_instances": 2})  # 2 * 1.6 < 10
    with pytest.raises(InfeasibleError, match="limits"):
        solve_candidates(cands, scen, SolveOptions(backend=backend))
    result = get_backend(backend).solve(
        __import__("formulations.assemble", fromlist=["build"]).build(cands, scen).lm.compile(),
        SolveOptions(backend=backend),
    )
    assert result.status == "infeasible" and result.x is None


@pytest.mark.skipif("cbc" not in BACKEND_NAMES, reason="needs pulp")
def test_cbc_is_pinned_whatever_path_holds(monkeypatch, tmp_path):
    # two CBC builds behave differently (pulp's bundled 2.10.3 and cbcbox's): PATH must not pick one
    from solver.backends.cbc import CbcBackend, bundled_cbc

    if bundled_cbc() is None:
        pytest.skip("pulp has no bundled CBC here (pulp 4): cbcbox's is used")
    fake = tmp_path / "cbc"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    b = CbcBackend()
    assert b.path == bundled_cbc() and b.path != str(fake)
    assert b.version.startswith("CBC ")
    p = solve_candidates(*golden()[0][1:3], SolveOptions(backend="cbc", time_limit_s=30))
    assert p.solver_version == BACKENDS["cbc"].version != ""


def test_every_plan_names_its_solver_build():
    for name in BACKEND_NAMES:
        p = solve_candidates(*golden()[0][1:3], SolveOptions(backend=name, time_limit_s=30))
        assert p.solver_version and p.to_dict()["solver_version"] == p.solver_version


def _solve_golden_with_highs() -> None:
    """Solve the first golden instance with HiGHS (a forked child's body: an exception gives exit code 1)."""
    _, cands, scen, optimum = golden()[0]
    p = solve_candidates(cands, scen, SolveOptions(backend="highs", time_limit_s=30))
    assert p.objective == pytest.approx(optimum, rel=1e-6)


@pytest.mark.skipif("highs" not in BACKEND_NAMES, reason="needs highspy")
@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_process_forked_after_a_highs_solve_solves_with_highs():
    # HiGHS solves on a global thread pool. A child forked while the pool lives inherits it without its threads
    # and spins for ever on its first solve (sweep's workers after a plan with HiGHS; notebooks/05 with HiGHS
    # first): the backend releases the pool whenever no HiGHS solve runs, so a fork after a solve is safe.
    _solve_golden_with_highs()
    child = multiprocessing.get_context("fork").Process(target=_solve_golden_with_highs)
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung, "the forked child did not finish its HiGHS solve in 60 s"
    assert child.exitcode == 0
