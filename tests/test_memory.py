import math

import numpy as np
import pandas as pd
import pytest

from solver.data.models import get_model
from solver.errors import InputError, UnknownNameError
from solver.performance.hardware import bare_instance
from solver.performance.measurements import measurement_hardware
from solver.performance.memory import (
    NCCL_MEMORY_GIB,
    available_gpu_gib,
    engine_memory,
    kv_head_share,
    resolve_dtypes,
    weights_gib,
)
from solver.performance.model import predict_frame


def test_kv_bytes_per_token_worked_numbers():
    # OPT-2.7B: 2 * 32 layers * 32 heads * 80 dim * 2 bytes; Llama-3.1-8B: 2 * 32 * 8 kv heads * 128 * 2 bytes
    assert get_model("opt-2.7b").kv_bytes_per_token("fp16") == 327_680
    assert get_model("llama-3.1-8b").kv_bytes_per_token("bf16") == 131_072
    assert get_model("llama-3.1-8b").kv_bytes_per_token("fp8") == 65_536


def _frame(tp, gpu_count, mem_mib=81920.0, batch=1, offload=0.0, host=1152.0, gpu="A100-80GB"):
    return pd.DataFrame(
        {
            "gpu": [gpu],
            "gpu_count": [gpu_count],
            "gpu_memory_mib": [mem_mib],
            "host_memory_gib": [host],
            "tp": [tp],
            "batch_size": [batch],
            "offload_fraction": [offload],
        }
    )


def test_llama2_70b_fp16_does_not_fit_one_a100_but_fits_tp4():
    model = get_model("llama-2-70b")
    one = predict_frame(_frame(1, 1), model, input_tokens=128, output_tokens=128, dtype="fp16")
    four = predict_frame(_frame(4, 4), model, input_tokens=128, output_tokens=128, dtype="fp16")
    assert one["weights_gib"].iloc[0] > 80.0 * 0.9  # 69e9 params * 2 B = 128 GiB
    assert not one["fits"].iloc[0]
    assert math.isinf(one["min_offload_fraction"].iloc[0])
    assert four["fits"].iloc[0]
    assert four["weights_gib"].iloc[0] == pytest.approx(one["weights_gib"].iloc[0] / 4)


def test_weights_scale_with_dtype():
    m = get_model("llama-3.1-8b")
    fp16 = weights_gib(m, "fp16", 1)
    assert weights_gib(m, "int4", 1) == pytest.approx(fp16 / 4)
    assert weights_gib(m, "fp8", 2) == pytest.approx(fp16 / 4)


def test_kv_heads_replicate_beyond_num_kv_heads():
    m = get_model("llama-3.1-8b")  # 8 KV heads
    assert kv_head_share(m, 8) == pytest.approx(1 / 8)
    assert kv_head_share(m, 16) == pytest.approx(1 / 8)


def test_vllm_budget_and_nccl():
    avail = available_gpu_gib(np.array([81920.0, 81920.0]), np.array([1.0, 4.0]), "vllm")
    assert avail[0] == pytest.approx(72.0)
    assert avail[1] == pytest.approx(72.0 - NCCL_MEMORY_GIB[4])


def test_min_offload_fraction_is_smallest_that_fits():
    model = get_model("llama-3.1-8b")
    base = _frame(1, 1, mem_mib=22888.0, batch=64, offload=np.nan, gpu="A10G", host=16.0 * 8)
    out = predict_frame(base, model, input_tokens=1024, output_tokens=1024, engine="generic")  # an offloading engine
    f = out["min_offload_fraction"].iloc[0]
    assert 0.0 < f < 1.0
    assert out["total_gpu_gib"].iloc[0] == pytest.approx(out["available_gpu_gib"].iloc[0], rel=1e-9)
    less = predict_frame(
        base.assign(offload_fraction=f - 0.01), model, input_tokens=1024, output_tokens=1024, engine="generic"
    )
    assert not less["fits"].iloc[0]


def test_host_memory_limits_offload():
    model = get_model("llama-3.1-8b")
    frame = _frame(1, 1, mem_mib=22888.0, batch=64, offload=1.0, gpu="A10G", host=16.0)
    out = predict_frame(frame, model, input_tokens=1024, output_tokens=1024)
    assert out["offloaded_kv_gib"].iloc[0] > out["host_available_gib"].iloc[0]
    assert not out["fits"].iloc[0]


def test_bad_names_and_dtypes():
    with pytest.raises(UnknownNameError):
        engine_memory("vlm")
    with pytest.raises(InputError):
        resolve_dtypes(get_model("opt-2.7b"), "fp4", None)
    assert resolve_dtypes(get_model("llama-3.1-8b"), "int4", None) == ("int4", "fp16")


@pytest.mark.parametrize("gpu", ["H100", "A10G", "T4", "H200"])
def test_measurement_grid_and_bare_instance_use_the_same_usable_memory(gpu):
    record, _ = bare_instance(gpu, 2, host_memory_gib=512.0)
    grid = measurement_hardware(pd.DataFrame({"gpu": [gpu], "tp": [2], "batch": [4]}))
    assert grid["gpu_memory_mib"].iloc[0] == record["gpu_memory_mib"] > 0
