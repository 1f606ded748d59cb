"""Serving rows that carry their benchmark's arrival pattern (``arrivals`` column; docs/accuracy.md, serving)."""

import pandas as pd
import pytest

from solver.data.models import get_model
from solver.data.resources import data_path
from solver.errors import InputError
from solver.performance.calibration import check_measurements, read_measurements
from solver.performance.ctcf import shipped_profile
from solver.performance.measurements import (
    ARRIVALS_COLUMN,
    measurement_hardware,
    model_measurements,
    serving_calibrated,
)
from solver.performance.model import predict_frame


def _rows(arrivals, batching="continuous"):
    base = {
        "gpu": "H100",
        "model": "llama-3.1-8b",
        "tp": 1,
        "dtype": "bf16",
        "engine": "vllm",
        "batching": batching,
        "batch": 32,
        "input": 1024,
        "output": 256,
        "ttft_ms": 100.0,
        "tpot_ms": 9.0,
    }
    frame = pd.DataFrame([base, base])
    if arrivals is not None:
        frame[ARRIVALS_COLUMN] = arrivals
    return check_measurements(frame)


def test_rows_are_modelled_with_their_benchmarks_arrivals():
    plain = model_measurements(_rows(None))
    marked = model_measurements(_rows(["burst", None]))
    assert ARRIVALS_COLUMN not in plain.columns and ARRIVALS_COLUMN in marked.columns
    assert marked["ttft_model_ms"].iloc[1] == pytest.approx(plain["ttft_model_ms"].iloc[1])  # empty = steady
    assert marked["ttft_model_ms"].iloc[0] > 1.5 * plain["ttft_model_ms"].iloc[0]  # the first wave's burst
    # validate scores the row as predict composes it with that pattern
    prof = shipped_profile("vllm")
    rows = _rows(["burst", "burst"])
    cal = serving_calibrated(rows, prof)
    want = predict_frame(
        measurement_hardware(rows.iloc[:1]),
        get_model("llama-3.1-8b"),
        input_tokens=1024,
        output_tokens=256,
        dtype="bf16",
        engine="vllm",
        profile=prof,
        batching="continuous",
        arrivals="burst",
    )
    assert cal["ttft_cal_ms"].iloc[0] == pytest.approx(float(want["ttft_ms"].iloc[0]))
    assert cal["tpot_cal_ms"].iloc[0] == pytest.approx(float(want["tpot_ms"].iloc[0]))


def test_bad_arrivals_are_one_line_errors():
    with pytest.raises(InputError, match=r"arrivals.*steady, cohort, burst.*'poisson'"):
        model_measurements(_rows(["poisson", "steady"]))
    with pytest.raises(InputError, match=r"arrivals.*continuous"):
        model_measurements(_rows(["burst", "burst"], batching="static"))


def test_shipped_aiconfigurator_rows_are_one_inferencex_benchmark_run_each():
    rows = read_measurements(data_path("measurements", "aiconfigurator.csv"))
    assert (rows[ARRIVALS_COLUMN] == "burst").all()
    for name in ("argonne.csv", "nvidia_dli.csv", "tgi.csv", "flexgen.csv"):
        assert ARRIVALS_COLUMN not in read_measurements(data_path("measurements", name)).columns
