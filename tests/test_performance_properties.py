import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.data.models import get_model
from solver.performance.model import predict_frame

MODELS = ["opt-2.7b", "llama-3.1-8b", "llama-2-13b", "mistral-7b", "llama-2-70b"]
GPUS = [
    ("T4", 16384.0, 8.0),
    ("A10G", 22888.0, 8.0),
    ("L4", 22888.0, 8.0),
    ("A100", 40960.0, 8.0),
    ("H100", 81559.0, 8.0),
    ("L40S", 45776.0, 8.0),
]
ENGINES = ["vllm", "tgi", "trtllm", "flexgen", "generic"]

config = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "gpu": st.sampled_from(GPUS),
        "tp": st.sampled_from([1, 2, 4, 8]),
        "batch": st.integers(1, 256),
        "input": st.integers(1, 8192),
        "output": st.integers(1, 4096),
        "offload": st.floats(0.0, 1.0),
        "engine": st.sampled_from(ENGINES),
        "mode": st.sampled_from(["copy", "cpu_attention"]),
    }
)


def run(cfg, **over):
    c = {**cfg, **over}
    gpu, mem, count = c["gpu"]
    frame = pd.DataFrame(
        [
            dict(
                gpu=gpu,
                gpu_count=count,
                gpu_memory_mib=mem,
                host_memory_gib=64.0 * count,
                tp=c["tp"],
                batch_size=c["batch"],
                offload_fraction=c["offload"],
            )
        ]
    )
    return predict_frame(
        frame,
        get_model(c["model"]),
        input_tokens=c["input"],
        output_tokens=c["output"],
        engine=c["engine"],
        offload_mode=c["mode"],
    ).iloc[0]


@settings(max_examples=60, deadline=None)
@given(config, st.integers(1, 64))
def test_tpot_never_falls_as_batch_grows(cfg, extra):
    a, b = run(cfg), run(cfg, batch=cfg["batch"] + extra)
    assert b["tpot_ms"] >= a["tpot_ms"] * (1 - 1e-12)
    assert b["ttft_ms"] >= a["ttft_ms"] * (1 - 1e-12)
    assert b["e2e_s"] >= a["e2e_s"] * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(config, st.integers(1, 4096), st.integers(0, 2048))
def test_tpot_never_falls_as_context_grows(cfg, more_in, more_out):
    a = run(cfg)
    b = run(cfg, input=cfg["input"] + more_in, output=cfg["output"] + more_out)
    assert b["tpot_ms"] >= a["tpot_ms"] * (1 - 1e-12)
    assert b["ttft_ms"] >= a["ttft_ms"] * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(config, st.floats(0.0, 1.0))
def test_more_offload_never_raises_gpu_memory_nor_lowers_tpot(cfg, more):
    hi = min(1.0, cfg["offload"] + more)
    a, b = run(cfg), run(cfg, offload=hi)
    assert b["total_gpu_gib"] <= a["total_gpu_gib"] + 1e-12
    assert b["tpot_ms"] >= a["tpot_ms"] * (1 - 1e-12)
    assert b["ttft_ms"] >= a["ttft_ms"] * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(config)
def test_more_tp_never_raises_per_gpu_weight_memory(cfg):
    tps = [t for t in (1, 2, 4, 8) if t <= cfg["gpu"][2]]
    weights = [run(cfg, tp=t)["weights_gib"] for t in tps]
    assert all(np.diff(weights) <= 0)


@settings(max_examples=40, deadline=None)
@given(config)
def test_smallest_offload_that_fits_is_used_and_fits(cfg):
    r = run(cfg, offload=float("nan"))
    f = r["min_offload_fraction"]
    if np.isfinite(f):
        assert 0.0 <= r["offload_fraction"] == f <= 1.0
        assert r["total_gpu_gib"] <= r["available_gpu_gib"] + 1e-9
    else:
        assert not r["fits"]
