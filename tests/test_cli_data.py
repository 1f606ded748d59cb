"""The data commands of the CLI: catalog, models, schema; exit codes and JSON on stdout."""

import json
import subprocess
import sys

import pytest
from cli_helpers import run


def test_catalog_json_lists_aws_gpu_types(capsys):
    code, out, _ = run(["catalog", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    items = data["instance_types"]
    assert len(items) >= 40
    for it in items:
        assert it["gpu"] and it["gpu_count"] > 0 and it["gpu_memory_mib"] > 0
        assert it["prices"]
    with_spot = [it for it in items if it["spot_usd_per_hour_min"] is not None]
    assert len(with_spot) >= 40
    g5 = next(it for it in items if it["instance_type"] == "g5.xlarge")
    us = next(p for p in g5["prices"] if p["region"] == "us-east-1")
    assert us["on_demand_usd_per_hour"] == pytest.approx(1.006)


def test_catalog_filters_and_table(capsys):
    code, out, _ = run(["catalog", "--gpu", "L4", "--region", "us-east-1"], capsys)
    assert code == 0
    assert "g6.xlarge" in out and "g5.xlarge" not in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["catalog", "--gpu", "A10"], "did you mean 'A10G'"),
        (["catalog", "--region", "us-est-1"], "did you mean"),
        (["catalog", "--catalog", "/no/such.csv"], "no catalog file"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    code, out, err = run(args, capsys)
    assert code == 2
    assert out == ""
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_models_json(capsys):
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0
    names = {m["name"]: m for m in json.loads(out)["models"]}
    assert names["llama-2-70b"]["num_params"] > 60e9


def test_schema(capsys):
    code, out, _ = run(["schema"], capsys)
    assert code == 0
    assert json.loads(out)["title"] == "Scenario"


def test_console_script_runs():
    proc = subprocess.run(
        [sys.executable, "-c", "from solver.apps.cli import main; main(['models', '--json'])"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
