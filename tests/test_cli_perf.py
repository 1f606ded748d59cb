import json

import pandas as pd
import pytest
from cli_helpers import run as run_cli

from solver.apps.cli import main


def run(capsys, *args):
    return run_cli(list(args), capsys)


def run_ok(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


KEYS = {
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
    "output_tokens_per_s",
    "tps",
    "offload_fraction",
    "fits",
    "memory",
    "calibration",
}
MEMORY_KEYS = {
    "weights_gib",
    "kv_gib",
    "activations_gib",
    "total_gpu_gib",
    "available_gpu_gib",
    "offloaded_kv_gib",
    "host_available_gib",
}


def test_predict_json_contract(capsys):
    code, out, _ = run_ok(
        capsys,
        "predict",
        "--model",
        "llama-3.1-8b",
        "--instance",
        "g5.xlarge",
        "--batch-size",
        "8",
        "--input-len",
        "512",
        "--output-len",
        "128",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    assert KEYS <= set(payload)
    assert MEMORY_KEYS <= set(payload["memory"])
    assert {"profile", "engine", "source"} <= set(payload["calibration"])
    assert payload["fits"] is True and payload["calibration"]["engine"] == "vllm"


def test_predict_bare_gpu_with_tp_and_offload(capsys):
    code, out, _ = run_ok(
        capsys,
        "predict",
        "--model",
        "llama-2-70b",
        "--gpu",
        "A100-80GB",
        "--gpus",
        "4",
        "--batch-size",
        "4",
        "--input-len",
        "256",
        "--output-len",
        "64",
        "--tp",
        "4",
        "--offload",
        "0.25",
        "--engine",
        "generic",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["offload_fraction"] == 0.25 and payload["memory"]["offloaded_kv_gib"] > 0


def test_predict_table_output(capsys):
    code, out, _ = run_ok(
        capsys,
        "predict",
        "--model",
        "opt-2.7b",
        "--gpu",
        "T4",
        "--batch-size",
        "2",
        "--input-len",
        "64",
        "--output-len",
        "16",
        "--dtype",
        "int8",
    )
    assert code == 0 and "tpot_ms" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--gpu", "A100x"], "did you mean"),
        (["--gpu", "T4", "--engine", "vlm"], "engine"),
        (["--instance", "g5.xlarge", "--offload", "1.5"], "--offload"),
        (["--instance", "g5.xlarge", "--gpu", "T4"], "exactly one"),
        (["--instance", "g5.xlarge", "--dtype", "fp4"], "dtype"),
    ],
)
def test_predict_bad_input_exit_2(capsys, args, needle):
    code, _, err = run(
        capsys,
        "predict",
        "--model",
        "llama-3.1-8b",
        "--batch-size",
        "1",
        "--input-len",
        "8",
        "--output-len",
        "8",
        *args,
    )
    assert code == 2 and needle in err and "Traceback" not in err


def test_calibrate_then_predict_with_profile(tmp_path, capsys):
    table = pd.DataFrame(
        [dict(gpu="A10G", model="llama-3.1-8b", batch=b, input=256, output=64, tpot_ms=30.0 + b) for b in (1, 4, 8, 16)]
    )
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    out_yaml = tmp_path / "p.yaml"
    code, out, _ = run_ok(capsys, "calibrate", str(csv), "--out", str(out_yaml))
    assert code == 0 and out_yaml.is_file() and "A10G" in out
    code, out, _ = run_ok(
        capsys,
        "predict",
        "--model",
        "llama-3.1-8b",
        "--instance",
        "g5.xlarge",
        "--batch-size",
        "4",
        "--input-len",
        "256",
        "--output-len",
        "64",
        "--profile",
        str(out_yaml),
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["calibration"]["profile"] == "m"
    assert payload["tpot_ms"] == pytest.approx(34.0, rel=0.15)


def test_calibrate_bad_csv_exit_2(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("gpu,model\nH100,llama-3.1-8b\n")
    code, _, err = run(capsys, "calibrate", str(csv), "--out", str(tmp_path / "p.yaml"))
    assert code == 2 and "missing required" in err


def test_validate_json(capsys):
    code, out, _ = run_ok(capsys, "validate", "--json")
    assert code == 0
    payload = json.loads(out)
    sources = {d["source"] for d in payload["by_source"]}
    assert {"argonne", "aiconfigurator", "tgi", "flexgen", "nvidia_dli"} <= sources
    assert "tpot_loso_mape_pct" in payload["summary"] and "throughput_loso_target_met" in payload["summary"]
    for d in payload["overall"]:
        assert d["in_sample_mape_pct"] >= 0 and d["loso_mape_pct"] >= 0 and d["logo_mape_pct"] >= 0
