"""Error bands from cross-validated residuals, ``search.slo_confidence`` and the per-direction offload terms."""

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run as run_cli

from solver import SolveOptions, evaluate, load_scenario, plan
from solver.data.models import get_model
from solver.errors import InputError
from solver.performance import latency, uncertainty
from solver.performance.ctcf import IDENTITY
from solver.performance.model import predict, predict_frame
from solver.planning.candidates import build_candidates


def test_shipped_bands_are_ordered_quantiles_of_enough_rows():
    bands = uncertainty.shipped_bands()
    assert {("vllm", "tpot", "hbm"), ("trtllm", "ttft", "gddr"), ("tgi", "e2e", "gddr")} <= set(bands)
    for band in bands.values():
        q = list(band["quantiles"].values())
        assert q == sorted(q) and all(v > 0 for v in q)
        assert band["rows"] >= uncertainty.MIN_BAND_ROWS or band["from"] == "every engine, any GPU"


def test_band_table_falls_back_to_the_next_level_and_says_so():
    rng = np.random.default_rng(3)
    n = 30
    errors = pd.DataFrame(
        {
            "split": "loso",
            "metric": "tpot",
            "engine": ["vllm"] * n + ["tgi"] * 5,
            "gpu_class": "hbm",
            "ratio": np.concatenate([rng.uniform(0.8, 1.25, n), [0.5] * 5]),
        }
    )
    bands = {(b["engine"], b["gpu_class"]): b for b in uncertainty.band_table(errors) if b["metric"] == "tpot"}
    assert bands[("vllm", "hbm")]["from"] == "vllm, hbm" and bands[("vllm", "hbm")]["rows"] == n
    assert bands[("tgi", "hbm")]["from"] == "every engine, hbm"  # 5 tgi rows are too few
    median = float(np.median(1 / errors["ratio"][:n]))
    assert bands[("vllm", "hbm")]["quantiles"]["0.5"] == pytest.approx(median, abs=1e-4)


def test_slo_confidence_scales_every_candidate_time_by_its_band_and_the_plan_checks():
    base = load_scenario()
    conf = base.model_copy(update={"search": base.search.model_copy(update={"slo_confidence": 0.9})})
    point, margin = build_candidates(base), build_candidates(conf)
    assert len(point) == len(margin)
    for kind, ttft_metric in (("online", "ttft_serving"), ("offline", "ttft")):  # vllm: online is continuous
        for col, metric in (("ttft_ms", ttft_metric), ("tpot_ms", "tpot"), ("e2e_s", "e2e")):
            for gpu in point["gpu"].unique():
                band = uncertainty._band(base.engine, metric, gpu)
                factor = 1.0 if band is None else uncertainty.quantile(band, 0.9)
                sel = (point["gpu"] == gpu) & (point["kind"] == kind)
                assert np.allclose(margin.loc[sel, col], point.loc[sel, col] * factor, rtol=1e-12)
    assert np.allclose(margin["rate_rps"], margin["batch_size"] / margin["e2e_s"])
    result = plan(conf, SolveOptions(backend="cbc", time_limit_s=60))
    assert evaluate(result, conf).ok


def test_slo_confidence_out_of_range_is_one_line_naming_the_field():
    from solver.data.scenario import scenario_from_dict

    raw = {"workloads": [{"name": "a", "model": "llama-3.1-8b", "input_tokens": 8, "output_tokens": 8, "rate_rps": 1}]}
    with pytest.raises(InputError, match="slo_confidence"):
        scenario_from_dict(raw | {"search": {"slo_confidence": 1.5}})


def test_predict_prints_the_band(capsys):
    code, out, _ = run_cli(
        ["predict", "--model", "llama-3.1-8b", "--instance", "g6e.xlarge",
        "--batch-size", "8", "--input-len", "512", "--output-len", "128", "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0
    bands = json.loads(out)["bands"]
    assert set(bands) == {"ttft_ms", "tpot_ms", "e2e_s"}
    for b in bands.values():
        assert 0 < b["p10"] < b["p90"] and b["rows"] > 0 and "LOSO" in b["from"]
    p = predict("llama-3.1-8b", instance="g6e.xlarge", batch_size=8, input_tokens=512, output_tokens=128)
    assert p.bands["tpot_ms"]["p90"] == pytest.approx(bands["tpot_ms"]["p90"])


def test_offload_writes_and_reads_use_their_own_host_link_efficiency():
    model = get_model("opt-2.7b")
    frame = pd.DataFrame(
        [{"gpu": "T4", "gpu_count": 1.0, "gpu_memory_mib": 15360.0, "host_memory_gib": 200.0, "tp": 1.0,
          "batch_size": 32.0, "offload_fraction": f} for f in (0.0, 1.0)]
    )  # fmt: skip
    s, n = 512, 32
    p = predict_frame(frame, model, input_tokens=s, output_tokens=n, profile=IDENTITY, offload_mode="copy")
    kv = model.kv_bytes_per_token("fp16")
    host = 15.75e9
    write = 32 * s * kv / (host * latency.HOST_WRITE_EFFICIENCY)
    assert (p["ttft_model_ms"][1] - p["ttft_model_ms"][0]) / 1e3 == pytest.approx(write, rel=1e-9)
    mean_ctx = (s + 1 + s + n) / 2
    read = 32 * mean_ctx * kv / (host * latency.HOST_READ_EFFICIENCY) + 32 * kv / (host * latency.HOST_WRITE_EFFICIENCY)
    assert (p["tpot_model_ms"][1] - p["tpot_model_ms"][0]) / 1e3 == pytest.approx(read, rel=1e-9)
    # FlexGen's fitted T4 constants (shared/data/flexgen/flexgen_cost_model_t4_constants.csv), GiB/s over 15.75 GB/s
    assert latency.HOST_READ_EFFICIENCY * 15.75 == pytest.approx(12.89 * 2**30 / 1e9)
    assert latency.HOST_WRITE_EFFICIENCY * 15.75 == pytest.approx(0.97 * 2**30 / 1e9)
