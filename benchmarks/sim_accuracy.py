"""Simulator against NVIDIA NIM serving runs: closed-loop concurrency 1–250, mean and p95 TTFT and ITL.

Data: ``instances/measurements/serving/nim_serving.csv``, rows copied by ``--extract`` from
``../shared/data/nvidia_dli_trtllm_nim/nim.csv`` (genai-perf at fixed concurrency against NIM / TensorRT-LLM;
provenance in ``instances/measurements/PROVENANCE.md``): Llama-3 8B Instruct on one H100 or A100-SXM4-80GB,
and Llama-3 70B Instruct on four, fp16, every (input, output) length and concurrency measured.

Each row is simulated as its benchmark ran: ``c`` closed-loop users on one replica (:class:`ClosedLoop`),
engine ``trtllm`` (its memory budget and shipped CTCF profile), TP = the GPUs of the run, at most 256 concurrent
sequences (``max_batch``; NIM's own limit is not in the data, 256 is at least the largest concurrency, so
admission is bounded by KV capacity, as in TensorRT-LLM's in-flight batching), no KV offload (the engine keeps
the cache on the GPU and makes requests wait instead), no chunked prefill, 8,192
prefill tokens per pass. The horizon is 12 measured request latencies (warm-up: the first 2), so every user
completes about ten requests. ITL per request = (e2e − TTFT) / (output − 1), genai-perf's definition.

Reported, per GPU and model and concurrency band: the mean absolute relative error of the mean and p95 TTFT and
ITL; and per (GPU, model, lengths) series the *knee*, the first concurrency whose mean TTFT exceeds twice the
TTFT at concurrency 1, measured and simulated, and whether they are within one measured concurrency step.
"Below saturation" means concurrencies before the measured knee.

Writes between ``<!-- simulator:begin -->`` and ``<!-- simulator:end -->`` at the end of docs/accuracy.md.

Run:  python benchmarks/sim_accuracy.py [--extract] [--no-write]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.data.models import get_model  # noqa: E402
from solver.performance.hardware import instance_hardware  # noqa: E402
from solver.simulation.arrivals import ClosedLoop  # noqa: E402
from solver.simulation.loop import run  # noqa: E402
from solver.simulation.replica import replica_config  # noqa: E402
from solver.simulation.results import request_frame, statistic  # noqa: E402

SOURCE = Path("/work/shared/data") / "nvidia_dli_trtllm_nim" / "nim.csv"
TABLE = ROOT / "instances" / "measurements" / "serving" / "nim_serving.csv"
"""In a subfolder: the shipped static and continuous-batching tables in measurements/*.csv use another schema."""
GPUS = {"H100_80GB_HBM3": ("H100", "p5.48xlarge"), "A100-SXM4-80GB": ("A100-80GB", "p4de.24xlarge")}
MODELS = {("meta-llama3-8b-instruct", 1): "llama-3-8b", ("meta-llama3-70b-instruct", 4): "llama-3.1-70b"}
BANDS = ((1, 10), (25, 100), (150, 250))
KNEE_FACTOR = 2.0
MAX_BATCH = 256


def extract() -> pd.DataFrame:
    """Copy the rows used from the shared NIM table, with their source line numbers."""
    d = pd.read_csv(SOURCE)
    d["source_row"] = np.arange(len(d)) + 2
    keep = d["task_inputs-GPU"].isin(list(GPUS)) & (d["task_inputs-precision"] == "fp16")
    keep &= np.array(
        [(m, int(n)) in MODELS for m, n in zip(d["task_inputs-model"], d["task_inputs-n_gpus"], strict=True)]
    )
    d = d[keep]
    out = pd.DataFrame(
        {
            "dataset": "nim_serving",
            "source_row": d["source_row"],
            "gpu": [GPUS[g][0] for g in d["task_inputs-GPU"]],
            "model": [
                MODELS[(m, int(n))] for m, n in zip(d["task_inputs-model"], d["task_inputs-n_gpus"], strict=True)
            ],
            "tp": d["task_inputs-n_gpus"].astype(int),
            "dtype": "fp16",
            "engine": "trtllm",
            "concurrency": d["input_config-concurrency"].astype(int),
            "input": d["input_config-synthetic_input_tokens_mean"].astype(int),
            "output": d["input_config-output_tokens_mean"].astype(int),
            "ttft_ms_mean": d["time_to_first_token-avg"] / 1e6,
            "ttft_ms_p95": d["time_to_first_token-p95"] / 1e6,
            "itl_ms_mean": d["inter_token_latency-avg"] / 1e6,
            "itl_ms_p95": d["inter_token_latency-p95"] / 1e6,
            "e2e_s_mean": d["request_latency-avg"] / 1e9,
            "request_rps": d["request_throughput-avg"],
        }
    ).sort_values(["gpu", "model", "input", "output", "concurrency"])
    out.to_csv(TABLE, index=False, float_format="%.6g")
    return out


def simulate_row(row: pd.Series, configs: dict) -> dict[str, float]:
    """Simulate one measured run (module docstring)."""
    key = (row["gpu"], row["model"], int(row["tp"]), int(row["input"]), int(row["output"]))
    cfg = configs.get(key)
    if cfg is None:
        hw = instance_hardware(_instance(row["gpu"]))
        cfg = replica_config(
            get_model(row["model"]),
            gpu=row["gpu"],
            gpu_count=float(row["tp"]),
            gpu_memory_mib=hw["gpu_memory_mib"],
            host_memory_gib=hw["host_memory_gib"],
            tp=int(row["tp"]),
            batch_size=MAX_BATCH,
            input_tokens=int(row["input"]),
            output_tokens=int(row["output"]),
            offload_fraction=0.0,
            dtype="fp16",
            engine="trtllm",
        )
        configs[key] = cfg
    horizon = 12.0 * float(row["e2e_s_mean"])
    raw = run([cfg], ClosedLoop(int(row["concurrency"]), int(row["input"]), int(row["output"])), duration_s=horizon)
    reqs = request_frame(raw, 2.0 * float(row["e2e_s_mean"]), horizon)
    ttft = reqs["ttft_ms"].to_numpy()
    itl = reqs["tpot_ms"].to_numpy()
    return {
        "sim_ttft_ms_mean": statistic(ttft, "mean"),
        "sim_ttft_ms_p95": statistic(ttft, "p95"),
        "sim_itl_ms_mean": statistic(itl, "mean"),
        "sim_itl_ms_p95": statistic(itl, "p95"),
        "sim_requests": float(len(reqs)),
    }


def _instance(gpu: str) -> str:
    return {v[0]: v[1] for v in GPUS.values()}[gpu]


def knee(conc: np.ndarray, ttft: np.ndarray) -> float:
    """First concurrency whose TTFT exceeds KNEE_FACTOR × the TTFT at the lowest concurrency (inf if none)."""
    above = np.flatnonzero(ttft > KNEE_FACTOR * ttft[0])
    return float(conc[above[0]]) if above.size else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extract", action="store_true", help="re-copy the rows from ../shared/data first")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    data = extract() if args.extract or not TABLE.exists() else pd.read_csv(TABLE)
    start = time.perf_counter()
    configs: dict = {}
    sims = pd.DataFrame([simulate_row(r, configs) for _, r in data.iterrows()], index=data.index)
    frame = pd.concat([data, sims], axis=1)
    seconds = time.perf_counter() - start
    for m in ("ttft_ms_mean", "ttft_ms_p95", "itl_ms_mean", "itl_ms_p95"):
        frame[f"err_{m}"] = (frame[f"sim_{m}"] - frame[m]) / frame[m]
    steps = sorted(frame["concurrency"].unique())
    knees = []
    frame["below_saturation"] = False
    for key, g in frame.groupby(["gpu", "model", "input", "output"]):
        g = g.sort_values("concurrency")
        c = g["concurrency"].to_numpy()
        k_meas = knee(c, g["ttft_ms_mean"].to_numpy())
        k_sim = knee(c, g["sim_ttft_ms_mean"].to_numpy())
        frame.loc[g.index, "below_saturation"] = c < k_meas
        i_meas = steps.index(int(k_meas)) if np.isfinite(k_meas) else len(steps)
        i_sim = steps.index(int(k_sim)) if np.isfinite(k_sim) else len(steps)
        knees.append((*key, k_meas, k_sim, abs(i_meas - i_sim) <= 1))

    def mape(sub: pd.DataFrame, m: str) -> str:
        v = sub[f"err_{m}"].abs().to_numpy()
        v = v[np.isfinite(v)]
        return f"{100 * v.mean():.0f}" if v.size else "-"

    lines = [
        "## Simulator against NIM serving runs (`python benchmarks/sim_accuracy.py`)",
        "",
        f"{len(frame)} measured runs (`instances/measurements/serving/nim_serving.csv`: genai-perf closed loop "
        "against NIM TensorRT-LLM, fp16, Llama-3 8B on 1 GPU and 70B on 4), each simulated as it ran "
        f"(`benchmarks/sim_accuracy.py` docstring; {seconds:.0f} s for all). Mean absolute relative error, %:",
        "",
        "| GPU | model | concurrency | runs | TTFT mean | TTFT p95 | ITL mean | ITL p95 |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (gpu, model), g in frame.groupby(["gpu", "model"]):
        for lo, hi in BANDS:
            sub = g[(g["concurrency"] >= lo) & (g["concurrency"] <= hi)]
            lines.append(
                f"| {gpu} | {model} | {lo}–{hi} | {len(sub)} | {mape(sub, 'ttft_ms_mean')} | "
                f"{mape(sub, 'ttft_ms_p95')} | {mape(sub, 'itl_ms_mean')} | {mape(sub, 'itl_ms_p95')} |"
            )
    below = frame[frame["below_saturation"]]
    res = {
        m: below[f"err_{m}"].abs().mean() * 100 for m in ("ttft_ms_mean", "itl_ms_mean", "ttft_ms_p95", "itl_ms_p95")
    }
    knee_ok = sum(k[-1] for k in knees)
    lines += [
        "",
        f"Below saturation ({len(below)} runs before the measured knee), against the targets: mean TTFT "
        f"{res['ttft_ms_mean']:.0f} % and mean ITL {res['itl_ms_mean']:.0f} % (target 25 %: "
        f"{'met' if max(res['ttft_ms_mean'], res['itl_ms_mean']) <= 25 else 'not met'}); p95 TTFT "
        f"{res['ttft_ms_p95']:.0f} % and p95 ITL {res['itl_ms_p95']:.0f} % (target 35 %: "
        f"{'met' if max(res['ttft_ms_p95'], res['itl_ms_p95']) <= 35 else 'not met'}).",
        "",
        "Below saturation, per GPU (mean TTFT / mean ITL / p95 TTFT / p95 ITL, %): "
        + "; ".join(
            f"{gpu} {g['err_ttft_ms_mean'].abs().mean() * 100:.0f} / {g['err_itl_ms_mean'].abs().mean() * 100:.0f} / "
            f"{g['err_ttft_ms_p95'].abs().mean() * 100:.0f} / {g['err_itl_ms_p95'].abs().mean() * 100:.0f}"
            for gpu, g in below.groupby("gpu")
        )
        + ". The simulator's prefill pass is the performance model's `prefill_s` calibrated by the shipped "
        "`trtllm` CTCF profile; where TTFT is far off at concurrency 1 (no queueing at all), the error is that "
        "profile's prefill calibration for the GPU, which the simulator inherits, not the queueing.",
        "",
        f"Knee (first concurrency with mean TTFT above {KNEE_FACTOR:g}× its value at concurrency 1), measured vs "
        f"simulated, within one measured step ({', '.join(str(s) for s in steps)}) in {knee_ok} of {len(knees)} "
        f"series (target: all; {'met' if knee_ok == len(knees) else 'not met'}):",
        "",
        "| GPU | model | input | output | knee measured | knee simulated | within a step |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for gpu, model, s, n, km, ks, ok in knees:
        fmt = lambda v: "none" if not np.isfinite(v) else f"{v:g}"  # noqa: E731
        lines.append(f"| {gpu} | {model} | {s} | {n} | {fmt(km)} | {fmt(ks)} | {'yes' if ok else 'no'} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        doc = ROOT / "docs" / "accuracy.md"
        body = doc.read_text(encoding="utf-8")
        block = f"<!-- simulator:begin -->\n{text}\n<!-- simulator:end -->"
        if "<!-- simulator:begin -->" in body:
            body = re.sub(r"<!-- simulator:begin -->.*?<!-- simulator:end -->", lambda _: block, body, flags=re.S)
        else:
            body = body.rstrip("\n") + "\n\n" + block + "\n"
        doc.write_text(body, encoding="utf-8")


if __name__ == "__main__":
    main()
