"""Routing of the MoE benchmark rows (issue 17): TensorRT-LLM's fake weights, and rows that carry their routing."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.moe_fake_weights import Shape, simulate
from solver.data.resources import data_path
from solver.errors import InputError
from solver.performance.calibration import check_measurements, read_measurements
from solver.performance.latency import expected_experts_touched
from solver.performance.measurements import ROUTING_COLUMN, model_measurements

SMALL = Shape(hidden=1024, heads=8, kv_heads=2, head_dim=128, ffn=2048, experts=8, top_k=2, layers=4, vocab=1000)
"""A Mixtral-like shape small enough for a test (the benchmark runs the full one; at hidden 256 the collapse is
still partial in the first layers: the common direction grows about sqrt(hidden)/2 per matrix)."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trtllm_fake_weights_send_every_token_to_the_same_k_experts(seed):
    r = simulate(SMALL, batch=4, seq=8, token_ids_below=1000, init="trtllm", seed=seed)
    assert r.experts_all_tokens == [SMALL.top_k] * SMALL.layers
    assert r.experts_last_positions == [SMALL.top_k] * SMALL.layers


def test_zero_mean_weights_spread_tokens_over_the_experts():
    # the control: the same pass with zero-mean weights routes like a uniform router, 32 tokens touch ~8 experts
    r = simulate(SMALL, batch=4, seq=8, token_ids_below=1000, init="zero_mean", seed=1)
    uniform = float(expected_experts_touched(SMALL.experts, SMALL.top_k, 32))
    assert np.mean(r.experts_all_tokens) > uniform - 1.5 > SMALL.top_k
    with pytest.raises(ValueError, match="init"):
        simulate(SMALL, init="xavier")


def test_shipped_fake_weight_routing_result_is_what_the_rows_carry():
    import json

    from benchmarks.moe_fake_weights import OUT

    cases = json.loads(OUT.read_text())["cases"]
    trt = [c for c in cases if c["init"] == "trtllm"]
    assert trt and all(set(c["experts_all_tokens"]) == {2} for c in trt)
    assert all(max(c["max_abs_residual"]) > 65504 for c in trt)  # beyond fp16
    rows = read_measurements(data_path("measurements", "holdout", "dli_trtllm_mixtral.csv"))
    assert (rows[ROUTING_COLUMN] == "same_experts").all()


def _rows(routing):
    base = {
        "gpu": "H100",
        "model": "mixtral-8x7b",
        "tp": 2,
        "dtype": "fp16",
        "engine": "trtllm",
        "batch": 32,
        "input": 128,
        "output": 128,
        "tpot_ms": 7.6,
    }
    frame = pd.DataFrame([base, base, {**base, "model": "llama-3.1-8b", "tp": 1}])
    if routing is not None:
        frame[ROUTING_COLUMN] = routing
    return check_measurements(frame)


def test_model_measurements_honours_the_rows_routing():
    uniform = model_measurements(_rows(None))
    same = model_measurements(_rows(["same_experts", None, "same_experts"]))
    assert ROUTING_COLUMN not in uniform.columns and ROUTING_COLUMN in same.columns
    # batch 32 touches all 8 experts under uniform routing, 2 with same_experts: fewer bytes, a faster step
    assert same["tpot_model_ms"].iloc[0] < 0.6 * uniform["tpot_model_ms"].iloc[0]
    # an empty cell keeps the card's routing; a dense model ignores the column
    assert same["tpot_model_ms"].iloc[1] == pytest.approx(uniform["tpot_model_ms"].iloc[1])
    assert same["tpot_model_ms"].iloc[2] == pytest.approx(uniform["tpot_model_ms"].iloc[2])


def test_unknown_routing_is_a_one_line_error():
    with pytest.raises(InputError, match=r"expert_routing.*same_experts.*'random'"):
        model_measurements(_rows(["random", "uniform", "uniform"]))
