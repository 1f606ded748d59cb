import pandas as pd
import pytest

from solver.errors import InputError
from solver.performance.calibration import (
    CalibrationProfile,
    calibrate,
    fit_ctcf,
    load_profile,
    nearest_measured_gpu,
    save_profile,
    shipped_profile,
)
from solver.performance.measurements import model_measurements


def _table():
    rows = []
    for b in (1, 4, 16, 64):
        for s in (128, 512, 2048):
            rows.append(dict(gpu="H100", model="llama-3.1-8b", tp=1, engine="vllm", batch=b, input=s, output=128))
            rows.append(dict(gpu="A10G", model="llama-3.1-8b", tp=1, engine="vllm", batch=b, input=s, output=64))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("alpha_p,beta_p,alpha_d,beta_d", [(1.7, 12.0, 1.3, 2.5), (0.8, 0.0, 2.0, 0.4)])
def test_calibrate_round_trip_recovers_alpha_beta(tmp_path, alpha_p, beta_p, alpha_d, beta_d):
    table = _table()
    table["ttft_ms"] = 1.0  # placeholder so the table validates; replaced below
    modelled = model_measurements(pd.concat([table]).pipe(_checked))
    table["ttft_ms"] = alpha_p * modelled["ttft_model_ms"].to_numpy() + beta_p
    table["tpot_ms"] = alpha_d * modelled["tpot_model_ms"].to_numpy() + beta_d
    path = tmp_path / "m.csv"
    table.to_csv(path, index=False)
    prof = calibrate(path)
    out = tmp_path / "p.yaml"
    save_profile(prof, out)
    back = load_profile(out)
    for gpu in ("H100", "A10G"):
        cal = back.gpus[gpu]
        assert cal.prefill.alpha == pytest.approx(alpha_p, rel=1e-6)
        assert cal.prefill.beta_ms == pytest.approx(beta_p, abs=1e-6)
        assert cal.decode.alpha == pytest.approx(alpha_d, rel=1e-6)
        assert cal.decode.beta_ms == pytest.approx(beta_d, abs=1e-6)
        assert cal.errors["tpot_ms"].mape_after_pct == pytest.approx(0.0, abs=1e-6)


def test_e2e_only_fit_shares_one_scale():
    table = _checked(_table().assign(e2e_s=1.0))
    modelled = model_measurements(table)
    modelled["e2e_s"] = 1.4 * modelled["e2e_model_s"] + modelled["output"] * 0.002
    pf, df, shared = fit_ctcf(modelled[modelled.gpu == "H100"])
    assert shared
    assert pf.alpha == pytest.approx(1.4) and df.alpha == pytest.approx(1.4)
    assert df.beta_ms == pytest.approx(2.0)


def test_fit_keeps_alpha_positive_beta_nonnegative():
    table = _checked(_table().assign(tpot_ms=1.0))
    modelled = model_measurements(table)
    modelled["tpot_ms"] = 0.5 * modelled["tpot_model_ms"] - 1.0  # negative intercept is clipped
    modelled["tpot_ms"] = modelled["tpot_ms"].clip(lower=0.1)
    _, df, _ = fit_ctcf(modelled)
    assert df.alpha > 0 and df.beta_ms >= 0


def test_nearest_measured_gpu_by_spec():
    assert nearest_measured_gpu("H200", ["A100", "H100", "T4"]) == "H100"
    assert nearest_measured_gpu("L4", ["A10G", "H100"]) == "A10G"


def test_profile_lookup_fallback_and_shipped_profiles():
    prof = shipped_profile("vllm")
    assert prof.gpus["H100"].rows > 0, "the shipped vllm profile has measured GPUs"
    cal, source = prof.lookup("L40S")  # no vllm L40S rows: the pooled value, and the profile says so
    assert cal.rows == 0 and cal.pooled == ["decode", "prefill"] and "pooled" in source
    partial = CalibrationProfile(name="p", gpus={"H100": prof.gpus["H100"]})
    assert "nearest measured GPU" in partial.lookup("H200")[1]
    assert CalibrationProfile(name="x").lookup("T4")[1].endswith("uncalibrated roofline)")
    for engine in ("tgi", "trtllm", "flexgen", "generic"):
        assert shipped_profile(engine).rows_used


