"""The discrete-event simulator: same step times as the planner, arrivals, admission, routing, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from solver.data.models import get_model
from solver.errors import InputError
from solver.performance.latency import ModelCosts, hardware, mean_decode_step_s
from solver.performance.model import predict_frame
from solver.simulation import arrivals as arr
from solver.simulation.loop import run
from solver.simulation.replica import replica_config
from solver.simulation.results import request_frame, statistic

MODEL = get_model("llama-3.1-8b")
L40S = {"gpu": "L40S", "gpu_count": 1.0, "gpu_memory_mib": 45776.0, "host_memory_gib": 32.0}


def _cfg(batch: int = 32, s: int = 512, n: int = 256, **kw: object) -> object:
    return replica_config(MODEL, tp=1, batch_size=batch, input_tokens=s, output_tokens=n, **L40S, **kw)  # type: ignore[arg-type]


def _frame(batch: int, s: int, n: int, batching: str) -> pd.Series:
    frame = pd.DataFrame([{**L40S, "tp": 1, "batch_size": batch, "offload_fraction": np.nan}])
    return predict_frame(frame, MODEL, input_tokens=s, output_tokens=n, batching=batching).iloc[0]


@pytest.mark.parametrize(("b", "s", "k"), [(1, 100, 1), (8, 512, 37), (32, 3000, 255), (5, 20000, 1000)])
def test_decode_run_is_the_planners_mean_step(b: int, s: int, k: int) -> None:
    cfg = _cfg(batch=32)
    costs = ModelCosts.of(MODEL, "bf16", "bf16")
    hw = hardware(np.array([362.0]), np.array([864.0]), np.array([31.5]), np.array([31.5]), np.array([1.0]))
    from solver.data.gpus import get_gpu

    g = get_gpu("L40S")
    hw = hardware(
        np.array([g.tensor_tflops("bf16")]),
        np.array([g.memory_bandwidth_gb_per_s]),
        np.array([g.host_link_gb_per_s]),
        np.array([g.gpu_link_gb_per_s]),
        np.array([1.0]),
    )
    model_s = mean_decode_step_s(
        costs,
        hw,
        tp=np.array([1.0]),
        batch=np.array([float(b)]),
        input_tokens=float(s),
        output_tokens=float(k),
        offload_fraction=np.array([0.0]),
        offload_mode="copy",
    )[0]
    expected = k * (cfg.alpha_decode * model_s + cfg.beta_decode_s + b * cfg.beta_per_sequence_s)
    assert cfg.decode_s(b, float(b * (s + 1)), k) == pytest.approx(expected, rel=1e-12)


def test_prefill_and_decode_match_predict_frame_static_batch() -> None:
    """A static batch's simulated times are the planner's TTFT and e2e (same functions, same CTCF)."""
    s, n, b = 512, 128, 16
    row = _frame(b, s, n, "static")
    cfg = _cfg(batch=b, s=s, n=n, static=True)
    source = arr.Arrivals(np.zeros(b), np.full(b, s), np.full(b, n))
    raw = run([cfg], source, duration_s=1.0)
    assert raw.first_token_s[0] == pytest.approx(row["ttft_ms"] / 1e3, rel=1e-9)
    assert raw.finish_s.max() == pytest.approx(row["e2e_s"], rel=1e-9)


def test_closed_loop_concurrency_one_is_alone_on_the_replica() -> None:
    s, n = 512, 64
    cfg = _cfg(batch=8, s=s, n=n)
    raw = run([cfg], arr.ClosedLoop(1, s, n), duration_s=30.0)
    reqs = request_frame(raw, 0.0, 30.0)
    row = _frame(1, s, n, "static")
    assert len(reqs) > 5
    assert np.allclose(reqs["ttft_ms"], row["ttft_ms"], rtol=1e-9)
    assert np.allclose(reqs["tpot_ms"], cfg.decode_s(1, float(s + 1), n - 1) / (n - 1) * 1e3, rtol=1e-9)
    assert (reqs["queue_ms"] == 0).all()


def test_closed_loop_with_a_request_list_sends_it_in_order_and_stops() -> None:
    """``benchmark_serving``: N clients send the listed requests one by one and stop when the list is used up."""
    cfg = _cfg(batch=8, s=512, n=256)
    loop = arr.benchmark_serving(4, 512, 256, seed=3)
    ins, outs = loop.lengths
    assert ins.size == outs.size == 10 * 4
    assert ins.min() >= int(0.8 * 512) and ins.max() <= 512 and outs.min() >= int(0.8 * 256) and outs.max() <= 256
    assert np.unique(outs).size > 10  # lengths vary, so the first wave's cohort breaks up
    raw = run([cfg], loop, duration_s=1e6)
    assert np.array_equal(raw.input_tokens, ins) and np.array_equal(raw.output_tokens, outs)
    assert np.isfinite(raw.finish_s).all()
    assert (raw.arrival_s[:4] == 0.0).all() and (raw.arrival_s[4:] > 0.0).all()  # four clients start at once
    assert np.array_equal(arr.benchmark_serving(4, 512, 256, seed=3).lengths[1], outs)  # same seed, same run


def test_same_seed_same_result_other_seed_differs() -> None:
    cfg = _cfg()
    a1 = run([cfg] * 3, arr.poisson(6.0, 120.0, 512, 256, seed=3), duration_s=120.0)
    a2 = run([cfg] * 3, arr.poisson(6.0, 120.0, 512, 256, seed=3), duration_s=120.0)
    b = run([cfg] * 3, arr.poisson(6.0, 120.0, 512, 256, seed=4), duration_s=120.0)
    assert np.array_equal(a1.finish_s, a2.finish_s)
    assert a1.finish_s.size != b.finish_s.size or not np.array_equal(a1.finish_s, b.finish_s)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_arrivals_have_the_rate_and_cv(cv: float) -> None:
    a = arr.gamma(20.0, cv, 5000.0, 10, 10, seed=1)
    gaps = np.diff(a.times_s)
    assert len(a) / 5000.0 == pytest.approx(20.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.08)
    assert np.all(np.diff(a.times_s) >= 0) and a.times_s[-1] < 5000.0


def test_kv_capacity_limits_concurrency() -> None:
    """Requests whose contexts do not fit together wait: at most floor(capacity / context) run at once."""
    cfg = _cfg(batch=64)
    s, n = 20_000, 1_000
    per = s + n
    fits = int(cfg.kv_capacity_tokens // per)
    assert 1 <= fits < 64
    raw = run([cfg], arr.Arrivals(np.zeros(40), np.full(40, s), np.full(40, n)), duration_s=1.0, drain_s=1e5)
    events = sorted([(t, 1) for t in raw.admit_s] + [(t, -1) for t in raw.finish_s], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == fits


def test_overload_shows_up_in_the_percentiles() -> None:
    cfg = _cfg(batch=16)
    light = request_frame(run([cfg], arr.poisson(0.5, 600.0, 512, 256, 1), duration_s=600.0), 60.0, 600.0)
    heavy = request_frame(run([cfg], arr.poisson(5.0, 600.0, 512, 256, 1), duration_s=600.0), 60.0, 600.0)
    p99 = {k: statistic(f["ttft_ms"].to_numpy(), "p99") for k, f in (("light", light), ("heavy", heavy))}
    assert p99["heavy"] > 10 * p99["light"]
    assert statistic(heavy["queue_ms"].to_numpy(), "mean") > 1000.0


def test_jsq_beats_round_robin_on_unequal_replicas() -> None:
    small, big = _cfg(batch=8), _cfg(batch=64)
    source = arr.poisson(2.0, 600.0, 512, 256, seed=2)
    p99 = {}
    for routing in ("jsq", "round_robin"):
        raw = run([small, big], source, duration_s=600.0, routing=routing)
        p99[routing] = request_frame(raw, 60.0, 600.0)["ttft_ms"].quantile(0.99)
    assert p99["jsq"] < p99["round_robin"]


def test_chunked_prefill_interleaves_decode_steps_with_prompt_chunks() -> None:
    """A 20,000-token prompt takes three 8,192-token passes, and two prompts share passes."""
    s, n = 20_000, 64
    cfg = _cfg(batch=8, s=s, n=n)
    assert cfg.max_prefill_tokens == 8192
    alone = request_frame(run([cfg], arr.ClosedLoop(1, s, n), duration_s=60.0, chunked_prefill=True), 0.0, 60.0)
    three = cfg.prefill_s(1, 8192) * 2 + cfg.prefill_s(1, s - 2 * 8192)
    assert alone["ttft_ms"].iloc[0] == pytest.approx(three * 1e3, rel=1e-9)
    plain = request_frame(run([cfg], arr.ClosedLoop(2, s, n), duration_s=60.0), 10.0, 60.0)
    chunked = request_frame(run([cfg], arr.ClosedLoop(2, s, n), duration_s=60.0, chunked_prefill=True), 10.0, 60.0)
    # without chunks the second prompt waits for the whole first one; with them their passes share the budget
    assert chunked["ttft_ms"].max() < plain["ttft_ms"].max()
    assert np.isfinite(chunked["e2e_s"]).all()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "empty file"),
        ("arrival_s,input_tokens,output_tokens\n", "no requests"),
        ("arrival_s,input_tokens,output_tokens\n-1,10,10\n", "row 1, column arrival_s"),
        ("arrival_s,input_tokens,output_tokens\n2,10,10\n1,10,10\n", "row 2, column arrival_s"),
        ("arrival_s,input_tokens,output_tokens\n0,10.5,10\n", "row 1, column input_tokens"),
        ("arrival_s,input_tokens,output_tokens\n0,10,10\n1,10,x\n", "row 2, column output_tokens"),
        ("arrival_s,input_tokens,output_tokens\nnan,10,10\n", "row 1, column arrival_s"),
        ("time,in,out\n0,1,1\n", "header"),
    ],
)
def test_bad_trace_names_row_and_column(tmp_path: object, text: str, where: str) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "t.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=where):
        arr.read_trace(path)


def test_trace_reads_back() -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.csv"
        p.write_text("arrival_s,input_tokens,output_tokens\n0,10,5\n0.5,20,1\n0.5,30,2\n")
        a = arr.read_trace(p)
    assert a.times_s.tolist() == [0.0, 0.5, 0.5]
    assert a.input_tokens.tolist() == [10, 20, 30]
    raw = run([_cfg()], a, duration_s=1.0)
    assert np.all(np.isfinite(raw.finish_s))


def test_public_simulate_gives_frames_over_time() -> None:
    import solver
    from solver.data.scenario import load_scenario

    scenario = load_scenario("instances/scenarios/llama70b_tp.yaml")
    result = solver.simulate(scenario, duration_s=120.0, seed=1)
    ts = result.timeseries_frame()
    assert {"t_s", "busy", "occupancy", "queue_length", "in_system"} <= set(ts.columns)
    assert (ts["queue_length"] >= 0).all() and (ts["in_system"] >= ts["queue_length"]).all()
    assert ts["busy"].between(0.0, 1.0 + 1e-9).all() and ts["occupancy"].between(0.0, 1.0).all()
    summary = result.summary_frame()
    assert set(summary["metric"]) == {"ttft_ms", "tpot_ms", "e2e_s", "queue_ms"}
    assert (summary["p50"] <= summary["p99"]).all()
    (w,) = result.workloads
    slo = scenario.workloads[0].slo
    ok = (w.requests["ttft_ms"] <= slo.ttft_ms) & (w.requests["tpot_ms"] <= slo.tpot_ms)
    assert w.goodput == pytest.approx(float(ok.mean()))
