"""``infersave simulate``: attainment of a plan, reproducible by seed, and one-line errors for bad traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import run

SCENARIO = "instances/scenarios/llama70b_tp.yaml"
HEADER = "arrival_s,input_tokens,output_tokens\n"


def test_simulate_reports_every_slo(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["simulate", SCENARIO, "--duration", "120", "--json"], capsys)
    assert code in (0, None)
    payload = json.loads(out)
    (w,) = payload["workloads"]
    assert {a["slo"] for a in w["attainment"]} == {"ttft_ms", "tpot_ms"}
    for a in w["attainment"]:
        assert a["met"] == (a["simulated"] <= a["limit"])
        assert a["p50"] <= a["p99"]
    assert 0.0 <= w["goodput"] <= 1.0


def test_simulate_with_a_saved_plan_and_seed_is_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["plan", SCENARIO, "--json"], capsys)
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    runs = []
    for seed in ("3", "3", "4"):
        code, out, _ = run(
            ["simulate", SCENARIO, "--plan", str(plan), "--duration", "60", "--seed", seed, "--json"], capsys
        )
        assert code in (0, None)
        runs.append(json.loads(out)["workloads"][0]["stats"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_simulate_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["simulate", SCENARIO, "--duration", "60"], capsys)
    assert code in (0, None)
    assert "ttft_ms" in out and "p99" in out and "requests simulated" in out


def test_trace_replaces_the_arrivals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "".join(f"{i * 0.5},{200 + i},{50}\n" for i in range(100)))
    code, out, _ = run(["simulate", SCENARIO, "--trace", str(trace), "--json"], capsys)
    assert code in (0, None)
    payload = json.loads(out)
    assert payload["duration_s"] == pytest.approx(49.5, rel=1e-6)
    assert payload["workloads"][0]["requests"] == 90  # the first tenth is warm-up


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("", "empty file"),
        (HEADER + "0,10,10\n-0.5,10,10\n", "row 2, column arrival_s"),
        (HEADER + "1,10,10\n0.5,10,10\n", "row 2, column arrival_s"),
        (HEADER + "0,10,2.5\n", "row 1, column output_tokens"),
        (HEADER + "0,ten,10\n", "row 1, column input_tokens"),
    ],
)
def test_bad_trace_is_exit_2_naming_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, where: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(body)
    code, out, err = run(["simulate", SCENARIO, "--trace", str(trace)], capsys)
    assert code == 2
    assert where in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_bad_duration_and_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", SCENARIO, "--duration", "-5"], capsys)
    assert code == 2 and "--duration" in err
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    code, _, err = run(["simulate", SCENARIO, "--plan", str(bad)], capsys)
    assert code == 2 and "not valid JSON" in err


def test_a_saved_plan_with_shared_replicas_reads_back_and_every_class_is_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = "instances/scenarios/chat_distribution.yaml"
    code, out, _ = run(["plan", scenario, "--no-verify", "--json"], capsys)
    payload = json.loads(out)
    assert any(r["pool"] >= 0 for r in payload["fleet"])
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    code, out, _ = run(["simulate", scenario, "--plan", str(plan), "--duration", "120", "--json"], capsys)
    assert code in (0, None)
    names = {w["workload"] for w in json.loads(out)["workloads"]}
    routed = {name for r in payload["fleet"] for name, rate in r["split"] if rate > 0}
    assert names == routed  # each class with traffic, the buckets of chat and the pooled api among them
    bad = dict(payload)
    bad["fleet"] = [{**payload["fleet"][-1], "split": [["nope", 1.0]]}]
    plan.write_text(json.dumps(bad))
    code, _, err = run(["simulate", scenario, "--plan", str(plan)], capsys)
    assert code == 2 and "fleet.0.split.0" in err and "nope" in err
