"""``plan --explain`` and ``--top-k``: a binding constraint and a runner-up for every row, K distinct
alternatives, the on-demand price of a spot plan; every re-solve passes the exact evaluator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from formulations import checks
from solver.data.scenario import load_scenario
from solver.planning.evaluate import evaluate
from solver.planning.explain import explain, explanation_lines, type_set
from solver.planning.plan import Plan
from solver.planning.planner import plan
from solver.specs import Scenario, SolveOptions
from tests.cli_helpers import run
from tests.test_spot import _limited as spot_limited

SCENARIOS = Path(__file__).resolve().parents[1] / "instances" / "scenarios"
RULES = {r.name for r in checks.CANDIDATE_RULES}
LIMITS = {fl.path for fl in checks.FLEET_LIMITS}
OWN = {"demand.online", "demand.offline_work", "whole instances", "search.batch_sizes", "batch_sizes", "memory"}


def _with_limits(sc: Scenario, **limits: object) -> Scenario:
    return sc.model_copy(update={"limits": sc.limits.model_copy(update=limits)})


def test_plan_explain_on_the_default_scenario_names_a_binding_constraint_and_runner_up_per_row(capsys):
    code, out, err = run(["plan", "--explain", "--json"], capsys)
    assert code in (0, None), err
    payload = json.loads(out)
    ex = payload["explanation"]
    assert len(ex["rows"]) == len(payload["fleet"]) >= 2
    for row, fleet_row in zip(ex["rows"], payload["fleet"], strict=True):
        assert (row["workload"], row["instance_type"]) == (fleet_row["workload"], fleet_row["instance_type"])
        b = row["binding"]
        assert b["constraint"] in RULES | LIMITS | OWN, b
        assert b["reason"]
        ru = row["runner_up"]
        assert ru["status"] == "optimal", ru
        assert ru["without"] == row["instance_type"]
        assert math.isfinite(ru["total_cost_usd"])
        # the runner-up is a plan of a restricted problem: never cheaper than the optimum
        assert ru["extra_cost_usd"] >= -1e-6 * payload["total_cost_usd"]
        assert ru["total_cost_usd"] == pytest.approx(payload["total_cost_usd"] + ru["extra_cost_usd"])
        assert row["instance_type"] not in ru["types"].get(row["workload"], [])
        assert ru["evaluator_ok"] is True
    assert ex["on_demand"] is None  # the default plan rents no spot
    assert 0 < ex["seconds"] <= ex["time_limit_s"]
    code, out, _ = run(["plan", "--explain"], capsys)
    text = out.splitlines()
    assert sum("bound by " in line for line in text) == len(payload["fleet"])
    assert sum("runner-up without" in line for line in text) == len(payload["fleet"])
    assert any(line.startswith("explained in ") for line in text)


def test_plan_json_without_explain_has_no_explanation_key(capsys):
    _code, out, _ = run(["plan", "--json"], capsys)
    assert "explanation" not in json.loads(out)


def test_a_tight_tpot_slo_is_named_with_the_cheaper_candidate_it_removes():
    base = load_scenario(None)
    chat = base.workloads[0]
    # without latency SLOs chat takes its cheapest capacity; a TPOT SLO just below that row's TPOT removes it
    # 100 req/s: enough demand that whole instances do not decide the rows (at 20 req/s they do)
    free_chat = chat.model_copy(
        update={"rate_rps": 100.0, "slo": chat.slo.model_copy(update={"tpot_ms": None, "ttft_ms": None})}
    )
    free = base.model_copy(update={"workloads": [free_chat, *base.workloads[1:]]})
    chat_rows = [r for r in plan(free).fleet if r.workload == "chat"]
    cheapest = min(chat_rows, key=lambda r: r.usd_per_hour / r.capacity_rps)  # per unit, not a whole-instance filler
    limit = round(0.9 * cheapest.tpot_ms, 1)
    tight = free_chat.model_copy(update={"slo": free_chat.slo.model_copy(update={"tpot_ms": limit})})
    sc = base.model_copy(update={"workloads": [tight, *base.workloads[1:]]})
    p = explain(plan(sc), sc)
    rows = [r for r in p.explanation["rows"] if r["workload"] == "chat"]
    named = [r["binding"] for r in rows if r["binding"]["constraint"] == "slo.tpot_ms"]
    assert named, rows
    assert named[0]["cheapest"]["unit_cost"] < named[0]["unit_cost"]
    assert f"> {limit:g} ms" in named[0]["reason"]


def test_a_quota_is_binding_only_when_removing_it_saves_money():
    base = load_scenario(None)
    used: dict[str, int] = {}
    for r in plan(base).fleet:  # instances per type, over every row
        used[r.instance_type] = used.get(r.instance_type, 0) + r.count
    biggest = max(used, key=lambda t: used[t])  # one fewer of the plan's most used type
    quota = _with_limits(base, max_instances={biggest: used[biggest] - 1})
    p = explain(plan(quota), quota)
    bound = [r["binding"] for r in p.explanation["rows"] if r["binding"]["constraint"] == "limits.max_instances"]
    assert bound and bound[0]["saves_usd"] > 0
    free = plan(base)
    assert bound[0]["saves_usd"] == pytest.approx(p.total_cost_usd - free.total_cost_usd, rel=1e-6)
    # a budget just above the plan's cost is tight for one more instance, yet removing it saves nothing
    loose = _with_limits(base, budget_usd_per_hour=free.cost_usd_per_hour + 0.05)
    q = explain(plan(loose), loose)
    assert all(r["binding"]["constraint"] != "limits.budget_usd_per_hour" for r in q.explanation["rows"])


def _costs(alts: list[dict]) -> list[float]:
    return [a["total_cost_usd"] for a in alts]


def test_top_k_gives_k_distinct_alternatives_each_passing_the_evaluator():
    sc = load_scenario(None)
    best = plan(sc)
    p = explain(best, sc, top_k=3)
    alts = p.explanation["alternatives"]
    assert [a["rank"] for a in alts] == [2, 3, 4]
    sets = [type_set(best)]
    for a in alts:
        assert a["status"] == "optimal" and a["evaluator_ok"] is True, a
        s = frozenset((f["workload"], f["instance_type"]) for f in a["fleet"])
        assert s not in sets
        sets.append(s)
    costs = _costs(alts)
    assert costs == sorted(costs)
    assert costs[0] >= best.total_cost_usd * (1 - 1e-9)
    # any plan without one of the plan's (workload, type) pairs has another type set: alternative 2 is at most
    # the cheapest runner-up
    rows = explain(best, sc).explanation["rows"]
    assert costs[0] <= min(r["runner_up"]["total_cost_usd"] for r in rows) * (1 + 1e-9)
    lines = explanation_lines(p.explanation)
    assert sum(line.startswith("alternative ") for line in lines) == 3


def test_alternatives_are_saved_as_plans_that_the_evaluator_accepts_again():
    sc = load_scenario(None)
    p = explain(plan(sc), sc, top_k=2)
    for alt in p.explanation["alternatives"]:
        # read back as `infersave check` would, independently of the flag explain() set
        again = Plan.from_dict({"fleet": alt["fleet"]}, field="alternative")
        assert evaluate(again, sc).ok
        broken = Plan.from_dict({"fleet": [{**f, "count": 0} for f in alt["fleet"]]}, field="alternative")
        assert not evaluate(broken, sc).ok


def test_a_spot_plan_gets_its_on_demand_price():
    sc = load_scenario(str(SCENARIOS / "mixed_spot.yaml"))
    best = plan(sc)
    assert any(r.market == "spot" for r in best.fleet)
    p = explain(best, sc)
    od = p.explanation["on_demand"]
    assert od["status"] == "optimal" and od["evaluator_ok"] is True
    assert all(f["market"] == "on_demand" for f in od["fleet"])
    assert od["total_cost_usd"] >= best.total_cost_usd
    assert any(line.startswith("on-demand only: ") for line in explanation_lines(p.explanation))


def test_explanation_is_bounded_by_the_time_limit():
    sc = load_scenario(None)
    best = plan(sc)
    p = explain(best, sc, SolveOptions(time_limit_s=0.01), top_k=2)
    ex = p.explanation
    assert all(r["runner_up"]["status"] == "skipped" for r in ex["rows"])
    assert ex["alternatives"][0]["status"] == "skipped"
    assert len(ex["alternatives"]) == 1
    assert ex["seconds"] < 30  # enumeration and the bindings, no solve
    assert all(r["binding"]["constraint"] for r in ex["rows"])


def test_runner_ups_and_alternatives_pass_the_evaluator_on_a_spot_scenario_with_spot_limits():
    sc = spot_limited()  # every spot row (23)-(27) set, on a small catalog
    best = plan(sc)
    assert evaluate(best, sc).ok
    p = explain(best, sc, top_k=1)
    for r in p.explanation["rows"]:
        if r["runner_up"]["status"] in ("optimal", "feasible"):
            assert r["runner_up"]["evaluator_ok"] is True, r["runner_up"]
    assert p.explanation["alternatives"][0]["evaluator_ok"] is True
