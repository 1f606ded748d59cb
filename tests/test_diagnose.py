"""Infeasibility diagnosis: the blocker is named with numbers, and each relaxation is the smallest that works."""

import math

import pytest

from solver.data.scenario import parse_scenario, scenario_from_dict
from solver.errors import InfeasibleError
from solver.planning.diagnose import diagnose
from solver.planning.planner import plan
from solver.specs import SolveOptions

OPTS = SolveOptions(time_limit_s=20)
BASE = """
catalog: aws
regions: [us-east-1]
instances: [g5.xlarge, g6.xlarge, g6e.xlarge, p5.48xlarge]
search: {batch_sizes: [1, 4, 16, 64]}
workloads:
  - name: chat
    model: llama-3.1-8b
    input_tokens: 8192
    output_tokens: 128
    rate_rps: 2
    slo: {ttft_ms: 30}
"""


def _apply(scenario, field, value):
    data = scenario.model_dump(mode="json", exclude_none=True)
    keys = field.split(".", 2) if field.startswith("limits.max_instances") else field.split(".")
    node = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    node[keys[-1]] = value
    return scenario_from_dict(data)


def _feasible(scenario):
    try:
        plan(scenario, OPTS)
    except InfeasibleError:
        return False
    return True


def test_unreachable_ttft_names_fastest_candidate_and_exact_threshold():
    sc = parse_scenario(BASE)
    with pytest.raises(InfeasibleError):
        plan(sc, OPTS)
    d = diagnose(sc, OPTS)
    assert not d.feasible
    b = d.blockers[0]
    assert b.constraint == "workloads.0.slo.ttft_ms"
    assert "TTFT ≤ 30 ms is unreachable for 8,192-token prompts" in b.message
    assert "p5.48xlarge" in b.message
    (r,) = d.relaxations
    assert r.current == 30 and r.suggested > 30
    # the suggested threshold is exactly the frontier: feasible at it, infeasible just below
    assert _feasible(_apply(sc, r.field, r.suggested * (1 + 1e-9)))
    assert not _feasible(_apply(sc, r.field, r.suggested * (1 - 1e-6)))


def test_weights_that_fit_nowhere():
    text = BASE.replace("ttft_ms: 30", "tpot_ms: 100").replace("llama-3.1-8b", "llama-3.1-70b")
    text = text.replace(", p5.48xlarge", "")
    d = diagnose(parse_scenario(text), OPTS)
    msg = d.blockers[0].message
    assert "llama-3.1-70b bf16 weights (131 GiB)" in msg and "TP ≤ 1" in msg
    fields = {r.field: r for r in d.relaxations}
    assert "instances" in fields and "workloads.0.dtype" in fields
    # adding the suggested instance type really makes the workload fit
    sc = parse_scenario(text)
    wider = sc.model_copy(update={"instances": [*sc.instances, fields["instances"].suggested]})
    assert _feasible(wider)


def test_budget_relaxation_is_the_cheapest_plan_cost():
    text = BASE.replace("ttft_ms: 30", "tpot_ms: 100") + "limits: {budget_usd_per_hour: 1.0}\n"
    sc = parse_scenario(text)
    d = diagnose(sc, OPTS)
    (r,) = d.relaxations
    assert r.field == "limits.budget_usd_per_hour"
    unconstrained = plan(_apply(sc, r.field, 1e6), OPTS)
    assert r.suggested == pytest.approx(unconstrained.cost_usd_per_hour)
    assert _feasible(_apply(sc, r.field, r.suggested * (1 + 1e-9)))
    assert not _feasible(_apply(sc, r.field, r.suggested * 0.99))


def test_quota_relaxation_is_the_smallest_integer():
    text = BASE.replace("ttft_ms: 30", "tpot_ms: 100") + "limits: {max_total_instances: 0}\n"
    sc = parse_scenario(text)
    d = diagnose(sc, OPTS)
    (r,) = d.relaxations
    assert r.field == "limits.max_total_instances"
    assert _feasible(_apply(sc, r.field, r.suggested))
    assert not _feasible(_apply(sc, r.field, r.suggested - 1))


def test_deadline_relaxation_within_one_percent():
    text = BASE.replace("ttft_ms: 30", "tpot_ms: 100").replace("rate_rps: 2", "requests: 100000\n    deadline_h: 0.5")
    text += "limits: {max_total_instances: 2}\n"
    sc = parse_scenario(text)
    d = diagnose(sc, OPTS)
    deadline = next(r for r in d.relaxations if r.field == "workloads.0.deadline_h")
    assert _feasible(_apply(sc, deadline.field, deadline.suggested))
    assert not _feasible(_apply(sc, deadline.field, deadline.suggested * 0.98))
    assert "limits.max_total_instances" in {r.field for r in d.relaxations}


def test_diagnosis_is_data():
    d = diagnose(parse_scenario(BASE), OPTS)
    data = d.to_dict()
    assert data["blockers"][0]["constraint"] == "workloads.0.slo.ttft_ms"
    assert math.isfinite(data["relaxations"][0]["suggested"])
    assert "To fix:" in d.summary()


def test_tp_degrees_that_shard_nothing_are_named():
    text = BASE.replace("ttft_ms: 30", "tpot_ms: 100").replace(
        "search: {batch_sizes: [1, 4, 16, 64]}", "search: {batch_sizes: [1, 4, 16, 64], tp_degrees: [3]}"
    )
    sc = parse_scenario(text)
    d = diagnose(sc, OPTS)
    assert d.blockers[0].constraint == "search.tp_degrees"
    (r,) = d.relaxations
    assert r.field == "search.tp_degrees" and r.suggested is None
    assert r.cost_usd_per_hour is not None  # removing the field is feasible, and priced
    assert "To fix: remove search.tp_degrees" in d.summary()
