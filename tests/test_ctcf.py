"""CTCF in one place: one identity profile, one function that applies a profile, used by every caller."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solver.performance import ctcf
from solver.performance.calibration import calibrate
from solver.performance.ctcf import ENGINES, IDENTITY, CalibrationProfile, GPUCalibration, PhaseFit, apply_ctcf
from solver.performance.model import predict
from solver.performance.validation_report import run as validate

SOLVER = Path(__file__).resolve().parents[1] / "solver"


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of ``name`` (bare or as an attribute) in the solver package."""
    found = []
    for path in sorted(SOLVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == name:
                    found.append((path, node))
    return found


def test_identity_profile_is_the_only_profile_built_without_gpus():
    """A CalibrationProfile built in the package either carries fitted GPUs or is IDENTITY's definition."""
    calls = _calls("CalibrationProfile")
    without_gpus = [(p, c) for p, c in calls if not any(k.arg == "gpus" for k in c.keywords)]
    assert [(p.name, c.lineno) for p, c in without_gpus] == [("ctcf.py", without_gpus[0][1].lineno)]
    assert IDENTITY.gpus == {}


def test_only_ctcf_reads_the_coefficients_to_compute():
    """Only ctcf.py reads ``.alpha``/``.beta_ms`` (cli.py prints them for ``infersave calibrate``)."""
    readers = set()
    for path in sorted(SOLVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("alpha", "beta_ms"):
                readers.add(path.relative_to(SOLVER).as_posix())
    assert "performance/ctcf.py" in readers
    assert readers - {"performance/ctcf.py", "apps/cli.py"} == set()


def test_applying_the_identity_is_the_identity():
    rng = np.random.default_rng(7)
    ttft = rng.uniform(0.01, 5e4, 200)
    tpot = rng.uniform(0.01, 500.0, 200)
    gpus = rng.choice(["H100", "A10G", "T4", "L4"], 200)
    out_ttft, out_tpot = apply_ctcf(IDENTITY, gpus, ttft, tpot)
    assert np.array_equal(out_ttft, ttft) and np.array_equal(out_tpot, tpot)


def test_apply_uses_each_rows_gpu_and_the_nearest_measured_fallback():
    prof = CalibrationProfile(
        name="t",
        gpus={
            "H100": GPUCalibration(prefill=PhaseFit(alpha=2.0, beta_ms=1.0), decode=PhaseFit(alpha=3.0, beta_ms=0.5)),
            "T4": GPUCalibration(prefill=PhaseFit(alpha=0.5), decode=PhaseFit(beta_ms=4.0)),
        },
    )
    ttft, tpot = apply_ctcf(prof, ["H100", "T4", "H200"], [10.0, 10.0, 10.0], [1.0, 1.0, 1.0])
    # H200 is unmeasured: its nearest measured GPU by spec is H100
    assert ttft.tolist() == [21.0, 5.0, 21.0]
    assert tpot.tolist() == [3.5, 5.0, 3.5]


def test_an_engine_without_a_shipped_file_gets_the_identity(monkeypatch, tmp_path):
    monkeypatch.setattr(ctcf, "data_path", lambda *parts: tmp_path.joinpath(*parts))
    prof = ctcf.shipped_profile.__wrapped__("tgi")
    assert prof.gpus == {} and prof.engine == "tgi"
    assert prof.model_copy(update={"name": IDENTITY.name, "engine": IDENTITY.engine}) == IDENTITY


@pytest.fixture
def spy(monkeypatch):
    """Replace apply_ctcf by a wrapper that records each profile and adds 1000 ms to every calibrated TTFT."""
    seen: list[str] = []
    real = ctcf.apply_ctcf

    def wrapper(profile, gpus, ttft_model_ms, tpot_model_ms, num_layers=0.0, running=0.0):
        seen.append(profile.name)
        ttft, tpot = real(profile, gpus, ttft_model_ms, tpot_model_ms, num_layers, running)
        return ttft + 1000.0, tpot

    monkeypatch.setattr(ctcf, "apply_ctcf", wrapper)
    return seen


@pytest.mark.parametrize("engine", ENGINES)
def test_predict_applies_every_shipped_profile_through_the_one_function(spy, monkeypatch, engine):
    kwargs = dict(
        instance="g5.xlarge", batch_size=4, input_tokens=512, output_tokens=64, engine=engine, batching="static"
    )  # static: CTCF is then the whole map from modelled to calibrated TTFT
    patched = predict("llama-3.1-8b", **kwargs)
    assert spy == [ctcf.shipped_profile(engine).name]
    monkeypatch.undo()
    plain = predict("llama-3.1-8b", **kwargs)
    assert patched.ttft_ms == pytest.approx(plain.ttft_ms + 1000.0, rel=1e-12)
    assert patched.tpot_ms == plain.tpot_ms


def test_validate_and_calibrate_apply_profiles_through_the_one_function(spy):
    report = validate()
    assert IDENTITY.name in spy  # "before"
    assert {"vllm", "trtllm", "tgi", "generic"} <= set(spy)  # the fitted profiles (in sample, LOSO, LOGO)
    assert set(report["split"]) == {"before", "in_sample", "loso", "logo"}
    spy.clear()
    table = pd.DataFrame(
        [dict(gpu="H100", model="llama-3.1-8b", batch=b, input=512, output=64, tpot_ms=10.0 + b) for b in (1, 8, 32)]
    )
    calibrate(table, name="spy")
    assert spy == [IDENTITY.name, "spy"]  # the raw model of the rows, then the fit's in-sample errors
