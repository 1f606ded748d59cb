import numpy as np
import pandas as pd
import pytest

from solver.data.models import get_model
from solver.errors import InputError
from solver.performance.ctcf import IDENTITY
from solver.performance.latency import ModelCosts, _mean_max_linear, allreduce_s
from solver.performance.model import predict_frame


def frame(**kw):
    base = dict(
        gpu="H100",
        gpu_count=8.0,
        gpu_memory_mib=81559.0,
        host_memory_gib=2048.0,
        tp=1,
        batch_size=1,
        offload_fraction=0.0,
    )
    base.update(kw)
    return pd.DataFrame([base])


def test_batch1_decode_is_weight_bandwidth_bound():
    # Llama-3.1-8B bf16 on H100: TPOT ~ weights / (0.8 * 3350 GB/s) uncalibrated
    m = get_model("llama-3.1-8b")
    out = predict_frame(frame(), m, input_tokens=128, output_tokens=128, profile=IDENTITY)
    expected_ms = m.num_params * 2 / (0.8 * 3350e9) * 1e3 + m.num_layers * 8 * 3e-6 * 1e3
    assert out["tpot_model_ms"].iloc[0] == pytest.approx(expected_ms, rel=0.05)


def test_pass_overhead_is_per_layer_and_not_shrunk_by_tp():
    # 32 layers x 8 kernels x 3 us (aiconfigurator mem_empirical_constant_latency) = 0.768 ms per forward pass
    m = get_model("llama-3.1-8b")
    costs = ModelCosts.of(m, "bf16", "bf16")
    assert costs.pass_overhead_s == pytest.approx(32 * 8 * 3e-6)
    args = dict(input_tokens=128, output_tokens=128, profile=IDENTITY)
    t8 = predict_frame(frame(tp=8), m, **args)["tpot_model_ms"].iloc[0]
    assert t8 > costs.pass_overhead_s * 1e3
    assert t8 < m.num_params * 2 / 8 / (0.8 * 3350e9) * 1e3 + costs.pass_overhead_s * 1e3 + 2 * 32 * 0.03


def test_prefill_is_compute_bound_for_long_prompts():
    m = get_model("llama-3.1-8b")
    out = predict_frame(frame(batch_size=8), m, input_tokens=4096, output_tokens=16, profile=IDENTITY)
    flops = 8 * 4096 * 2 * m.num_layers * m.layer_params
    assert out["ttft_model_ms"].iloc[0] > flops / (989.4e12 * 0.73) * 1e3


def test_mean_max_linear_matches_numeric_mean():
    a1, b1, a2, b2 = np.array([1.0]), np.array([0.01]), np.array([3.0]), np.array([0.001])
    c = np.arange(100, 501, dtype=float)
    numeric = np.maximum(a1 + b1 * c, a2 + b2 * c).mean()
    exact = _mean_max_linear(a1, b1, a2, b2, np.array([100.0]), np.array([500.0]))[0]
    assert exact == pytest.approx(numeric, rel=2e-3)


def test_allreduce_zero_for_tp1_and_grows_with_bytes():
    tp = np.array([1.0, 2.0, 2.0])
    t = allreduce_s(np.array([1e6, 1e6, 1e8]), tp, np.array([450e9] * 3))
    assert t[0] == 0.0 and t[2] > t[1] > 0


def test_offload_modes_differ_and_copy_costs_pcie():
    m = get_model("llama-3.1-8b")
    args = dict(input_tokens=2048, output_tokens=256, profile=IDENTITY)
    none = predict_frame(frame(batch_size=32), m, **args)
    copy = predict_frame(frame(batch_size=32, offload_fraction=0.5), m, **args)
    cpu = predict_frame(frame(batch_size=32, offload_fraction=0.5), m, offload_mode="cpu_attention", **args)
    assert copy["tpot_ms"].iloc[0] > none["tpot_ms"].iloc[0]
    assert cpu["tpot_ms"].iloc[0] > none["tpot_ms"].iloc[0]
    assert copy["tpot_ms"].iloc[0] != cpu["tpot_ms"].iloc[0]


def test_unknown_offload_mode():
    with pytest.raises(InputError):
        predict_frame(frame(), get_model("opt-1.3b"), input_tokens=8, output_tokens=8, offload_mode="disk")


def test_throughput_definitions():
    m = get_model("opt-2.7b")
    out = predict_frame(
        frame(batch_size=4, gpu="A10G", gpu_count=1.0, gpu_memory_mib=22888.0), m, input_tokens=100, output_tokens=50
    )
    r = out.iloc[0]
    assert r["e2e_s"] == pytest.approx(r["ttft_ms"] / 1e3 + 50 * r["tpot_ms"] / 1e3)
    assert r["tps"] == pytest.approx(4 * 150 / r["e2e_s"])
    assert r["output_tokens_per_s"] == pytest.approx(4 * 50 / r["e2e_s"])


def test_elementwise_traffic_is_charged_in_both_phases_and_exact(monkeypatch):
    """Element-wise bytes (aiconfigurator's add_norm_1/2 and act_gate): 16·h + 6·I/tp per token per layer."""
    import solver.performance.latency as latency

    assert latency.ELEMENTWISE_PHASES == ("prefill", "decode")  # as shipped
    m = get_model("llama-3.1-8b")
    args = dict(input_tokens=512, output_tokens=128, profile=IDENTITY)
    on = predict_frame(frame(tp=2, batch_size=16), m, **args).iloc[0]
    monkeypatch.setattr(latency, "ELEMENTWISE_PHASES", ())
    off = predict_frame(frame(tp=2, batch_size=16), m, **args).iloc[0]
    per_token = m.num_layers * (16 * m.hidden_size + 6 * m.intermediate_size / 2)
    bw = 0.8 * 3350e9
    assert on["tpot_model_ms"] - off["tpot_model_ms"] == pytest.approx(16 * per_token / bw * 1e3, rel=1e-6)
    assert on["ttft_model_ms"] - off["ttft_model_ms"] == pytest.approx(16 * 512 * per_token / bw * 1e3, rel=1e-6)
