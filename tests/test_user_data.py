"""Your data, visible: your own GPUs (--gpus-file, gpus:), a catalog that contradicts its GPU, predict --catalog,
how a config.json was read (models --config), and what --model accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run

from solver.data import gpus as gpus_mod
from solver.data.config_report import read_config_report
from solver.data.resources import data_path
from solver.data.scenario import load_scenario, parse_scenario
from solver.planning.evaluate import evaluate
from solver.planning.planner import plan
from solver.specs import SolveOptions

ONPREM = Path(data_path("examples", "onprem"))
CATALOG_HEAD = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone"


@pytest.fixture(autouse=True)
def _forget_user_gpus(monkeypatch):
    """Each test starts with the shipped GPUs only (user GPUs are process-wide by design)."""
    monkeypatch.setattr(gpus_mod, "_USER", {})
    gpus_mod._alias_index.cache_clear()
    yield
    gpus_mod._alias_index.cache_clear()


def test_a100_with_80_gib_names_the_right_gpu(tmp_path, capsys):
    cat = tmp_path / "onprem.csv"
    cat.write_text(f"{CATALOG_HEAD},GpuMemoryGiB\nbox.a100,A100,8,96,1152,20,,dc1,dc1-a,80\n")
    code, _, err = run(["catalog", "--catalog", str(cat)], capsys)
    assert code == 2 and "A100-80GB" in err and "40 GB of A100" in err and len(err.strip().splitlines()) == 1
    cat.write_text(f"{CATALOG_HEAD},GpuMemoryGiB\nbox.a100,A100-80GB,8,96,1152,20,,dc1,dc1-a,80\n")
    code, out, _ = run(["catalog", "--catalog", str(cat)], capsys)
    assert code == 0 and "box.a100" in out


def test_gpus_file_adds_a_gpu_for_catalog_and_predict(capsys):
    args = ["--gpus-file", str(ONPREM / "gpus.csv")]
    code, _, err = run(["catalog", "--catalog", str(ONPREM / "catalog.csv")], capsys)
    assert code == 2 and "RTX-A6000" in err and "--gpus-file" in err
    predict = [
        *("predict", "--model", "llama-3.1-8b", "--batch-size", "8", "--input-len", "512", "--output-len", "128"),
        *("--instance", "onprem.2xa6000", "--catalog", str(ONPREM / "catalog.csv"), "--json"),
    ]
    code, out, err = run([*args, *predict], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["gpu"] == "RTX-A6000" and data["gpu_count"] == 2 and data["tpot_ms"] > 0


def test_gpus_file_overrides_a_shipped_gpu(tmp_path, capsys):
    shipped = (data_path("gpus.csv")).read_text().splitlines()
    head, a10g = shipped[0], next(line for line in shipped if line.startswith("A10G,"))
    slow = a10g.replace(",24,600,", ",24,300,")  # half the memory bandwidth
    assert slow != a10g
    (tmp_path / "g.csv").write_text(f"{head}\n{slow}\n")
    predict = [
        *("predict", "--model", "llama-3.1-8b", "--batch-size", "1", "--input-len", "128", "--output-len", "128"),
        *("--instance", "g5.xlarge", "--json"),
    ]
    _, out, _ = run(predict, capsys)
    _, slower, _ = run(["--gpus-file", str(tmp_path / "g.csv"), *predict], capsys)
    assert json.loads(slower)["tpot_ms"] > 1.5 * json.loads(out)["tpot_ms"]  # decode is bandwidth-bound


def test_bad_gpus_file_names_row_and_column(tmp_path, capsys):
    head = (data_path("gpus.csv")).read_text().splitlines()[0]
    (tmp_path / "g.csv").write_text(f"{head}\nX1,,48,-5,100,,,,PCIe,31.5,pcie,31.5,,,\n")
    code, _, err = run(["--gpus-file", str(tmp_path / "g.csv"), "catalog"], capsys)
    assert code == 2 and "row 2" in err and "memory_bandwidth_gb_per_s" in err


def test_scenario_gpus_plan_on_your_own_gpu_and_model():
    scenario = load_scenario(ONPREM / "scenario.yaml")
    assert [g.name for g in scenario.gpus] == ["RTX-A6000"]
    result = plan(scenario, SolveOptions(backend="ortools"))
    assert {r.gpu for r in result.fleet} == {"RTX-A6000"}
    assert evaluate(result, scenario).ok


def test_scenario_gpus_inline_list():
    text = (ONPREM / "gpus.csv").read_text().splitlines()
    assert text[1].startswith("RTX-A6000")
    scenario = parse_scenario(
        f"""
catalog: {ONPREM / "catalog.csv"}
gpus:
  - {{gpu: MY-GPU, aliases: RTX-A6000, memory_gb: 48, memory_bandwidth_gb_per_s: 768, fp16_tflops: 154.8,
      host_link: PCIe Gen4 x16, host_link_gb_per_s: 31.5, gpu_link: pcie, gpu_link_gb_per_s: 31.5}}
workloads:
  - {{name: a, model: llama-3.1-8b, input_tokens: 256, output_tokens: 64, rate_rps: 1}}
"""
    )
    assert scenario.gpus[0].name == "MY-GPU"
    assert {r.gpu for r in plan(scenario, SolveOptions(backend="ortools")).fleet} == {"MY-GPU"}


def test_models_config_lists_assumptions_and_compares_parameter_counts(tmp_path, capsys):
    config = json.loads((ONPREM / "gemma-2-9b" / "config.json").read_text())
    report = read_config_report(ONPREM / "gemma-2-9b")
    assert report.model.tie_word_embeddings  # Gemma2Config ties by default and the file omits the key
    assert any("tie_word_embeddings not in the file" in a for a in report.assumptions)
    assert any("no torch_dtype" in a for a in report.assumptions)
    assert report.config_params is None
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32", "sliding_window": 4096}))
    total = 4 * 9_241_705_984  # bytes of a float32 checkpoint of 9.24 B parameters
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}}))
    code, out, err = run(["models", "--config", str(folder), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["config_params"] == total // 4
    assert abs(data["params_relative_difference"]) < 1e-3
    assert any("torch_dtype float32 is served as" in a for a in data["assumptions"])
    assert any("sliding_window 4096 is not modelled" in a for a in data["assumptions"])
    code, text, _ = run(["models", "--config", str(folder)], capsys)
    assert code == 0 and "parameters (checkpoint)" in text and "assumption" in text


def test_model_option_help_matches_what_is_accepted(capsys):
    base = ["predict", "--batch-size", "1", "--input-len", "8", "--output-len", "8", "--instance", "g5.xlarge"]
    code, _, _ = run([*base, "--model", "meta-llama/Llama-3.1-8B"], capsys)  # a shipped model's HF id
    assert code == 0
    code, _, err = run([*base, "--model", "google/gemma-2-9b"], capsys)  # an HF id we do not ship
    assert code == 2 and "nothing is downloaded" in err and "config.json" in err
    code, _, _ = run([*base, "--model", str(ONPREM / "gemma-2-9b")], capsys)  # a folder holding a config.json
    assert code == 0
    _, helptext, _ = run(["predict", "--help"], capsys)
    assert "Hugging Face id" in helptext and "config.json" in helptext
