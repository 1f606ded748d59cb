"""CLI conventions: --version, shell completion, --json always prints one JSON document, recommend --json is full."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run
from test_cli_robustness import _Stub

from solver import __version__, backends
from solver.data.resources import data_path


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"infersave {__version__}"


def test_shell_completion_is_on(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "--install-completion" in out and "--show-completion" in out


@pytest.mark.parametrize(
    ("args", "code", "status"),
    [
        (["plan", "--json", "--time-limit", "-1"], 2, "error"),  # bad input
        (["plan", "--json", "--bogus"], 2, "error"),  # usage error found by the parser
        (["plan", "--json", str(data_path("scenarios", "unreachable_ttft.yaml"))], 3, "infeasible"),
        (["plan", "--json", "--backend", "stub"], 4, "no_solution"),  # time limit without a plan
        (["models", "--json", "--config", "/no/such/config.json"], 2, "error"),
        (["catalog", "--json", "--gpu", "A10"], 2, "error"),
    ],
)
def test_json_always_prints_one_document(monkeypatch, capsys, args, code, status):
    monkeypatch.setitem(backends.BACKENDS, "stub", _Stub("no_solution", with_x=False))
    got, out, err = run(args, capsys)
    assert got == code, err
    data = json.loads(out)  # one JSON document, nothing else, on stdout
    assert data["status"] == status
    if code != 3:  # exit 3 prints the plan's own JSON with the diagnosis
        assert data["exit_code"] == code and data["error"]["message"]
        assert err.strip()  # the human message is still on stderr


def test_json_error_names_the_flag(capsys):
    _, out, _ = run(["plan", "--json", "--gap", "2"], capsys)
    assert json.loads(out)["error"]["field"] == "--gap"


def test_no_json_no_stdout_on_error(capsys):
    code, out, _ = run(["plan", "--time-limit", "-1"], capsys)
    assert code == 2 and out == ""


def test_recommend_json_carries_every_field_the_table_shows(capsys):
    args = [
        *("recommend", "--model", "opt-2.7b", "--batch-size", "32", "--input-len", "128", "--output-len", "512"),
        *("--tps-slo", "1500", "--region", "us-east-1", "--engine", "flexgen", "--top-k", "1"),
        *("--instances", "g4dn.xlarge,g5.xlarge,g6e.xlarge,p3.2xlarge"),
    ]
    code, text, _ = run(args, capsys)
    assert code == 0
    code, out, _ = run([*args, "--json"], capsys)
    data = json.loads(out)
    (choice,) = data["choices"]
    for key in ("region", "market", "task_cost_usd", "task_hours", "billed_hours", "gpu", "rank"):
        assert key in choice
    assert choice["region"] == "us-east-1" and choice["market"] in text
    assert {"policy", "model", "batch_size", "tps_slo", "requests", "billing", "tradeoffs"} <= set(data)
    # top_k 1 was reached, and instances below the SLO are still listed as rejected, as the text lists them
    rejected_in_text = [
        line.split()[1].rstrip(":") for line in text.splitlines() if line.strip().startswith("rejected")
    ]
    assert data["rejected"] and sorted(r["instance_type"] for r in data["rejected"]) == sorted(rejected_in_text)


def test_progress_is_on_stderr_only_and_off_when_quiet_or_not_a_terminal():
    import io
    import time

    from rich.console import Console

    from solver.apps.progress import SweepProgress, enabled, solving

    tty = Console(file=io.StringIO(), force_terminal=True, width=100)
    pipe = Console(file=io.StringIO(), force_terminal=False, width=100)
    assert enabled(tty, quiet=False) and not enabled(tty, quiet=True) and not enabled(pipe, quiet=False)
    with solving(tty, "planning 2 workload(s)", show=True, after_s=0.0):
        time.sleep(0.3)
    assert "planning 2 workload(s)" in tty.file.getvalue()
    quiet = Console(file=io.StringIO(), force_terminal=True, width=100)
    with solving(quiet, "planning", show=False, after_s=0.0):
        time.sleep(0.1)
    assert quiet.file.getvalue() == ""
    bar_out = Console(file=io.StringIO(), force_terminal=True, width=120)
    with SweepProgress(bar_out, 3, show=True) as bar:
        bar.point({"status": "optimal", "cost_usd_per_hour": 12.5})
        bar.point({"status": "infeasible", "cost_usd_per_hour": None})
        bar.done(2, 3)
        bar.bar.refresh()
    shown = bar_out.file.getvalue()
    assert "2/3" in shown and "cheapest $12.50/h" in shown and "last infeasible" in shown


def test_plan_quiet_flag_and_json_stdout_stays_clean(capsys):
    code, out, err = run(["plan", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "optimal" and err == ""
