"""Expert parallelism beside TP (issue 17): memory per GPU, the all-to-all worked example, the busiest GPU's
experts, the candidate dimension, and plans where EP wins and where it cannot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

import solver.planning.candidates as candidates
from solver.data.gpus import get_gpu
from solver.data.models import get_model
from solver.performance.latency import (
    ALLREDUCE_LATENCY_S,
    LINK_EFFICIENCY,
    ModelCosts,
    allreduce_s,
    alltoall_s,
    hardware,
)
from solver.performance.memory import GIB, weights_gib
from solver.performance.model import predict
from solver.planning.evaluate import evaluate
from solver.planning.plan import Plan
from solver.planning.planner import plan
from solver.specs import Scenario

MIXTRAL = get_model("mixtral-8x7b")


def test_ep_memory_equals_tp_when_the_experts_divide():
    """8 experts over 8 GPUs: one whole expert per GPU is the same bytes as 1/8 of each of the 8."""
    tp = np.array([8.0])
    assert weights_gib(MIXTRAL, "fp16", tp, ep=tp)[0] == pytest.approx(weights_gib(MIXTRAL, "fp16", tp)[0])


def test_ep_memory_rounds_the_experts_per_gpu_up():
    """12 experts over 8 GPUs: a GPU holds ceil(12/8) = 2 whole experts, against 12/8 = 1.5 under TP."""
    card = MIXTRAL.model_copy(update={"num_experts": 12})
    one_expert = 3 * card.hidden_size * card.expert_intermediate_size * 2  # gated MLP, fp16, no biases
    assert card.expert_bytes("fp16") == one_expert
    routed = card.num_moe_layers * 12 * one_expert
    rest = card.weight_bytes("fp16") - routed
    tp = np.array([8.0])
    ep_gib = weights_gib(card, "fp16", tp, ep=tp)[0]
    tp_gib = weights_gib(card, "fp16", tp)[0]
    assert ep_gib == pytest.approx((rest / 8 + card.num_moe_layers * 2 * one_expert) / GIB)
    assert tp_gib == pytest.approx((rest / 8 + card.num_moe_layers * 1.5 * one_expert) / GIB)
    assert ep_gib - tp_gib == pytest.approx(card.num_moe_layers * 0.5 * one_expert / GIB)


@pytest.mark.parametrize(("gpu", "pcie"), [("V100", False), ("L40S", True)])
def test_alltoall_worked_example(gpu, pcie):
    """Mixtral decode step of 256 tokens on 8 GPUs: dispatch sends 256·2·4096·2/8 = 524,288 B per GPU, 7/8 of it
    over the link at the all-reduce's per-link bandwidth, plus half the all-reduce latency (one phase)."""
    spec = get_gpu(gpu)
    hw = hardware(
        np.array([spec.tensor_tflops("fp16")]),
        np.array([spec.memory_bandwidth_gb_per_s]),
        np.array([spec.host_link_gb_per_s]),
        np.array([spec.gpu_link_gb_per_s]),
        np.array([8.0]),
        np.array([pcie]),
    )
    link = "pcie" if pcie else "nvlink"
    x = 256 * 2 * 4096 * 2 / 8
    assert x == 524_288
    expected = 7 / 8 * x / (spec.gpu_link_gb_per_s * 1e9 * LINK_EFFICIENCY[link]) + ALLREDUCE_LATENCY_S[link] / 2
    got = alltoall_s(np.array([x]), np.array([8.0]), hw.link_bytes_per_s, hw.allreduce_latency_s)[0]
    assert got == pytest.approx(expected, rel=1e-12)
    assert alltoall_s(np.array([x]), np.array([1.0]), hw.link_bytes_per_s, hw.allreduce_latency_s)[0] == 0.0
    # the pass: 2L all-reduces, the L MoE ones replaced by dispatch + combine
    costs = ModelCosts.of(MIXTRAL, "fp16", "fp16")
    tokens, tp = np.array([256.0]), np.array([8.0])
    ar = allreduce_s(tokens * 4096 * 2, tp, hw.link_bytes_per_s, hw.allreduce_latency_s)[0]
    assert costs.comm_s(hw, tp, tokens)[0] == pytest.approx(64 * ar)
    with_ep = costs.comm_s(hw, tp, tokens, ep=np.array([8.0]))[0]
    if pcie:  # no peer-to-peer all-to-all over PCIe: the MoE all-reduce stays
        assert with_ep == pytest.approx(64 * ar)
    else:
        assert with_ep == pytest.approx(32 * ar + 32 * 2 * expected)
        assert with_ep < 64 * ar  # k = 2 < ep: a quarter of the all-reduce's bytes


def test_busiest_gpu_reads_one_whole_expert_at_batch_1_and_all_its_experts_at_a_large_batch():
    costs = ModelCosts.of(MIXTRAL, "fp16", "fp16")
    ep = np.array([8.0, 8.0, 2.0])
    x_max = costs.busiest_gpu_experts(np.array([1.0, 4096.0, 4096.0]), ep)
    assert x_max == pytest.approx([1.0, 1.0, 4.0])  # m = E/ep experts per GPU: 1, 1, 4
    # batch 1 on 8 GPUs: EP reads one whole expert on the busiest GPU, TP 2/8 of one on every GPU
    tp_read = costs.weights_read(np.array([1.0]))
    ep_read = costs.weights_read(np.array([1.0]), np.array([8.0]))
    per_expert = MIXTRAL.num_moe_layers * MIXTRAL.expert_bytes("fp16")
    assert (ep_read - tp_read)[0] == pytest.approx((8 * 1.0 - 2.0) * per_expert)
    # at a large batch every expert is read either way
    assert costs.weights_read(np.array([4096.0]), np.array([8.0]))[0] == pytest.approx(
        float(np.asarray(costs.weights_read(np.array([4096.0])))[0]), rel=1e-9
    )


