"""`infersave recommend`: the policies pinned on small hand-checkable catalogs, and the paper's scenarios."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

from solver.apps.recommend import (
    CHOICE_EXTRA_KEYS,
    CHOICE_KEYS,
    DEFAULT_POLICY,
    POLICIES,
    QUESTION_KEYS,
    REJECTED_KEYS,
    recommend,
    recommend_scenario,
    screen,
)
from solver.data.models import get_model
from solver.data.resources import data_path
from solver.data.scenario import load_scenario, scenario_from_dict
from solver.errors import InputError, UnknownNameError
from solver.performance.model import predict_frame

HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuMemoryMiBPerGpu,Price,SpotPrice,Region,"
    "AvailabilityZone"
)
# Hardware as the shipped AWS catalog has it for g4dn/g5/g6e.xlarge; names and prices are ours.
HW = {"T4": "T4,1,4,16,16384", "A10G": "A10G,1,4,16,22888", "L40S": "L40S,1,4,32,45776"}


def catalog_csv(tmp_path, rows: list[tuple[str, str, float]]) -> str:
    lines = [HEADER] + [f"{name},{HW[gpu]},{price},,test-1,test-1a" for name, gpu, price in rows]
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def scenario(catalog: str, *, setting: str = "online", slo: float = 400.0, max_price: float | None = 3.0, **extra):
    tokens = {"online": (128, 512, 3000), "offline": (1024, 128, 1000)}[setting]
    data = {
        "catalog": catalog,
        "engine": "flexgen",
        "billing": "per_hour",
        "limits": {"max_price_usd_per_hour": max_price} if max_price is not None else {},
        "workloads": [
            {
                "name": setting,
                "model": "opt-2.7b",
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "requests": tokens[2],
                "deadline_h": 10,
                "slo": {"tps": slo},
                "batch_sizes": [32],
            }
        ],
    }
    data.update(extra)
    return scenario_from_dict(data)


def names(items) -> list[str]:
    return [c.instance_type for c in items]


# ---- price filter -------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", list(POLICIES))
def test_price_filter_drops_instances_above_p_max(tmp_path, policy):
    cat = catalog_csv(
        tmp_path, [("cheap.xlarge", "T4", 0.5), ("mid.xlarge", "A10G", 1.0), ("dear.xlarge", "L40S", 3.5)]
    )
    rec = recommend(scenario(cat, max_price=3.0), policy)
    assert "dear.xlarge" not in names(rec.choices)
    reasons = {r.instance_type: r.reason for r in rec.rejected}
    assert "above P_max $3/h" in reasons["dear.xlarge"]
    # lifting the cap brings it back for the policy that wants raw power
    if policy == "max-performance":
        assert rec.best is not None and rec.best.instance_type == "mid.xlarge"
        assert recommend(scenario(cat, max_price=None), policy).best.instance_type == "dear.xlarge"


def test_price_at_p_max_is_kept(tmp_path):
    cat = catalog_csv(tmp_path, [("edge.xlarge", "T4", 3.0)])
    assert names(recommend(scenario(cat, max_price=3.0)).choices) == ["edge.xlarge"]


# ---- offload ratio ------------------------------------------------------------------------------------
def test_offline_kv_cache_size_by_hand():
    # 32 sequences x 1,152 tokens x (2 x 32 layers x 2,560 x 2 bytes) = 12,079,595,520 B = 11.25 GiB
    model = get_model("opt-2.7b")
    assert model.kv_bytes_per_token("fp16") == 2 * 32 * 2560 * 2
    assert 32 * 1152 * model.kv_bytes_per_token("fp16") / 2**30 == pytest.approx(11.25)


def test_offload_ratio_is_the_smallest_that_fits(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("l40s.xlarge", "L40S", 2.0)])
    sc = scenario(cat, setting="offline", slo=100)
    rec = recommend(sc, "infersave")
    t4 = next(c for c in rec.choices if c.instance_type == "t4.xlarge")
    big = next(c for c in rec.choices if c.instance_type == "l40s.xlarge")
    assert big.offload_fraction == 0.0  # 11.25 GiB of KV fits in 45,776 MiB x 0.8
    assert 0.0 < t4.offload_fraction < 1.0
    # smallest: a little less offload no longer fits, the chosen one does
    frame = pd.DataFrame(
        {
            "gpu": ["T4", "T4"],
            "gpu_count": [1.0, 1.0],
            "gpu_memory_mib": [16384.0, 16384.0],
            "host_memory_gib": [16.0, 16.0],
            "tp": [1, 1],
            "batch_size": [32, 32],
            "offload_fraction": [t4.offload_fraction, t4.offload_fraction - 0.005],
        }
    )
    pred = predict_frame(frame, get_model("opt-2.7b"), input_tokens=1024, output_tokens=128, engine="flexgen")
    assert pred["fits"].tolist() == [True, False]
    assert t4.predicted_tps == pytest.approx(float(pred["tps"].iloc[0]))


def test_no_offload_rejects_what_needs_offloading(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("a10g.xlarge", "A10G", 1.0)])
    sc = scenario(cat, setting="offline", slo=100)
    assert recommend(sc, "infersave").best.instance_type == "t4.xlarge"
    rec = recommend(sc, "no-offload")
    assert names(rec.choices) == ["a10g.xlarge"]
    assert all(c.offload_fraction == 0.0 for c in rec.choices)
    (rej,) = rec.rejected
    assert rej.instance_type == "t4.xlarge" and "without offloading" in rej.reason


def test_instance_that_cannot_hold_the_weights_is_rejected(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("l40s.xlarge", "L40S", 2.0)])
    data = scenario(cat).model_dump(mode="json")
    data["workloads"][0]["model"] = "opt-13b"  # 13e9 x 2 B = 24 GiB of weights > 16 GiB x 0.8 on the T4
    sc = scenario_from_dict(data)
    for policy in ("infersave", "max-performance", "no-offload"):
        reasons = {r.instance_type: r.reason for r in recommend(sc, policy).rejected}
        assert "cannot hold the weights" in reasons["t4.xlarge"]


# ---- SLO, cost efficiency, ranking, ties ---------------------------------------------------------------
def test_slo_filter_and_cost_efficiency_formula(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("l40s.xlarge", "L40S", 2.0)])
    tps = screen(scenario(cat)).set_index("instance_type")["tps"]
    slo = float((tps["t4.xlarge"] + tps["l40s.xlarge"]) / 2)  # between the two predictions
    rec = recommend(scenario(cat, slo=slo), "infersave")
    assert names(rec.choices) == ["l40s.xlarge"]
    assert "below the SLO" in {r.instance_type: r.reason for r in rec.rejected}["t4.xlarge"]
    c = rec.best
    # billed hours are the task's run time at the predicted TPS, rounded up; efficiency caps the TPS at the SLO
    hours = math.ceil(3000 * (128 + 512) / (float(tps["l40s.xlarge"]) * 3600))
    assert c.billed_hours == hours and c.task_cost_usd == pytest.approx(hours * 2.0)
    assert c.cost_efficiency == pytest.approx(slo / (hours * 2.0))
    assert c.meets_slo and c.predicted_tps == pytest.approx(float(tps["l40s.xlarge"]))


def test_per_second_billing_charges_the_exact_hours(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5)])
    c = recommend(scenario(cat, slo=400, billing="per_second"), "infersave").best
    hours = 3000 * 640 / (c.predicted_tps * 3600)
    assert c.billed_hours == pytest.approx(hours)
    assert c.task_cost_usd == pytest.approx(hours * 0.5)


def test_task_cost_bills_the_run_time_not_the_slo(tmp_path):
    # SLO 400 online: at exactly the SLO the task would take 1.33 h (2 billed); the instances run faster
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("l40s.xlarge", "L40S", 0.9)])
    tps = screen(scenario(cat)).set_index("instance_type")["tps"]
    assert 3000 * 640 / (400 * 3600) > 1 and float(tps.min()) * 3600 > 3000 * 640  # both finish in 1 h
    for c in recommend(scenario(cat), "infersave").choices:
        assert c.billed_hours == 1 and c.task_cost_usd == pytest.approx(c.usd_per_hour)
    # a task the T4 needs 2 billed hours for and the L40S 1: the dearer instance is the cheaper task
    data = scenario(cat).model_dump(mode="json")
    data["workloads"][0]["requests"] = math.ceil(1.5 * float(tps["t4.xlarge"]) * 3600 / 640)
    sc = scenario_from_dict(data)
    assert 1.5 * float(tps["t4.xlarge"]) / float(tps["l40s.xlarge"]) < 1
    for policy in ("infersave", "milp"):
        rec = recommend(sc, policy)
        by = {c.instance_type: c for c in rec.choices}
        assert (by["t4.xlarge"].billed_hours, by["l40s.xlarge"].billed_hours) == (2, 1), policy
        assert by["t4.xlarge"].task_cost_usd == pytest.approx(1.0)
        assert by["l40s.xlarge"].task_cost_usd == pytest.approx(0.9)
        assert rec.best.instance_type == "l40s.xlarge", policy
    mp = recommend(sc, "max-performance").best
    saving = 1 - recommend(sc, "infersave").best.task_cost_usd / mp.task_cost_usd
    assert mp.instance_type == "l40s.xlarge"
    assert saving == pytest.approx(0.0)  # both policies take the L40S; 1 - 0.5 / 0.9 would say 44%


def test_rank_by_cost_efficiency_then_tps_on_ties(tmp_path):
    # same price, both meet the SLO: effective TPS is capped at the SLO, so cost efficiency ties and the
    # faster instance wins; the slower one comes first in the file and by name, so neither order decides.
    cat = catalog_csv(tmp_path, [("a-slow.xlarge", "T4", 1.0), ("b-fast.xlarge", "L40S", 1.0)])
    rec = recommend(scenario(cat, slo=400), "infersave")
    assert names(rec.choices) == ["b-fast.xlarge", "a-slow.xlarge"]
    assert rec.choices[0].cost_efficiency == pytest.approx(rec.choices[1].cost_efficiency)
    assert rec.choices[0].predicted_tps > rec.choices[1].predicted_tps
    # a cheaper instance beats a faster one when both meet the SLO
    cat2 = catalog_csv(tmp_path, [("a-slow.xlarge", "T4", 0.9), ("b-fast.xlarge", "L40S", 1.0)])
    assert names(recommend(scenario(cat2, slo=400), "infersave").choices) == ["a-slow.xlarge", "b-fast.xlarge"]


def test_max_performance_is_the_highest_predicted_tps_whatever_the_cost(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("a10g.xlarge", "A10G", 1.0), ("l40s.xlarge", "L40S", 2.9)])
    sc = scenario(cat, slo=1e6)  # nobody meets it
    rec = recommend(sc, "max-performance")
    tps = [c.predicted_tps for c in rec.choices]
    assert tps == sorted(tps, reverse=True)
    assert rec.best.instance_type == "l40s.xlarge" and not rec.best.meets_slo
    assert recommend(sc, "infersave").choices == ()


def test_top_k_limits_choices_and_tradeoffs_compare_with_the_best(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("a10g.xlarge", "A10G", 1.0), ("l40s.xlarge", "L40S", 2.0)])
    rec = recommend(scenario(cat), top_k=2)
    assert len(rec.choices) == 2
    (line,) = rec.tradeoffs()
    assert line.startswith(rec.choices[1].instance_type) and f"vs {rec.best.instance_type}" in line


def test_milp_policy_agrees_with_infersave_on_a_small_catalog(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("a10g.xlarge", "A10G", 1.0), ("l40s.xlarge", "L40S", 2.0)])
    sc = scenario(cat, setting="offline", slo=100)
    milp = recommend(sc, "milp", top_k=2)
    assert names(milp.choices) == names(recommend(sc, "infersave").choices)[:2]
    assert len(set(names(milp.choices))) == 2
    assert milp.best.offload_fraction > 0


def test_to_dict_has_exactly_the_issue_keys(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5), ("dear.xlarge", "L40S", 9.0)])
    d = recommend(scenario(cat)).to_dict()
    assert set(d) == {*QUESTION_KEYS, "choices", "rejected", "tradeoffs"}
    assert all(tuple(c) == (*CHOICE_KEYS, *CHOICE_EXTRA_KEYS) for c in d["choices"])
    assert all(tuple(r) == REJECTED_KEYS for r in d["rejected"])
    json.dumps(d)


def test_bad_questions_raise_input_errors(tmp_path):
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5)])
    sc = scenario(cat)
    with pytest.raises(UnknownNameError, match="did you mean 'no-offload'"):
        recommend(sc, "no-offlaod")
    two = sc.model_dump(mode="json")
    two["workloads"][0]["batch_sizes"] = [8, 32]
    with pytest.raises(InputError, match="one batch size"):
        recommend(scenario_from_dict(two))
    with pytest.raises(InputError, match="top_k"):  # the library names the parameter; the CLI shows --top-k
        recommend(sc, top_k=0)
    with pytest.raises(InputError, match="tps_slo"):
        recommend_scenario(None, {"model": "opt-2.7b", "batch_size": 32, "input_len": 8, "output_len": 8})


def test_recommend_scenario_from_flags_and_overrides():
    sc = recommend_scenario(
        None,
        {"model": "opt-2.7b", "batch_size": 32, "input_len": 128, "output_len": 512, "tps_slo": 400,
         "max_price": 3, "instances": ["g4dn.xlarge"], "region": ["us-east-1"], "engine": "flexgen"},
    )  # fmt: skip
    w = sc.workloads[0]
    assert (w.requests, w.batch_sizes, w.slo.tps, sc.billing) == (32, [32], 400, "per_hour")
    assert sc.limits.max_price_usd_per_hour == 3 and sc.instances == ["g4dn.xlarge"]
    base = load_scenario(data_path("paper", "online_slo400_paper.yaml"))
    over = recommend_scenario(base, {"tps_slo": 600, "market": "on_demand"})
    assert over.workloads[0].slo.tps == 600 and over.workloads[0].deadline_h == 1  # ceil(3000*640/(600*3600))
    assert over.catalog == base.catalog and over.instances == base.instances


def test_milp_is_the_default_policy(tmp_path, capsys):
    assert DEFAULT_POLICY == "milp" and next(iter(POLICIES)) == "milp"
    cat = catalog_csv(tmp_path, [("t4.xlarge", "T4", 0.5)])
    assert recommend(scenario(cat)).policy == "milp"
    args = (
        "recommend --model opt-2.7b --batch-size 32 --input-len 128 --output-len 512 --tps-slo 400 "
        f"--catalog {cat} --engine flexgen"
    ).split()
    code, out, _ = run(args, capsys)
    assert code == 0 and "policy milp" in out


# ---- the paper's four settings, every policy, text and JSON ----------------------------------------------
PAPER = ["online_slo400_paper", "online_slo600_paper", "offline_slo100_paper", "offline_slo200_paper"]


@pytest.mark.parametrize("name", PAPER)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_cli_answers_the_paper_scenarios(name, policy, capsys):
    path = str(data_path("paper", f"{name}.yaml"))
    code, out, _ = run(["recommend", "--scenario", path, "--policy", policy, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["choices"], data
    assert all(tuple(c)[: len(CHOICE_KEYS)] == CHOICE_KEYS for c in data["choices"])
    want = recommend(load_scenario(path), policy, top_k=3).to_dict()
    assert data == json.loads(json.dumps(want))
    code, text, _ = run(["recommend", "--scenario", path, "--policy", policy], capsys)
    assert code == 0
    assert data["choices"][0]["instance_type"] in text and f"policy {policy}" in text


def test_cli_exit_3_and_reasons_when_nothing_qualifies(capsys):
    args = (
        "recommend --model opt-2.7b --batch-size 32 --input-len 128 --output-len 512 --tps-slo 1e7 "
        "--instances g4dn.xlarge --region us-east-1 --engine flexgen"
    ).split()
    code, out, err = run(args, capsys)
    assert code == 3
    assert "rejected g4dn.xlarge: predicted" in out and "below the SLO" in out
    assert "Traceback" not in err


def test_paper_policies_differ_where_the_paper_says(capsys):
    online = load_scenario(data_path("paper", "online_slo400_paper.yaml"))
    offline = load_scenario(data_path("paper", "offline_slo100_paper.yaml"))
    # online: InferSave takes a cheaper instance than Max-Performance, with no offloading
    inf, mp = recommend(online, "infersave").best, recommend(online, "max-performance").best
    assert inf.usd_per_hour < mp.usd_per_hour and inf.offload_fraction == 0
    # offline: offloading lets InferSave take an instance that no-offload must reject
    inf, nof = recommend(offline, "infersave").best, recommend(offline, "no-offload")
    assert inf.offload_fraction > 0 and inf.instance_type in {r.instance_type for r in nof.rejected}
    assert inf.task_cost_usd < nof.best.task_cost_usd
    assert np.isfinite(inf.cost_efficiency)