def test_bad_tables_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="missing required"):
        calibrate(pd.DataFrame({"gpu": ["H100"], "ttft_ms": [1.0]}))
    with pytest.raises(InputError, match="measured column"):
        calibrate(_table())
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [1, 2\n")
    with pytest.raises(InputError):
        load_profile(bad)


def _checked(table):
    from solver.performance.calibration import check_measurements

    return check_measurements(table)


def test_shipped_fits_are_physical_and_the_old_extrapolations_are_gone():
    """Issue 12: tgi A100 decode alpha 8.77 (4 rows) and trtllm H100 prefill 4.01 / 74.5 ms (serving TTFT) are gone."""
    from solver.performance.calibration import ALPHA_MIN

    tgi_a100 = shipped_profile("tgi").gpus["A100"].decode
    trt_h100 = shipped_profile("trtllm").gpus["H100"].prefill
    assert tgi_a100.alpha < 1.5
    assert trt_h100.alpha < 1.5 and trt_h100.beta_ms < 10.0
    for engine in ("vllm", "tgi", "trtllm", "flexgen", "generic"):
        prof = shipped_profile(engine)
        assert prof.fit["method"].startswith("hierarchical")
        for gpu, cal in prof.gpus.items():
            assert cal.prefill.alpha >= ALPHA_MIN and cal.decode.alpha >= ALPHA_MIN, (engine, gpu)
            assert cal.achieved_bw_fraction is not None and cal.achieved_bw_fraction <= 1.0
            assert cal.achieved_flops_fraction is not None and cal.achieved_flops_fraction <= 1.0
            assert cal.source, (engine, gpu)
            if cal.rows:  # every measured GPU records its rows and in-sample error
                assert cal.datasets and cal.errors


def test_hierarchical_fit_recovers_a_well_measured_gpu_and_pools_a_thin_one(monkeypatch):
    from solver.performance import calibration
    from solver.performance.calibration import fit_hierarchical, hierarchical_profiles

    table = _checked(_table().assign(tpot_ms=1.0, dataset="synthetic", file="synthetic.csv"))
    modelled = model_measurements(table)
    thin = modelled[(modelled.gpu == "A10G")].head(2)
    rows = pd.concat([modelled[modelled.gpu == "H100"], thin], ignore_index=True)
    rows["tpot_ms"] = 1.3 * rows["tpot_model_ms"]
    shrunk = fit_hierarchical(rows)["alpha"][("vllm", "H100", "decode")]
    assert 1.0 < shrunk < 1.3  # pulled from the data (1.3) toward the pooled prior (1.0, the raw roofline)
    monkeypatch.setattr(calibration, "PRIOR_ROWS", 1e-6)
    fit = fit_hierarchical(rows)
    assert fit["alpha"][("vllm", "H100", "decode")] == pytest.approx(1.3, rel=1e-3)  # a weak prior: the data
    assert fit["beta_ms"][("vllm", "decode")] == pytest.approx(0.0, abs=1e-3)
    assert ("vllm", "A10G", "decode") not in fit["alpha"]  # 2 rows: not separated, pooled
    assert "decode" in fit["pooled"][("vllm", "A10G")]
    monkeypatch.undo()
    prof = hierarchical_profiles(rows)["vllm"]
    assert "decode" in prof.gpus["A10G"].pooled and "pooled" in prof.gpus["A10G"].source
    assert prof.gpus["H100"].pooled == ["prefill"]  # no TTFT rows: prefill pooled, decode fitted
    assert set(prof.gpus) >= {"T4", "L4", "B200"}  # every GPU of gpus.csv gets an entry


def test_validate_scores_serving_rows_as_predict_prints_them():
    """`infersave validate` scores a serving row (continuous batching) with the TTFT/TPOT `infersave predict` gives.

    The fit holds the raw model's prefill stretch fixed (linear equations); the scoring composes the serving model
    from the calibrated phase times, as predict does, and the two differ on these rows.
    """
    import numpy as np

    from solver.performance.accuracy import shipped_measurements
    from solver.performance.calibration import calibrated
    from solver.performance.model import predict

    rows = shipped_measurements()
    rows = rows[rows["file"] == "aiconfigurator.csv"].groupby(["engine", "gpu"]).head(3).reset_index(drop=True)
    modelled = model_measurements(rows)
    linear_gap = []
    for engine, part in modelled.groupby("engine"):
        prof = shipped_profile(str(engine))
        composed = calibrated(part, prof, composed=True)
        linear = calibrated(part, prof)
        for i, row in part.iterrows():
            p = predict(
                str(row["model"]),
                gpu=str(row["gpu"]),
                gpus=int(row["tp"]),
                tp=int(row["tp"]),
                input_tokens=int(row["input"]),
                output_tokens=int(row["output"]),
                dtype=str(row["dtype"]),
                kv_dtype=str(row["kv_dtype"]),
                engine=str(engine),
                profile=prof,
                batching="continuous",
                concurrency=int(row["batch"]),
                arrivals=str(row["arrivals"]),  # each row is one InferenceX benchmark run: "burst"
            )
            assert composed.loc[i, "tpot_cal_ms"] == pytest.approx(p.tpot_ms, rel=1e-6)
            assert composed.loc[i, "ttft_cal_ms"] == pytest.approx(p.ttft_ms, rel=1e-6)
            linear_gap.append(abs(linear.loc[i, "tpot_cal_ms"] / p.tpot_ms - 1.0))
    assert np.max(linear_gap) > 0.01