def test_candidates_carry_the_ep_dimension_for_moe_models_only():
    grid = pd.DataFrame({"tp": [1, 2, 8, 16], "batch_size": [1, 1, 1, 1]})
    moe = candidates.expert_parallel_rows(grid, MIXTRAL)
    assert sorted(zip(moe["tp"], moe["ep"], strict=True)) == [(1, 1), (2, 1), (2, 2), (8, 1), (8, 8), (16, 1)]
    dense = candidates.expert_parallel_rows(grid, get_model("llama-2-7b"))
    assert (dense["ep"] == 1).all() and len(dense) == len(grid)


def _scenario(model: str, instance: str = "p5.48xlarge") -> Scenario:
    return Scenario.model_validate(
        {
            "catalog": "aws",
            "markets": ["on_demand"],
            "engine": "vllm",
            "regions": ["us-east-1"],
            "instances": [instance],
            "workloads": [
                {
                    "name": "job",
                    "model": model,
                    "input_tokens": 4096,
                    "output_tokens": 256,
                    "requests": 100_000,
                    "deadline_h": 1000,
                }
            ],
            "search": {"batch_sizes": [32, 128, 256], "tp_degrees": [8]},
        }
    )


def _without_ep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(candidates, "expert_parallel_rows", lambda grid, model: grid.assign(ep=1))


def test_a_plan_where_expert_parallelism_wins(monkeypatch):
    """Mixtral (k = 2) batch job on 8 x H100 over NVLink: the dispatch + combine all-to-alls move k/ep = 1/4 of the
    MoE all-reduce's bytes, so the EP replica is faster and the job needs fewer instance-hours."""
    scen = _scenario("mixtral-8x7b")
    with_ep = plan(scen)
    assert evaluate(with_ep, scen).ok
    row = with_ep.fleet[0]
    assert (row.tp, row.ep) == (8, 8)
    back = Plan.from_dict(with_ep.to_dict())  # the JSON carries ep and the evaluator re-predicts with it
    assert back.fleet[0].ep == 8 and evaluate(back, scen).ok
    _without_ep(monkeypatch)
    tp_only = plan(scen)
    assert tp_only.fleet[0].ep == 1
    assert with_ep.total_cost_usd < 0.95 * tp_only.total_cost_usd


def test_expert_parallelism_never_wins_over_pcie(monkeypatch):
    """8 x L40S: without a peer-to-peer all-to-all the MoE all-reduce stays, and the busiest GPU reads at least
    as many expert bytes as under TP, so EP is never faster and the plan keeps TP at the same cost."""
    scen = _scenario("mixtral-8x7b", "g6e.48xlarge")
    with_ep = plan(scen)
    assert all(r.ep == 1 for r in with_ep.fleet)
    _without_ep(monkeypatch)
    assert plan(scen).total_cost_usd == pytest.approx(with_ep.total_cost_usd, rel=1e-9)


def test_expert_parallelism_cannot_win_when_k_equals_ep(monkeypatch):
    """Qwen3-30B-A3B routes each token to k = 8 experts: on 8 GPUs the all-to-alls move as many bytes as the
    all-reduce they replace, and the busiest GPU reads more experts, so the plan keeps TP and costs the same."""
    scen = _scenario("qwen3-30b-a3b")
    with_ep = plan(scen)
    assert all(r.ep == 1 for r in with_ep.fleet)
    _without_ep(monkeypatch)
    assert plan(scen).total_cost_usd == pytest.approx(with_ep.total_cost_usd, rel=1e-9)


def test_predict_ep_and_its_errors(capsys):
    base = {"input_tokens": 2048, "output_tokens": 256, "batch_size": 64, "instance": "p5.48xlarge", "tp": 8}
    tp_pred = predict("mixtral-8x7b", **base, batching="static")
    ep_pred = predict("mixtral-8x7b", **base, batching="static", ep=8)
    assert ep_pred.ep == 8 and tp_pred.ep == 1
    assert ep_pred.ttft_ms < tp_pred.ttft_ms  # prefill: a quarter of the MoE all-reduce bytes over NVLink
    assert math.isclose(ep_pred.memory["weights_gib"], tp_pred.memory["weights_gib"], rel_tol=1e-12)
    args = ["predict", "--instance", "g6e.48xlarge", "--input-len", "20", "--output-len", "20", "--batch-size", "4"]
    code, _out, err = run([*args, "--model", "llama-2-7b", "--tp", "8", "--ep", "8"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "--ep" in err and "dense" in err
    code, _out, err = run([*args, "--model", "mixtral-8x7b", "--tp", "8", "--ep", "4"], capsys)
    assert code == 2 and "--ep: must be 1 or equal to tp" in err


def test_export_starts_vllm_with_expert_parallelism():
    """A fleet row with ep > 1 becomes ``vllm serve ... --enable-expert-parallel``; a TP row does not."""
    from solver.apps.export.common import deployment_rows

    scen = _scenario("mixtral-8x7b")
    args = [d.vllm_args() for d in deployment_rows(plan(scen), scen)]
    assert args and all("--enable-expert-parallel" in a and "--tensor-parallel-size" in a for a in args)
    tp_scen = _scenario("mixtral-8x7b", "g6e.48xlarge")
    assert all("--enable-expert-parallel" not in d.vllm_args() for d in deployment_rows(plan(tp_scen), tp_scen))
