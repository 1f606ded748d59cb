"""Invariants of every shipped calibration profile, over every GPU of instances/gpus.csv and every engine.

1. A calibrated time is never below the physical floor: the bytes a phase must move over the peak bandwidth and the
   FLOPs it must do over the peak FLOPS (datasheet, efficiency 1).
2. A GPU at least as good as another on every datasheet figure (solver.performance.hardware.dominates) is never
   predicted slower, at the same TP, model, batch and lengths. Under continuous batching the batch is the
   concurrency: the better GPU admits at least as many of the requests into its KV memory, never has a longer
   end-to-end time or a lower throughput, and its TPOT is no longer wherever both run the same number of
   requests (running more at once may lengthen each step: that is the better GPU doing more, not being slower).
   Its TTFT is no longer unless its throughput is strictly higher: in the steady state of a closed loop the
   faster GPU's clients come back sooner, so more prefills queue ahead of each request (the simulator shows
   the same; ``tests/test_serving.py::test_closed_loop_against_the_simulator``).
"""

import itertools

import numpy as np
import pandas as pd
import pytest

from solver.data.gpus import get_gpu, load_gpus
from solver.data.models import get_model
from solver.performance.ctcf import ENGINES, shipped_profile
from solver.performance.hardware import dominates
from solver.performance.latency import ModelCosts
from solver.performance.memory import tp_shardable
from solver.performance.model import predict_frame

GPUS = sorted(load_gpus())
MODELS = ("llama-3.1-8b", "llama-2-70b")
LENGTHS = ((128, 128), (2048, 512))
BATCHES = (1, 16, 256)
TPS = (1, 2, 4, 8)
CASES = list(itertools.product(ENGINES, MODELS, LENGTHS, ("static", "continuous"), ("fp16", "fp8")))


def _grid(model) -> pd.DataFrame:
    rows = []
    for gpu, tp, b in itertools.product(GPUS, TPS, BATCHES):
        if not tp_shardable(model, tp):
            continue
        spec = get_gpu(gpu)
        rows.append(
            {
                "gpu": gpu,
                "gpu_count": float(tp),
                "gpu_memory_mib": spec.memory_gb * 1e9 / 2**20,  # the datasheet figure, the same rule for every GPU
                "host_memory_gib": 2048.0,
                "tp": float(tp),
                "batch_size": float(b),
                "offload_fraction": np.nan,
            }
        )
    return pd.DataFrame(rows)


def _predict(engine, model_name, lengths, batching, dtype):
    model = get_model(model_name)
    s, n = lengths
    out = predict_frame(
        _grid(model),
        model,
        input_tokens=s,
        output_tokens=n,
        dtype=dtype,
        engine=engine,
        profile=shipped_profile(engine),
        batching=batching,
    )
    return model, out


def _floors_ms(model, dtype, frame, s, n, batching):
    """Prefill and decode-step floors at peak datasheet rates, ms (the smallest context for decode)."""
    costs = ModelCosts.of(model, dtype, dtype)
    peak_f = np.array([get_gpu(g).tensor_tflops(dtype) * 1e12 for g in frame["gpu"]])
    peak_bw = np.array([get_gpu(g).memory_bandwidth_gb_per_s * 1e9 for g in frame["gpu"]])
    tp = frame["tp"].to_numpy()
    b = frame["running"].to_numpy() if batching == "continuous" else frame["batch_size"].to_numpy()
    b_pf = np.ones_like(b) if batching == "continuous" else b
    f_pf = (
        b_pf * s * costs.flops_per_token + b_pf * costs.head_flops + b_pf * costs.attn_flops_per_pair * s * (s + 1) / 2
    )
    m_pf = costs.weight_bytes + b_pf * s * costs.kv_bytes_per_token
    c = s + 1.0
    f_dec = b * (costs.flops_per_token + costs.head_flops) + b * costs.attn_flops_per_pair * c
    m_dec = costs.weight_bytes + b * c * costs.kv_bytes_per_token
    pf = np.maximum(f_pf / (tp * peak_f), m_pf / (tp * peak_bw)) * 1e3
    dec = np.maximum(f_dec / (tp * peak_f), m_dec / (tp * peak_bw)) * 1e3
    return pf, dec


