"""``infersave check SCENARIO PLAN.json``: a saved plan re-checked with the exact evaluator (exit 0, 5 or 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver.apps.cli import CHECK_FAILED_EXIT, main

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = str(ROOT / "instances" / "scenarios" / "default.yaml")


class Result:
    """Exit code and captured streams of one CLI run."""

    def __init__(self, code, out, err):
        self.exit_code, self.stdout, self.stderr = code or 0, out, err
        self.output = out + err


def _run(args, capsys) -> Result:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return Result(exc.value.code, captured.out, captured.err)


@pytest.fixture
def saved(capsys) -> dict:
    result = _run(["plan", "--json", DEFAULT], capsys)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def check(tmp_path, capsys):
    def run(payload, scenario=DEFAULT):
        path = tmp_path / "plan.json"
        path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
        return _run(["check", scenario, str(path)], capsys)

    return run


def test_a_fresh_plan_passes(check, saved):
    result = check(saved)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok:")


def test_a_hand_edited_plan_that_breaks_rows_exits_5_listing_them(check, saved):
    edited = json.loads(json.dumps(saved))
    for row in edited["fleet"]:
        row["count"] = max(1, row["count"] - 1) if row["count"] > 1 else row["count"]
        if row["kind"] == "online":
            row["count"] = 1
    online = [i for i, row in enumerate(edited["fleet"]) if row["kind"] == "online"]
    if len(online) > 1 and all(edited["fleet"][i]["count"] == 1 for i in online):  # already one of each: drop one
        del edited["fleet"][online[-1]]
    edited["fleet"][0]["batch_size"] = 4096  # a configuration the scenario's memory cannot hold
    result = check(edited)
    assert result.exit_code == CHECK_FAILED_EXIT == 5
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("broken:")]
    assert len(lines) >= 2 and any("demand" in ln for ln in lines)
    assert "Traceback" not in result.output


def test_an_empty_fleet_breaks_every_demand(check, saved):
    result = check({**saved, "fleet": []})
    assert result.exit_code == 5
    assert result.stderr.count("broken:") == 2  # chat and digest


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"fleet": 3}', "fleet: must be a list"),
        ('{"fleet": [{"workload": "chat"}]}', "fleet.0.batch_size: is missing"),
    ],
)
def test_bad_plan_files_exit_2_with_one_line(check, payload, field):
    result = check(payload)
    assert result.exit_code == 2
    assert field in result.output and "Traceback" not in result.output


def test_wrong_types_and_unknown_workloads_exit_2(check, saved):
    bad = json.loads(json.dumps(saved))
    bad["fleet"][0]["count"] = True  # a boolean is not a count
    result = check(bad)
    assert result.exit_code == 2 and "fleet.0.count: must be an integer" in result.output
    bad = json.loads(json.dumps(saved))
    bad["fleet"][0]["workload"] = "nope"
    result = check(bad)
    assert result.exit_code == 2 and "'nope' is not a workload" in result.output


def test_missing_files_exit_2(tmp_path, capsys):
    result = _run(["check", DEFAULT, str(tmp_path / "absent.json")], capsys)
    assert result.exit_code == 2 and "cannot read" in result.output
