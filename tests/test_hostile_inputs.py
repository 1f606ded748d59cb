"""Hostile inputs (issue 11): every one gives a one-line error and exit 2, or is printed literally; no user file lost.

Each test is a regression test of one finding: a traceback, an exit 1 without a message, a silently accepted
nonsense input, a lost file, or an unbounded resource. They go through the CLI where the finding did.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import yaml
from cli_helpers import run

import solver
from solver.apps.cli import main
from solver.data.resources import data_path

ROOT = Path(__file__).resolve().parents[1]
TINY = {  # one online workload on one instance type: solves in well under a second
    "catalog": "aws",
    "regions": ["us-east-1"],
    "instances": ["g5.xlarge"],
    "search": {"batch_sizes": [1, 8]},
    "workloads": [{"name": "chat", "model": "llama-3.1-8b", "input_tokens": 512, "output_tokens": 64, "rate_rps": 1}],
}
LLAMA_CFG = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
}
PREDICT = ["predict", "--batch-size", "1", "--input-len", "128", "--output-len", "16", "--instance", "g5.xlarge"]


def one_line_exit_2(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def write_yaml(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def write_config(tmp_path, **changes):
    cfg = {**LLAMA_CFG, **changes}
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder / "config.json")


def catalog_csv(tmp_path, rows):
    """A SkyPilot-schema CSV of g5.xlarge in us-east-1, one row per dict of changes."""
    shipped = pd.read_csv(data_path("catalogs", "aws.csv"), dtype=str, keep_default_na=False)
    base = shipped[(shipped.InstanceType == "g5.xlarge") & (shipped.Region == "us-east-1")].iloc[0].to_dict()
    path = tmp_path / "cat.csv"
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path, index=False)
    return str(path)


def measurements(tmp_path, rows, name="m.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def good_rows():
    return [
        dict(gpu="A10G", model="llama-3.1-8b", batch=b, input=256, output=64, tpot_ms=30.0 + b) for b in (1, 4, 8, 16)
    ]


# ---- tracebacks: rich markup in user text ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["evil[/x]model", "[bold]loud[/bold]"])
def test_markup_in_a_model_name_is_printed_literally(tmp_path, capsys, name):
    cfg = write_config(tmp_path, _name_or_path=name)
    code, out, err = run([*PREDICT, "--model", cfg], capsys)
    assert code == 0, err
    assert name.lower() in out


def test_markup_in_a_path_is_printed_literally(tmp_path, capsys):
    missing = tmp_path / "a[/x]b[bold].yaml"
    code, _, err = run(["plan", str(missing)], capsys)
    one_line_exit_2(code, err, "a[/x]b[bold].yaml")


@pytest.mark.parametrize(("field", "value"), [("InstanceType", "g5[/x].xlarge"), ("Region", "us-[bold]east")])
def test_markup_in_catalog_names_is_printed_literally(tmp_path, capsys, field, value):
    cat = catalog_csv(tmp_path, [{field: value}])
    code, out, err = run(["catalog", "--catalog", cat], capsys)
    assert code == 0, err
    assert value in out


def test_markup_in_a_gpu_name_is_printed_literally(capsys):
    code, _, err = run(["catalog", "--gpu", "[/x]gpu"], capsys)
    one_line_exit_2(code, err, "[/x]gpu")


# ---- tracebacks and silent nonsense: config.json -------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"num_attention_heads": 0}, "num_attention_heads): must be a positive integer"),
        ({"hidden_size": "4096"}, "hidden_size): must be a positive integer, got '4096'"),
        ({"hidden_size": True}, "hidden_size): must be a positive integer"),
        ({"num_attention_heads": 33}, "33 heads do not divide the hidden size 4096"),
        ({"num_key_value_heads": 0}, "num_key_value_heads): must be a positive integer"),
        ({"num_key_value_heads": 3}, "3 KV heads must divide the 32 attention heads"),
        ({"num_key_value_heads": 64}, "64 KV heads must divide the 32 attention heads"),
    ],
)
def test_bad_config_json_is_one_line_naming_the_field(tmp_path, capsys, changes, needle):
    code, _, err = run([*PREDICT, "--model", write_config(tmp_path, **changes)], capsys)
    one_line_exit_2(code, err, needle)


def test_explicit_head_dim_may_differ_from_hidden_over_heads(tmp_path, capsys):
    cfg = write_config(tmp_path, hidden_size=3072, num_attention_heads=16, num_key_value_heads=8, head_dim=256)
    code, _, err = run([*PREDICT, "--model", cfg], capsys)
    assert code == 0, err


# ---- YAML: deep nesting, duplicate keys -----------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["[" * 50_000, "{a: " * 50_000, "a:\n" + "".join(" " * i + "- \n" for i in range(3000))]
)
def test_deep_yaml_is_one_line(tmp_path, capsys, text):
    code, _, err = run(["plan", str(write_yaml(tmp_path, text))], capsys)
    one_line_exit_2(code, err, "nested deeper than")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("catalog: aws\ncatalog: aws\nworkloads: []\n", "line 2, column 1: duplicate key 'catalog'"),
        (yaml.safe_dump(TINY).replace("rate_rps: 1\n", "rate_rps: 1\n  rate_rps: 50\n"), "duplicate key 'rate_rps'"),
    ],
)
def test_duplicate_yaml_keys_are_rejected(tmp_path, capsys, text, needle):
    code, _, err = run(["plan", str(write_yaml(tmp_path, text))], capsys)
    one_line_exit_2(code, err, needle)


def test_duplicate_keys_in_a_profile_are_rejected(tmp_path, capsys):
    prof = tmp_path / "p.yaml"
    prof.write_text("name: x\nname: y\n")
    code, _, err = run([*PREDICT, "--model", "llama-3.1-8b", "--profile", str(prof)], capsys)
    one_line_exit_2(code, err, "duplicate key 'name'")


# ---- strict numbers and bounds ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("workloads.0.rate_rps", True, "workloads.0.rate_rps"),
        ("workloads.0.input_tokens", True, "workloads.0.input_tokens"),
        ("search.batch_sizes.0", True, "search.batch_sizes.0"),
        ("limits.budget_usd_per_hour", True, "limits.budget_usd_per_hour"),
        ("search.utilisation_cap", True, "search.utilisation_cap"),
        ("horizon_h", 1e308, "horizon_h"),
    ],
)
def test_booleans_and_absurd_numbers_are_rejected(tmp_path, capsys, path, value, field):
    from solver.apps.sweep import set_path

    code, _, err = run(["plan", str(write_yaml(tmp_path, set_path(TINY, path, value)))], capsys)
    one_line_exit_2(code, err, f"{field}:")


@pytest.mark.parametrize(
    ("phase", "key", "value"),
    [("prefill", "alpha", 1e-300), ("decode", "alpha", 1e300), ("decode", "beta_ms", 1e300)],
)
def test_profile_out_of_range_names_the_field(tmp_path, capsys, phase, key, value):
    prof = yaml.safe_load(data_path("calibration", "vllm.yaml").read_text())
    gpu = next(iter(prof["gpus"]))
    prof["gpus"][gpu][phase][key] = value
    path = write_yaml(tmp_path, prof, "p.yaml")
    code, _, err = run([*PREDICT, "--model", "llama-3.1-8b", "--profile", str(path)], capsys)
    one_line_exit_2(code, err, f"gpus.{gpu}.{phase}.{key}", "must be in")


def test_profile_alpha_tiny_in_a_scenario_exits_2(tmp_path, capsys):
    prof = yaml.safe_load(data_path("calibration", "vllm.yaml").read_text())
    prof["gpus"] = {"A10G": {"prefill": {"alpha": 1e-300}, "decode": {"alpha": 1e-300}}}
    write_yaml(tmp_path, prof, "p.yaml")
    code, _, err = run(["plan", str(write_yaml(tmp_path, {**TINY, "profile": "p.yaml"})), "--json"], capsys)
    one_line_exit_2(code, err, "prefill.alpha")


def test_threads_above_the_solver_limit_exit_2(capsys):
    code, _, err = run(["plan", "--threads", "65", "--backend", "ortools"], capsys)
    one_line_exit_2(code, err, "--threads", "64")


def test_predict_rejects_what_scenarios_reject(capsys):
    code, _, err = run(
        [*PREDICT[:3], "--input-len", "10000000", "--output-len", "16", "--model", "llama-3.1-8b"], capsys
    )
    one_line_exit_2(code, err, "--input-len", "context window")


# ---- catalogs -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"GpuMemoryMiBPerGpu": "40000"}, "gpu_memory_mib"),
        ({"AcceleratorCount": "2.0"}, "gpu_count"),
        ({"AcceleratorName": "L4"}, "gpu"),
    ],
)
def test_catalog_with_conflicting_rows_is_refused(tmp_path, capsys, change, column):
    cat = catalog_csv(tmp_path, [{}, {"AvailabilityZone": "use1-az9", **change}])
    code, _, err = run(["catalog", "--catalog", cat], capsys)
    one_line_exit_2(code, err, "instance type g5.xlarge", column)


# ---- calibrate ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"tp": 3}, "tp: must be one of 1, 2, 4"),
        ({"batch": 1.5}, "batch: must be an integer"),
        ({"batch": 1e12}, "batch: must be an integer in [1, 65,536]"),
        ({"tpot_ms": float("inf")}, "must be finite"),
    ],
)
def test_calibrate_refuses_invalid_rows(tmp_path, capsys, change, needle):
    rows = [{**r, **change} for r in good_rows()]
    code, _, err = run(["calibrate", str(measurements(tmp_path, rows)), "--out", str(tmp_path / "p.yaml")], capsys)
    one_line_exit_2(code, err, needle)
    assert not (tmp_path / "p.yaml").exists()


def test_calibrate_refuses_an_under_determined_fit(tmp_path, capsys):
    rows = [dict(gpu="A10G", model="llama-3.1-8b", batch=4, input=256, output=64, ttft_ms=80.0, tpot_ms=30.0)]
    code, _, err = run(["calibrate", str(measurements(tmp_path, rows)), "--out", str(tmp_path / "p.yaml")], capsys)
    one_line_exit_2(code, err, "gpu A10G", "2 independent equation(s) for 4 CTCF parameters")
    # the same setting measured twice separates nothing either
    rows = [{**rows[0], "tpot_ms": 30.0 + k, "ttft_ms": 80.0 + k} for k in range(3)]
    code, _, err = run(["calibrate", str(measurements(tmp_path, rows)), "--out", str(tmp_path / "p.yaml")], capsys)
    one_line_exit_2(code, err, "under-determined")


def test_calibrate_reports_the_fit_rank(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    code, text, err = run(["calibrate", str(measurements(tmp_path, good_rows())), "--out", str(out)], capsys)
    assert code == 0, err
    cal = yaml.safe_load(out.read_text())["gpus"]["A10G"]
    assert (cal["rows"], cal["rank"], cal["parameters"]) == (4, 2, 2)
    assert "2/2" in text


# ---- sweep -------------------------------------------------------------------------------------------------
def test_sweep_repeated_over_field_exits_2(tmp_path, capsys):
    sc = write_yaml(tmp_path, TINY)
    over = ["--over", "workloads.0.rate_rps=1", "--over", "workloads.0.rate_rps=2"]
    code, _, err = run(["sweep", str(sc), *over, "--out", str(tmp_path / "r.csv")], capsys)
    one_line_exit_2(code, err, "workloads.0.rate_rps", "given twice")
    assert not (tmp_path / "r.csv").exists()


def _alarm(seconds):
    def bail(*_):
        raise TimeoutError(f"took over {seconds} s")

    signal.signal(signal.SIGALRM, bail)
    signal.alarm(seconds)


def test_sweep_huge_grid_is_refused_before_work(tmp_path, capsys):
    sc = write_yaml(tmp_path, TINY)
    values = ",".join(str(v) for v in range(1, 1001))
    over = [a for p in ("workloads.0.rate_rps", "workloads.0.input_tokens", "workloads.0.output_tokens",
                        "search.utilisation_cap") for a in ("--over", f"{p}={values}")]  # fmt: skip
    _alarm(10)
    try:
        code, _, err = run(["sweep", str(sc), *over, "--out", str(tmp_path / "r.csv")], capsys)
    finally:
        signal.alarm(0)
    one_line_exit_2(code, err, "1,000,000,000,000 points", "--max-points")


def test_sweep_max_points_flag_sets_the_limit(tmp_path, capsys):
    sc = write_yaml(tmp_path, TINY)
    args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2,3", "--out", str(tmp_path / "r.csv")]
    code, _, err = run([*args, "--max-points", "2"], capsys)
    one_line_exit_2(code, err, "3 points", "limit of 2")


class _RecordingPool:
    """Stands in for ProcessPoolExecutor: records max_workers and runs jobs in this process."""

    seen: ClassVar[list[int]] = []

    def __init__(self, max_workers):
        _RecordingPool.seen.append(max_workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, jobs):
        return [fn(j) for j in jobs]

    def submit(self, fn, job):
        from concurrent.futures import Future

        fut = Future()
        fut.set_result(fn(job))
        return fut

    def shutdown(self, **_):
        pass


def test_sweep_processes_capped_by_points_and_cpus(tmp_path, capsys, monkeypatch):
    import solver.apps.sweep as sweep_mod

    _RecordingPool.seen = []
    monkeypatch.setattr(sweep_mod, "ProcessPoolExecutor", _RecordingPool)
    monkeypatch.setattr(sweep_mod.os, "cpu_count", lambda: 4)
    sc = write_yaml(tmp_path, TINY)
    args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2,3", "--out", str(tmp_path / "r.csv")]
    code, _, err = run([*args, "--processes", "10000", "--no-tie-break"], capsys)
    assert code == 0, err
    assert _RecordingPool.seen and max(_RecordingPool.seen) <= 3


# ---- never lose a user's file ---------------------------------------------------------------------------
def test_calibrate_never_replaces_its_measurements(tmp_path, capsys):
    csv = measurements(tmp_path, good_rows())
    before = csv.read_bytes()
    for extra in ([], ["--force"]):
        code, _, err = run(["calibrate", str(csv), "--out", str(csv), *extra], capsys)
        one_line_exit_2(code, err, "--out", "input")
        assert csv.read_bytes() == before


def test_calibrate_replaces_an_existing_profile_only_with_force(tmp_path, capsys):
    csv, out = measurements(tmp_path, good_rows()), tmp_path / "p.yaml"
    out.write_text("keep me\n")
    code, _, err = run(["calibrate", str(csv), "--out", str(out)], capsys)
    one_line_exit_2(code, err, "exists", "--force")
    assert out.read_text() == "keep me\n"
    code, _, err = run(["calibrate", str(csv), "--out", str(out), "--force"], capsys)
    assert code == 0, err
    assert "A10G" in yaml.safe_load(out.read_text())["gpus"]


def test_out_into_a_missing_folder_exits_2_before_work(tmp_path, capsys, monkeypatch):
    import solver.performance.calibration as cal

    monkeypatch.setattr(cal, "calibrate", lambda *a, **k: pytest.fail("fitted before checking --out"))
    csv = measurements(tmp_path, good_rows())
    code, _, err = run(["calibrate", str(csv), "--out", str(tmp_path / "no" / "p.yaml")], capsys)
    one_line_exit_2(code, err, "--out", "does not exist")


@pytest.mark.parametrize("flag", ["--out", "--plot"])
def test_sweep_never_replaces_its_scenario(tmp_path, capsys, flag):
    sc = write_yaml(tmp_path, TINY)
    before = sc.read_bytes()
    outs = {"--out": str(tmp_path / "r.csv"), "--plot": str(tmp_path / "r.png"), flag: str(sc)}
    for extra in ([], ["--force"]):
        args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2", "--out", outs["--out"]]
        code, _, err = run([*args, "--plot", outs["--plot"], *extra], capsys)
        one_line_exit_2(code, err, flag)
        assert sc.read_bytes() == before


def test_sweep_checks_out_before_solving(tmp_path, capsys, monkeypatch):
    import solver.apps.sweep as sweep_mod

    monkeypatch.setattr(sweep_mod, "_solve_point", lambda job: pytest.fail("solved before checking --out"))
    sc = write_yaml(tmp_path, TINY)
    existing = tmp_path / "r.csv"
    existing.write_text("precious\n")
    args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2", "--processes", "1"]
    code, _, err = run([*args, "--out", str(existing)], capsys)
    one_line_exit_2(code, err, "exists", "--force")
    assert existing.read_text() == "precious\n"
    code, _, err = run([*args, "--out", str(tmp_path / "missing" / "r.csv")], capsys)
    one_line_exit_2(code, err, "does not exist")


def test_stopped_sweep_keeps_its_rows_and_resume_continues(tmp_path, capsys, monkeypatch):
    import solver.apps.sweep as sweep_mod

    real, calls = sweep_mod._solve_point, []

    def stop_after_two(job):  # the sweep is killed while solving its third point
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(job[0])
        return real(job)

    monkeypatch.setattr(sweep_mod, "_solve_point", stop_after_two)
    sc, csv = write_yaml(tmp_path, TINY), tmp_path / "r.csv"
    args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2,3,4", "--out", str(csv), "--processes", "1"]
    with pytest.raises(RuntimeError, match="killed"):
        main([*args, "--no-tie-break"])
    kept = pd.read_csv(csv)
    assert list(kept["workloads.0.rate_rps"]) == [1, 2]
    calls.clear()
    monkeypatch.setattr(sweep_mod, "_solve_point", lambda job: calls.append(job[0]) or real(job))
    code, _, err = run([*args, "--no-tie-break", "--resume"], capsys)
    assert code == 0, err
    assert [c["workloads.0.rate_rps"] for c in calls] == [3, 4]
    done = pd.read_csv(csv)
    assert list(done["workloads.0.rate_rps"]) == [1, 2, 3, 4] and list(done["point"]) == [0, 1, 2, 3]
    assert set(done["status"]) == {"optimal"}


def test_resume_refuses_another_grids_csv(tmp_path, capsys):
    sc, csv = write_yaml(tmp_path, TINY), tmp_path / "r.csv"
    csv.write_text("a,b\n1,2\n")
    args = ["sweep", str(sc), "--over", "workloads.0.rate_rps=1,2", "--out", str(csv), "--resume"]
    code, _, err = run(args, capsys)
    one_line_exit_2(code, err, "--resume", "another sweep")
    assert csv.read_text() == "a,b\n1,2\n"


def test_reproduce_paper_never_replaces_another_file(tmp_path, capsys, monkeypatch):
    import solver.apps.reproduction as rep

    monkeypatch.setattr(rep, "reproduce", lambda *a, **k: pytest.fail("reproduced before checking --out"))
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    code, _, err = run(["reproduce-paper", "--out", str(notes)], capsys)
    one_line_exit_2(code, err, "exists", "--force")
    assert notes.read_text() == "my notes\n"


def test_reproduce_paper_may_replace_its_own_report(tmp_path):
    from solver.apps.reproduction import is_report

    assert is_report(ROOT / "docs" / "reproduction.md")
    other = tmp_path / "other.md"
    other.write_text("# notes\n")
    assert not is_report(other)


# ---- output to a full disk ---------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_json_to_a_full_disk_is_one_line(tmp_path):
    sc = write_yaml(tmp_path, TINY)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "solver.apps.cli", "plan", str(sc), "--json", "--no-tie-break"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(solver.__file__).resolve().parents[1],  # the solver under test, also when run from elsewhere
            timeout=120,
        )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "No space left on device" in proc.stderr
