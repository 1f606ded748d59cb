"""One declaration per rule: a rule added to formulations.checks reaches presolve, rows, evaluate and diagnose."""

from __future__ import annotations

import dataclasses

import pytest
from planner_tables import scenario, table

from formulations import checks
from formulations.assemble import build
from formulations.checks import CandidateRule
from solver.data.scenario import parse_scenario
from solver.errors import InfeasibleError
from solver.planning.diagnose import diagnose
from solver.planning.evaluate import evaluate
from solver.planning.planner import solve_candidates
from solver.planning.presolve import reduce_candidates
from solver.specs import SolveOptions

OPTS = SolveOptions(backend="auto", time_limit_s=20, tie_break=False)


def toy(max_batch: float) -> CandidateRule:
    """A rule no code knows of: a workload's batch size may not exceed ``max_batch``."""
    return CandidateRule(
        "toy.max_batch",
        "batch_size",
        "<=",
        "(toy)",
        "raise workloads.{i}.toy_max_batch",
        lambda scenario, w: max_batch,
        field="workloads.{i}.toy_max_batch",
        label="batch size",
        unit="requests",
        best="smallest",
    )


@pytest.fixture
def with_toy(monkeypatch):
    def add(max_batch: float) -> CandidateRule:
        rule = toy(max_batch)
        monkeypatch.setattr(checks, "CANDIDATE_RULES", (*checks.CANDIDATE_RULES, rule))
        return rule

    return add


def small_and_big():
    return table(
        {"instance_type": "a.x", "batch_size": 2, "usd_per_hour": 1.0, "rate_rps": 2.0},
        {"instance_type": "b.x", "family": "b", "batch_size": 8, "usd_per_hour": 1.5, "rate_rps": 8.0},
    )


def test_toy_rule_reaches_presolve(with_toy):
    with_toy(4)
    kept, removed = reduce_candidates(small_and_big(), scenario())
    assert list(kept["instance_type"]) == ["a.x"]
    assert removed["w"] == {"toy.max_batch": 1}


def test_toy_rule_reaches_the_rows(with_toy):
    with_toy(4)
    fm = build(small_and_big(), scenario())
    rows = fm.lm.blocks["toy.max_batch"]
    assert rows.n_rows == 2 and list(rows.coef) == [2.0, 8.0] and list(rows.hi) == [4.0, 4.0]
    plan = solve_candidates(small_and_big(), scenario(), OPTS, reduce=False)  # the row alone forbids b.x
    assert {r.instance_type for r in plan.fleet} == {"a.x"}


def test_toy_rule_reaches_the_evaluator(with_toy):
    t = small_and_big()
    plan = solve_candidates(t, scenario(), OPTS)  # without the toy rule: b.x is cheaper per request
    assert {r.instance_type for r in plan.fleet} == {"b.x"} and evaluate(plan, scenario(), performance=t).ok
    with_toy(4)
    broken = {v.check for v in evaluate(plan, scenario(), performance=t).violations}
    assert broken == {"toy.max_batch"}


def test_toy_rule_reaches_the_planners_error_and_the_diagnosis(with_toy):
    with_toy(0.5)
    with pytest.raises(InfeasibleError) as exc:
        solve_candidates(small_and_big(), scenario(), OPTS)
    assert exc.value.diagnosis["removed"] == {"toy.max_batch": 2}
    assert exc.value.fixes == ("raise workloads.0.toy_max_batch",)
    scen = parse_scenario(
        """
catalog: aws
regions: [us-east-1]
instances: [g5.xlarge, g6.xlarge]
search: {batch_sizes: [1, 4, 16]}
workloads:
  - {name: chat, model: llama-3.1-8b, input_tokens: 512, output_tokens: 128, rate_rps: 2}
"""
    )
    d = diagnose(scen, OPTS)
    (blocker,) = d.blockers
    assert blocker.constraint == "workloads.0.toy_max_batch"
    assert "batch size ≤ 0.5 requests is unreachable" in blocker.message
    (relax,) = d.relaxations
    assert (relax.field, relax.current, relax.suggested) == ("workloads.0.toy_max_batch", 0.5, 1.0)


def test_every_rule_is_named_once_and_numbered():
    names = [r.name for r in checks.CANDIDATE_RULES]
    assert len(names) == len(set(names))
    assert not set(names) & set(checks.ENUMERATION_FILTERS)
    for r in checks.CANDIDATE_RULES:
        assert (r.workload_limit is None) != (r.limit_column is None), r.name
        assert r.number.startswith("(") and r.hint and r.label


def test_readme_numbers_every_rule():
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parents[1] / "formulations" / "README.md").read_text()
    for r in [*checks.CANDIDATE_RULES, *checks.FLEET_LIMITS]:
        assert r.number in readme, r
    for r in checks.CANDIDATE_RULES:
        assert f"`{r.name}`" in readme, f"formulations/README.md does not name the rule {r.name}"


def test_rules_are_frozen_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        checks.CANDIDATE_RULES[0].name = "x"  # type: ignore[misc]