@pytest.mark.parametrize(("engine", "model_name", "lengths", "batching", "dtype"), CASES)
def test_calibrated_time_is_never_below_the_physical_floor(engine, model_name, lengths, batching, dtype):
    model, out = _predict(engine, model_name, lengths, batching, dtype)
    pf, dec = _floors_ms(model, dtype, out, *lengths, batching)
    ok = out["fits"].to_numpy()
    assert ok.any()
    ttft, tpot = out["ttft_ms"].to_numpy(), out["tpot_ms"].to_numpy()
    assert np.all(ttft[ok] >= pf[ok] * (1 - 1e-9)), out[ok & (ttft < pf)][["gpu", "tp", "batch_size"]]
    assert np.all(tpot[ok] >= dec[ok] * (1 - 1e-9)), out[ok & (tpot < dec)][["gpu", "tp", "batch_size"]]


PAIRS = [(a, b) for a in GPUS for b in GPUS if dominates(a, b)]


def test_dominance_pairs_exist_and_are_datasheet_facts():
    for pair in (("A100-80GB", "A100"), ("A10G", "T4"), ("H100", "H100-PCIe"), ("H100", "L40S"), ("L40S", "L4")):
        assert pair in PAIRS
    # H200 lists 989 dense FP16 TFLOPS against H100's 989.4; H100 has no INT4 figure, A100 has one
    assert ("H200", "H100") not in PAIRS and ("H100", "A100") not in PAIRS
    assert ("A10G", "L4") not in PAIRS and ("L4", "A10G") not in PAIRS  # L4 has less bandwidth, more FLOPS
    assert ("H100-PCIe", "H100") not in PAIRS


@pytest.mark.parametrize(("engine", "model_name", "lengths", "batching", "dtype"), CASES)
def test_a_dominating_gpu_is_never_predicted_slower(engine, model_name, lengths, batching, dtype):
    _, out = _predict(engine, model_name, lengths, batching, dtype)
    keyed = out.set_index(["gpu", "tp", "batch_size"])
    checked = 0
    for a, b in PAIRS:
        fa, fb = keyed.loc[a], keyed.loc[b]
        both = fa["fits"].to_numpy() & fb["fits"].reindex(fa.index).fillna(False).to_numpy(dtype=bool)
        if not both.any():
            continue
        same = np.ones(int(both.sum()), dtype=bool)
        if batching == "continuous":
            ra, rb = fa.loc[both, "running"].to_numpy(), fb["running"].reindex(fa.index)[both].to_numpy()
            assert np.all(ra >= rb), f"{a} admits fewer requests than {b} at {list(fa.index[both][ra < rb])[:3]}"
            same = ra == rb
            qa, qb = fa.loc[both, "rate_rps"].to_numpy(), fb["rate_rps"].reindex(fa.index)[both].to_numpy()
            assert not (qa < qb * (1 - 1e-9)).any(), f"{a} has a lower throughput than {b}"
        for col in ("ttft_ms", "tpot_ms", "e2e_s"):
            va = fa.loc[both, col].to_numpy()
            vb = fb[col].reindex(fa.index)[both].to_numpy()
            bad = (va > vb * (1 + 1e-9)) & (same if col == "tpot_ms" else True)
            if batching == "continuous" and col == "ttft_ms":
                # a closed loop at a fixed concurrency: the faster GPU's clients come back sooner, so more
                # prefills queue ahead of a request (serving.steady_loop). Its TTFT may be higher only together
                # with a strictly higher throughput (its e2e, checked below, is never longer)
                bad &= ~(qa > qb * (1 + 1e-9))
            assert not bad.any(), f"{a} predicted slower than {b} ({col}) at {list(fa.index[both][bad])[:3]}"
        checked += int(both.sum())
    assert checked > 0
