"""A sweep on a dask.distributed LocalCluster gives the same CSV as the process executor; columns are stable."""

from __future__ import annotations

import pandas as pd
import pytest

from solver.apps.sweep import SUMMARY_COLUMNS, WORKLOAD_COLUMNS, sweep
from solver.data.scenario import parse_scenario
from solver.errors import InputError
from solver.specs import SolveOptions

distributed = pytest.importorskip("distributed", reason="the [dask] extra is not installed")

BASE = """
catalog: aws
regions: [us-east-1]
instances: [g5.xlarge, g6.xlarge, g6e.xlarge]
workloads:
  - name: chat
    model: llama-3.1-8b
    input_tokens: 512
    output_tokens: 128
    rate_rps: 4
    slo: {tpot_ms: 100}
  - name: rag
    model: llama-2-7b
    input_tokens: 2048
    output_tokens: 128
    rate_rps: 1
    slo: {ttft_ms: 2000}
"""
# two models, so that no replica is shared: the per-workload columns of a workload served only by a shared (pooled)
# row are empty (with one model both workloads now pool on one g6e.xlarge)
GRID = {"workloads.0.slo.tpot_ms": [5, 60, 100], "workloads.1.rate_rps": [1, 3]}  # tpot 5 ms: infeasible
TIMING = ["solve_seconds"]


def _csv(tmp_path, name, **kwargs) -> pd.DataFrame:
    out = tmp_path / name
    sweep(parse_scenario(BASE), GRID, SolveOptions(backend="ortools"), out_csv=out, **kwargs)
    return pd.read_csv(out, keep_default_na=False, dtype=str)


def test_dask_local_cluster_gives_the_process_executors_csv(tmp_path):
    processes = _csv(tmp_path, "processes.csv", processes=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        dask = _csv(tmp_path, "dask.csv", executor="dask", scheduler=c.scheduler_address)
    assert list(dask.columns) == list(processes.columns)
    pd.testing.assert_frame_equal(dask.drop(columns=TIMING), processes.drop(columns=TIMING))
    assert set(processes["status"]) == {"optimal", "infeasible"}


def test_columns_are_stable_and_per_workload(tmp_path):
    frame = _csv(tmp_path, "p.csv", processes=1)
    per_workload = [f"{w}.{c}" for w in ("chat", "rag") for c in WORKLOAD_COLUMNS]
    assert list(frame.columns) == ["point", *GRID, *SUMMARY_COLUMNS, *per_workload]
    solved = frame[frame["status"] == "optimal"]
    failed = frame[frame["status"] == "infeasible"]
    assert not failed.empty and (failed["chat.max_tpot_ms"] == "").all()
    # per-workload latencies are each workload's own, bounded by its own SLO
    assert (solved["chat.max_tpot_ms"].astype(float) <= solved["workloads.0.slo.tpot_ms"].astype(float)).all()
    assert (solved["rag.max_ttft_ms"].astype(float) <= 2000).all()
    total = solved["chat.usd_per_hour"].astype(float) + solved["rag.usd_per_hour"].astype(float)
    assert total.to_numpy() == pytest.approx(solved["cost_usd_per_hour"].astype(float).to_numpy())


def test_bad_executor_and_scheduler_are_input_errors():
    sc = parse_scenario(BASE)
    with pytest.raises(InputError, match="executor"):
        sweep(sc, GRID, executor="ray")
    with pytest.raises(InputError, match="scheduler"):
        sweep(sc, GRID, scheduler="tcp://localhost:1")
