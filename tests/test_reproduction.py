"""The paper reproduction: regenerating docs/reproduction.md works, and its numbers are recommend's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from solver.apps.cli import main
from solver.apps.recommend import POLICIES, recommend, task_of
from solver.apps.reproduction import (
    OFFLINE_CLAIM_PCT,
    ONLINE_CLAIM_PCT,
    claim_verdict,
    claims,
    closest_price_pair,
    cost_definitions,
    paper_scenarios,
    render_report,
    reproduce,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenarios():
    return paper_scenarios()


@pytest.fixture(scope="module")
def frame(scenarios):
    return reproduce(scenarios)


@pytest.fixture(scope="module")
def report(frame, scenarios):
    return render_report(frame, scenarios)


def test_the_experiment_has_four_settings_at_two_price_sets(scenarios):
    keys = {(s.setting, s.tps_slo, s.prices) for s in scenarios}
    assert {(k[0], k[1]) for k in keys} == {("online", 400), ("online", 600), ("offline", 100), ("offline", 200)}
    assert {k[2] for k in keys} == {"paper", "aws us-east-1"}
    assert len(scenarios) == 8


def test_every_number_is_recommends_output(frame, scenarios):
    assert len(frame) == len(scenarios) * len(POLICIES)
    for ps in scenarios:
        for policy in POLICIES:
            best = recommend(ps.scenario, policy, top_k=1).best
            row = frame[(frame["scenario"] == ps.name) & (frame["policy"] == policy)].iloc[0]
            assert row["instance_type"] == best.instance_type
            for col in ("offload_fraction", "predicted_tps", "usd_per_hour", "task_cost_usd", "cost_efficiency"):
                assert row[col] == pytest.approx(getattr(best, col)), (ps.name, policy, col)
        mp = frame[(frame["scenario"] == ps.name) & (frame["policy"] == "max-performance")].iloc[0]
        inf = frame[(frame["scenario"] == ps.name) & (frame["policy"] == "infersave")].iloc[0]
        assert inf["saving_vs_max_performance"] == pytest.approx(1 - inf["task_cost_usd"] / mp["task_cost_usd"])


def test_report_shows_the_rows_and_the_claims(frame, report):
    for r in frame.to_dict("records"):
        cells = (
            f"| {r['policy']} | {r['instance_type']} | {100 * r['offload_fraction']:.1f}% | {r['predicted_tps']:,.0f} |"
        )
        assert cells in report
    c = claims(frame)
    assert f"up to {ONLINE_CLAIM_PCT}%" in report and f"up to {OFFLINE_CLAIM_PCT}%" in report
    assert f"| {100 * c['online_saving']:+.1f}% (" in report
    assert f"| {100 * c['offline_offload_saving']:+.1f}% (" in report
    assert "### Why" in report and "verdict (paper prices)" in report
    # the memory budget sentence is the code's, not hand-written
    from solver.performance.memory import engine_memory

    eng = engine_memory("flexgen")
    assert f"{eng.utilisation:g} x usable GPU memory - {eng.fixed_reserve_gib:g} GiB per GPU" in report
    assert "0.8 of GPU" not in report


def test_claims_are_recomputed_from_the_choices(frame):
    c = claims(frame)
    online = frame[(frame["setting"] == "online") & (frame["policy"] == "infersave")]
    assert c["online_saving"] == pytest.approx(online["saving_vs_max_performance"].max())
    offline = frame[(frame["setting"] == "offline") & (frame["policy"] == "infersave")]
    if (offline["offload_fraction"] > 0).any():
        assert c["offline_offload_saving"] == pytest.approx(offline["saving_vs_no_offload"].max())


def test_task_cost_is_billed_run_time(frame, scenarios):
    tokens = {ps.name: task_of(ps.scenario).task_tokens for ps in scenarios}
    for r in frame.to_dict("records"):
        hours = tokens[r["scenario"]] / (r["predicted_tps"] * 3600)
        assert r["task_hours"] == pytest.approx(hours)
        assert r["billed_hours"] == math.ceil(hours - 1e-9)
        assert r["task_cost_usd"] == pytest.approx(r["billed_hours"] * r["usd_per_hour"])
        assert r["cost_efficiency"] == pytest.approx(min(r["predicted_tps"], r["tps_slo"]) / r["task_cost_usd"])
    assert any("predicted_tps · 3600" in line for line in cost_definitions())


def test_claim_verdict():
    assert claim_verdict(73.69, 73.7, 0.05).startswith("agree")
    assert claim_verdict(39.16, 20.19, 0.005) == "differ by +19.0 points"
    assert claim_verdict(float("nan"), 20.19, 0.005).startswith("not reproduced")


def test_closest_price_pair():
    prices = {"a": 1.0, "b": 2.0, "c": 4.0}
    assert closest_price_pair(prices, 0.5)[:2] in {("a", "b"), ("b", "c")}
    assert closest_price_pair(prices, 0.74) == ("a", "c", 0.75)


def test_write_report_and_check(tmp_path, capsys, report):
    out = tmp_path / "reproduction.md"
    path, text = write_report(out)
    assert path == out and out.read_text() == text == report
    out.write_text(text.replace("g4dn.xlarge", "g9.xlarge"))
    with pytest.raises(SystemExit) as exc:
        main(["reproduce-paper", "--out", str(out), "--check"])
    assert exc.value.code == 1
    capsys.readouterr()


def test_committed_report_is_current(report):
    committed = ROOT / "docs" / "reproduction.md"
    assert committed.read_text(encoding="utf-8") == report, (
        "docs/reproduction.md is stale: run `infersave reproduce-paper --out docs/reproduction.md`"
    )
