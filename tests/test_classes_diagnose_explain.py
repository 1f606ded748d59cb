"""``diagnose`` and ``explain`` see request classes and shared pools as the planner does (issue 14).

A workload with a size distribution is planned as one class per bucket: the diagnosis checks every class on its
own lengths and relaxes a workload's limit as far as its most demanding class needs; the explanation re-solves
the class scenario with its pools, and a shared row is bound by its row (20).
"""

from __future__ import annotations

import pytest

from solver.data.scenario import scenario_from_dict
from solver.errors import InfeasibleError
from solver.planning.classes import expand
from solver.planning.diagnose import diagnose
from solver.planning.explain import explain, served_classes, type_set
from solver.planning.planner import plan
from solver.specs import SolveOptions

OPTS = SolveOptions(time_limit_s=60)
SIZES = [
    {"input_tokens": 64, "output_tokens": 64, "share": 0.7},
    {"input_tokens": 4000, "output_tokens": 512, "share": 0.3},
]


def _scenario(tpot_ms: float, **extra):
    return scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "workloads": [
                {"name": "chat", "model": "llama-3.1-8b", "rate_rps": 5, "slo": {"tpot_ms": tpot_ms}, "sizes": SIZES},
                *extra.get("more", []),
            ],
        }
    )


def test_diagnose_relaxes_a_workloads_slo_for_its_most_demanding_bucket():
    sc = _scenario(2.5)  # below the fastest TPOT of both buckets on the shipped model
    with pytest.raises(InfeasibleError):
        plan(sc, OPTS)
    d = diagnose(sc, OPTS)
    assert {b.workload for b in d.blockers} == {"chat#0", "chat#1"}  # every bucket is checked on its own lengths
    fixes = [r for r in d.relaxations if r.field == "workloads.0.slo.tpot_ms"]
    assert len(fixes) == 1  # one relaxation per field, named after the workload, not the class
    # the largest of the classes' fastest candidates: every bucket then has one
    per_class = [float(b.message.split("fastest candidate is ")[1].split(" ms")[0]) for b in d.blockers]
    assert fixes[0].suggested >= max(per_class) - 1e-3
    assert fixes[0].cost_usd_per_hour is not None  # the relaxed scenario was planned


def test_diagnose_of_a_single_bucket_matches_the_plain_workload():
    plain = scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "workloads": [
                {
                    "name": "w",
                    "model": "llama-3.1-8b",
                    "rate_rps": 5,
                    "input_tokens": 4000,
                    "output_tokens": 512,
                    "slo": {"tpot_ms": 3},
                }
            ],
        }
    )
    bucket = scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "workloads": [
                {
                    "name": "w",
                    "model": "llama-3.1-8b",
                    "rate_rps": 5,
                    "slo": {"tpot_ms": 3},
                    "sizes": [{"input_tokens": 4000, "output_tokens": 512, "share": 1.0}],
                }
            ],
        }
    )
    a, b = diagnose(plain, OPTS), diagnose(bucket, OPTS)
    assert [(r.field, r.suggested) for r in a.relaxations] == [(r.field, r.suggested) for r in b.relaxations]


def test_explain_re_solves_classes_and_pools():
    sc = scenario_from_dict(
        {
            "regions": ["us-east-1"],
            "instances": ["g6.xlarge", "g6e.xlarge", "g5.xlarge", "g6.12xlarge"],
            "workloads": [
                {
                    "name": "chat",
                    "model": "llama-3.1-8b",
                    "rate_rps": 1.0,
                    "slo": {"tpot_ms": 100},
                    "sizes": [
                        dict(SIZES[0], input_tokens=512, share=0.5),
                        dict(SIZES[1], input_tokens=1024, share=0.5),
                    ],
                },
                {"name": "api", "model": "llama-3.1-8b", "rate_rps": 0.3, "input_tokens": 256, "output_tokens": 128},
            ],
        }
    )
    p = plan(sc, OPTS)
    assert any(r.pool >= 0 for r in p.fleet)  # the case needs a shared row
    out = explain(p, sc, OPTS, top_k=1).explanation
    assert out is not None
    names = {c.name for c in expand(sc).classes}
    for row, info in zip(p.fleet, out["rows"], strict=True):
        assert set(served_classes(row)) <= names
        if row.pool >= 0:
            assert info["binding"]["constraint"] == "sharing.capacity"
            assert set(info["binding"]["classes"]) == {k for k, _r in row.split}
        runner = info["runner_up"]
        if runner.get("status") in ("optimal", "feasible"):
            assert runner["evaluator_ok"]
            assert runner["extra_cost_usd"] >= -1e-6 * max(1.0, p.total_cost_usd)  # the plan was optimal
    assert all(k in names for k, _t in type_set(p))
    for alt in out.get("alternatives", []):
        if alt.get("status") in ("optimal", "feasible"):
            assert alt["evaluator_ok"]
            assert {tuple(x) for x in alt["pairs"]} != set(type_set(p))
