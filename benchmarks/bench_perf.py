"""Speed of the vectorised performance model: configurations evaluated per second on one core.

Run: python benchmarks/bench_perf.py [--rows N] [--repeat R] [--no-write]
The grid is every AWS instance type x batch sizes x offload levels x TP degrees (repeated up to N rows),
evaluated by one `predict_frame` call (memory, latency, CTCF, throughput). The result is written between the
`<!-- perf:begin -->` and `<!-- perf:end -->` markers of docs/benchmarks.md and nowhere else.
Pin to one core for the reported number: `taskset -c 0 python benchmarks/bench_perf.py`
(OMP/MKL threads are set to 1 below; numpy's element-wise kernels are single-threaded).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from solver.data.catalog import load_catalog  # noqa: E402
from solver.data.models import get_model  # noqa: E402
from solver.performance.model import predict_frame  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- perf:begin -->", "<!-- perf:end -->"


def grid(rows: int) -> pd.DataFrame:
    """Every AWS instance type x TP x batch x offload configuration, repeated to about ``rows`` rows."""
    hw = load_catalog("aws").zones.drop_duplicates("instance_type")
    hw = hw[["gpu", "gpu_count", "gpu_memory_mib", "host_memory_gib"]].to_numpy(dtype=object)
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    offloads = [np.nan, 0.0, 0.25, 0.5, 0.75, 1.0]
    records = []
    for gpu, count, mem, host in hw:
        for tp in (1, 2, 4, 8):
            if tp > max(1.0, float(count)):
                continue
            for b in batches:
                for f in offloads:
                    records.append((gpu, float(count), float(mem), float(host), tp, b, f))
    base = pd.DataFrame(
        records,
        columns=["gpu", "gpu_count", "gpu_memory_mib", "host_memory_gib", "tp", "batch_size", "offload_fraction"],
    )
    reps = max(1, rows // len(base))
    return pd.concat([base] * reps, ignore_index=True)


def main() -> None:
    """Time one predict_frame call over the grid (best of --repeat) and write the table into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    frame = grid(args.rows)
    model = get_model("llama-3.1-8b")
    rows = []
    for batching in ("static", "continuous"):  # offline workloads; online ones (the serving model)
        predict_frame(frame.head(1000), model, input_tokens=1024, output_tokens=256, batching=batching)  # warm
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = predict_frame(frame, model, input_tokens=1024, output_tokens=256, batching=batching)
            times.append(time.perf_counter() - t0)
        best = min(times)
        rows.append((batching, best, len(frame) / best, int(out["fits"].sum())))
    machine = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, one thread"
    table = "".join(
        f"| {b} | {len(frame):,} | {t:.3f} | {r:,.0f} | {dt.date.today().isoformat()} | {machine} |\n"
        for b, t, r, _ in rows
    )
    fits = ", ".join(f"{b} {n:,}" for b, _, _, n in rows)
    text = (
        f"{BEGIN}\n"
        f"### Performance model speed (`python benchmarks/bench_perf.py`)\n\n"
        f"| batching | configurations | best of {args.repeat} (s) | configurations per second | date | machine |\n"
        f"|---|---|---|---|---|---|\n"
        f"{table}\n"
        f"Grid: every AWS instance type x TP 1/2/4/8 (up to its GPU count) x batch 1-256 x offload "
        f"(smallest that fits, 0, 0.25, 0.5, 0.75, 1), repeated to {len(frame):,} rows; Llama-3.1-8B, 1,024 in / "
        f"256 out, vLLM profile, one `predict_frame` call (memory, roofline, CTCF, throughput; `continuous`: the "
        f"serving model with KV-capacity admission, the planner's path for online workloads). Rows that fit: "
        f"{fits}. Target: more than 1,000,000 configurations per second.\n"
        f"{END}"
    )
    print(text)
    if args.no_write:
        return
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc = head + text + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
