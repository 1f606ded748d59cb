"""Helpers shared by the CLI and planner tests: run the CLI in-process; the fields of a plan row."""

from __future__ import annotations

import pytest

from solver.apps.cli import main

PLAN_FIELDS = [
    "workload",
    "instance_type",
    "market",
    "region",
    "count",
    "tp",
    "batch_size",
    "offload_fraction",
    "usd_per_hour",
    "ttft_ms",
    "tpot_ms",
    "tps",
    "utilisation",
]
"""Fields every fleet row of a plan's JSON has (the README documents them)."""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str, str]:
    """Run ``infersave ARGS``; return (exit code, stdout, stderr). The command must exit (``main`` always does)."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err
