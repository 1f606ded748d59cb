"""The human plan table: fits 80, 100 and 120 columns without cutting a cell; shows replicas, demand and headroom."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from solver.apps.render import money, natural_key, number, percent, plan_table, plan_totals, print_plan, row_account
from solver.data.scenario import load_scenario, parse_scenario
from solver.planning.planner import plan
from solver.specs import SolveOptions


@pytest.fixture(scope="module")
def default_plan():
    scenario = load_scenario()
    return scenario, plan(scenario, SolveOptions(backend="ortools"))


def render(width: int, *args, **kwargs) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_plan(console, *args, **kwargs)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 100, 120])
def test_default_plan_fits_the_width_and_cuts_no_cell(default_plan, width):
    scenario, result = default_plan
    text = render(width, result, scenario)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text and "..." not in text
    words = text.split()
    # every identifier is whole: no instance type, region or market folded across lines
    for row in result.fleet:
        for word in (row.instance_type, row.region, row.workload):
            assert word in words, (word, width)
    assert "replica" in words and "instance" in words  # "1 replica per instance", wrapped at 80
    assert "spare" in text  # headroom to the SLOs
    # the chat row carries 20 rps in total; each of its rows shows its share "of" its capacity
    chat = [r for r in result.fleet if r.workload == "chat"]
    shares = [row_account(r, scenario.workloads[0]) for r in chat]
    assert sum(a.demand for a in shares) == pytest.approx(20.0)
    for a in shares:
        assert number(a.demand) in text and number(a.capacity) in text
    assert {"day,", "30", "instance-hours"} <= set(words)


def test_headroom_matches_the_slos(default_plan):
    scenario, result = default_plan
    chat = next(r for r in result.fleet if r.workload == "chat")
    acc = row_account(chat, scenario.workloads[0])
    value, limit, spare = acc.headroom["tpot_ms"]
    assert limit == 100 and value == pytest.approx(chat.tpot_ms) and spare == pytest.approx(1 - chat.tpot_ms / 100)
    digest = next(r for r in result.fleet if r.workload == "digest")
    acc = row_account(digest, scenario.workloads[1])
    assert acc.demand == pytest.approx(100_000, rel=1e-6)  # the offline row does all the job's requests
    assert acc.capacity >= acc.demand
    assert acc.headroom["deadline_h"][1] == 6


def test_totals_explain_the_horizon_total(default_plan):
    _, result = default_plan
    lines = plan_totals(result)
    total_line = next(line for line in lines if line.startswith("total"))
    assert money(result.total_cost_usd) in total_line
    digest = next(r for r in result.fleet if r.workload == "digest")
    assert number(digest.instance_hours) in total_line and "instance-hours" in total_line
    per_h = result.cost_usd_per_hour
    assert money(24 * per_h) in lines[0] and money(720 * per_h) in lines[0]
    online = sum(r.cost_usd for r in result.fleet if r.kind == "online")
    assert math.isclose(online + digest.cost_usd, result.total_cost_usd, rel_tol=1e-9)


def test_wide_shows_every_field(default_plan):
    scenario, result = default_plan
    text = render(80, result, scenario, wide=True)
    for name in ("replicas", "capacity_rps", "instance_hours", "output_tokens_per_s", "cost_usd", "e2e_s"):
        assert name in text
    assert "…" not in text


def test_user_text_is_not_markup():
    scenario = parse_scenario(
        """
workloads:
  - {name: "[bold red]x[/]", model: llama-3.1-8b, input_tokens: 128, output_tokens: 64, rate_rps: 1}
regions: [us-east-1]
instances: [g5.xlarge]
"""
    )
    result = plan(scenario, SolveOptions(backend="ortools"))
    text = render(120, result, scenario)
    assert "[bold red]x[/]" in text
    assert "[bold red]x[/]" in str(plan_table(result, scenario).columns[0]._cells[0])


def test_number_formats_and_natural_sort():
    assert number(20670.4) == "20,670" and number(14240.0) == "14,240" and number(78.41) == "78.4"
    assert number(1.8337) == "1.83" and number(0.04212) == "0.0421" and number(float("nan")) == "-"
    assert "e+" not in number(1.424e4)
    assert money(52.3187) == "$52.32" and money(1.861) == "$1.861" and money(7423.92, "h") == "$7,423.92/h"
    assert percent(0.7866) == "79%" and percent(0.0512) == "5.1%"
    types = ["g5.12xlarge", "g5.2xlarge", "g5.xlarge", "g5.48xlarge", "g6e.xlarge"]
    assert sorted(types, key=natural_key) == ["g5.2xlarge", "g5.12xlarge", "g5.48xlarge", "g5.xlarge", "g6e.xlarge"]
