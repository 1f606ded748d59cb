"""`infersave plan`: default scenario, JSON fields, exit codes for bad input and infeasibility."""

import json

import pytest
from cli_helpers import PLAN_FIELDS, run

FIELDS = PLAN_FIELDS


def test_plan_default_prints_a_fleet_table(capsys):
    code, out, _ = run(["plan"], capsys)
    assert code in (0, None)
    assert "fleet plan" in out and "chat" in out and "digest" in out and "cost $" in out


@pytest.mark.parametrize("backend", ["ortools", "cbc"])
def test_plan_json_fields(capsys, backend):
    code, out, _ = run(["plan", "--json", "--backend", backend, "--time-limit", "30", "--gap", "1e-6"], capsys)
    assert code in (0, None)
    data = json.loads(out)
    for key in ("status", "cost_usd_per_hour", "total_cost_usd", "gap", "backend", "solve_seconds", "fleet"):
        assert key in data
    assert data["status"] == "optimal" and data["backend"] == backend
    assert data["fleet"] and all(list(r)[: len(FIELDS)] == FIELDS for r in data["fleet"])
    assert data["cost_usd_per_hour"] == pytest.approx(sum(r["usd_per_hour"] * r["count"] for r in data["fleet"]))


def test_plan_bad_backend_exits_2(capsys):
    code, _, err = run(["plan", "--backend", "gurobii"], capsys)
    assert code == 2 and "ortools" in err


def test_plan_missing_file_exits_2(capsys, tmp_path):
    code, _, err = run(["plan", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "scenario" in err


def test_plan_infeasible_exits_3_and_names_the_blocker(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "regions: [us-east-1]\ninstances: [g4dn.xlarge]\nworkloads:\n"
        "  - {name: chat, model: llama-3.1-8b, input_tokens: 512, output_tokens: 128, rate_rps: 1,"
        " slo: {tpot_ms: 1}}\n"
    )
    code, _, err = run(["plan", str(path)], capsys)
    assert code == 3
    assert "chat" in err and ("memory" in err or "slo" in err)


def test_plan_budget_infeasible_exits_3(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "regions: [us-east-1]\nlimits: {budget_usd_per_hour: 1}\nworkloads:\n"
        "  - {name: chat, model: llama-3.1-8b, input_tokens: 512, output_tokens: 128, rate_rps: 500}\n"
    )
    code, _, err = run(["plan", str(path)], capsys)
    assert code == 3 and "budget_usd_per_hour" in err


@pytest.mark.parametrize("name", ["default", "mixed_spot", "llama70b_tp", "offline_batch"])
def test_example_scenarios_solve(capsys, name):
    from solver.data.resources import data_path

    code, out, _ = run(["plan", "--json", str(data_path("scenarios", f"{name}.yaml"))], capsys)
    assert code in (0, None)
    assert json.loads(out)["status"] == "optimal"


WL = "  - {name: a, model: llama-3.1-8b, input_tokens: 512, output_tokens: 128, rate_rps: 1}\n"


def test_plan_unknown_model_in_second_workload_exits_2_naming_it(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "regions: [us-east-1]\nworkloads:\n" + WL + "  - {name: b, model: llama-3.1-8bb, input_tokens: 512,"
        " output_tokens: 128, rate_rps: 1}\n"
    )
    code, _, err = run(["plan", str(path)], capsys)
    assert code == 2 and "workloads.1.model" in err and "Traceback" not in err


def test_plan_context_overflow_exits_2(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "regions: [us-east-1]\nworkloads:\n" + WL + "  - {name: b, model: llama-3.1-8b, input_tokens: 200000,"
        " output_tokens: 128, rate_rps: 1}\n"
    )
    code, _, err = run(["plan", str(path)], capsys)
    assert code == 2 and "workloads.1.input_tokens" in err


def test_plan_tp_degrees_that_fit_nothing_exit_3_naming_the_field(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "regions: [us-east-1]\ninstances: [g5.xlarge, g6.xlarge]\nsearch: {tp_degrees: [4]}\nworkloads:\n" + WL
    )
    code, _, err = run(["plan", str(path)], capsys)
    assert code == 3 and "search.tp_degrees" in err
