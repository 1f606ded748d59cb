"""Shared replicas against Mélange on its own problem, and solve time on the whole AWS catalog with distributions.

1. Mélange's published example (``melange/config/example.json``) and the 6×6 bucket grid (sizes 25 … 2,000
   tokens, 100 req/s, A10G / L4 / A100-80GB / H100, Llama-2-7B at TPOT <= 120 ms, per-GPU capacities from
   infersave's performance model, ``tests/melange_ilp.py``): infersave's optimum (shared pools, a hand-made
   candidate table with the same capacities) against Mélange's ILP restated from the paper at slice factors
   1, 4, 8 (solved with SciPy's HiGHS, 120 s limit), and infersave without sharing.
2. The whole shipped AWS catalog (every type × region, on-demand and spot, default batch sizes and TP degrees)
   with one online workload per model for 10 models, each with a 10-bucket size distribution
   (:func:`solver.data.traffic.lognormal_histogram`, LMSYS-Chat-1M means, sigma 1): 100 request classes. Times
   the whole ``plan`` (candidates, pools, MILP, tie-break) and its MILP solve.

Writes the tables between ``<!-- melange:begin -->`` and ``<!-- melange:end -->`` in docs/benchmarks.md.

Run:  python benchmarks/bench_melange.py [--no-write] [--skip-catalog]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.data.scenario import scenario_from_dict  # noqa: E402
from solver.data.traffic import lognormal_histogram  # noqa: E402
from solver.planning.evaluate import evaluate  # noqa: E402
from solver.planning.planner import plan, solve_candidates  # noqa: E402
from solver.specs import SolveOptions  # noqa: E402
from tests.melange_ilp import example_problem, grid_problem, hand_table, melange_ilp, scenario_for  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
SLICE_FACTORS = (1, 4, 8)
CATALOG_MODELS = [
    "llama-3.1-8b",
    "mistral-7b",
    "qwen2.5-7b",
    "llama-2-7b",
    "llama-2-13b",
    "llama-3-8b",
    "qwen2-7b",
    "qwen2.5-32b",
    "llama-3.1-70b",
    "qwen2.5-72b",
]
CHAT_MEANS = (69.5, 214.5)
"""Mean prompt and response tokens per turn of LMSYS-Chat-1M (Zheng et al., ICLR 2024, arXiv 2309.11998, Table 1)."""
CATALOG_INPUT_EDGES = [32, 64, 128, 256, 2048]
CATALOG_OUTPUT_EDGES = [256, 1024]


def _infersave(rates, tputs, costs, sizes, sharing=True):
    scenario = scenario_for(rates, sizes)
    table = hand_table(rates, tputs, costs, sharing=sharing)
    start = time.perf_counter()
    result = solve_candidates(table, scenario)
    seconds = time.perf_counter() - start
    ok = evaluate(result, scenario, performance=table).ok
    counts: dict[str, int] = {}
    for row in result.fleet:
        counts[row.instance_type] = counts.get(row.instance_type, 0) + row.count
    return result.cost_usd_per_hour, counts, seconds, ok, result.status


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v}× {k}" for k, v in counts.items() if v)


def melange_rows() -> list[str]:
    """Markdown rows: problem, tool, slice factor, $/h, fleet, seconds, status."""
    lines = [
        "| problem | tool | slice factor | $/h | fleet | solve s | status |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    problems = (("example.json (30 req/s, 2×2)", example_problem()), ("6×6 grid, 100 req/s", grid_problem()))
    for label, problem in problems:
        rates, tputs, costs, sizes = problem
        cost, counts, secs, ok, status = _infersave(rates, tputs, costs, sizes)
        lines.append(
            f"| {label} | infersave, shared | — | {cost:.2f} | {_fmt_counts(counts)} | {secs:.2f} | "
            f"{status}, evaluator {'ok' if ok else 'FAILED'} |"
        )
        cost0, counts0, secs0, ok0, status0 = _infersave(rates, tputs, costs, sizes, sharing=False)
        lines.append(
            f"| {label} | infersave, no sharing | — | {cost0:.2f} | {_fmt_counts(counts0)} | {secs0:.2f} | "
            f"{status0}, evaluator {'ok' if ok0 else 'FAILED'} |"
        )
        for s in SLICE_FACTORS:
            res = melange_ilp(rates, tputs, costs, s, time_limit_s=120)
            lines.append(
                f"| {label} | Mélange ILP (restated) | {s} | {res.cost:.2f} | {_fmt_counts(res.counts)} | "
                f"{res.seconds:.2f} | {res.status} |"
            )
    return lines


def catalog_scenario():
    """The whole AWS catalog, both markets, 10 models × 10 size buckets (100 request classes)."""
    sizes = lognormal_histogram(*CHAT_MEANS, 1.0, CATALOG_INPUT_EDGES, CATALOG_OUTPUT_EDGES)
    workloads = [
        {
            "name": f"chat{i}",
            "model": m,
            "rate_rps": [2.0, 5.0, 10.0, 20.0][i % 4],
            "slo": {"ttft_ms": 4000, "tpot_ms": [100, 150][i % 2]},
            "sizes": sizes,
        }
        for i, m in enumerate(CATALOG_MODELS)
    ]
    return scenario_from_dict({"markets": ["on_demand", "spot"], "workloads": workloads}), len(sizes)


@contextlib.contextmanager
def without_offer_reductions() -> Iterator[None]:
    """The planner as before the cross-offer reductions (README "Exact presolve" steps 0, 2b, 2c): every offer
    enumerated, dominance within one offer only. For the before/after rows; the shared prediction of pooled rows
    stays (it gives the same numbers)."""
    from solver.planning import candidates, presolve

    switches = [
        (candidates, "offer_region_classes"),
        (candidates, "types_interchangeable"),
        (presolve, "offers_interchangeable"),
        (presolve, "types_interchangeable"),
    ]
    saved = {(mod, name): getattr(mod, name) for mod, name in switches}
    try:
        for mod, name in saved:
            setattr(mod, name, (lambda scenario: None) if name == "offer_region_classes" else (lambda scenario: False))
        yield
    finally:
        for (mod, name), fn in saved.items():
            setattr(mod, name, fn)


def catalog_rows() -> list[str]:
    """Markdown rows: the catalog case shared (with and without the tie-break stage) and without sharing,
    and the shared cases without the cross-offer reductions (before)."""
    scenario, n_buckets = catalog_scenario()
    lines = [
        "| case | classes | candidates | MILP variables | MILP rows | t_candidates | t_solve | t_plan | $/h | "
        "evaluator |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    cases = ((True, False, False), (True, True, False), (False, True, False), (True, False, True), (True, True, True))
    for sharing, tie_break, before in cases:
        scen = scenario.model_copy(update={"search": scenario.search.model_copy(update={"sharing": sharing})})
        with without_offer_reductions() if before else contextlib.nullcontext():
            start = time.perf_counter()
            result = plan(scen, SolveOptions(time_limit_s=120, tie_break=tie_break))
            seconds = time.perf_counter() - start
        ok = evaluate(result, scen).ok
        size = result.model_size
        label = f"{'shared' if sharing else 'no sharing'}, {'with' if tie_break else 'no'} tie-break"
        label += ", before (every offer, dominance within an offer)" if before else ""
        lines.append(
            f"| {len(CATALOG_MODELS)} models × {n_buckets} buckets, {label} | {len(CATALOG_MODELS) * n_buckets} | "
            f"{result.candidates} | {size.get('variables', 0)} | {size.get('rows', 0)} | "
            f"{seconds - result.solve_seconds:.2f} | {result.solve_seconds:.2f} | {seconds:.2f} | "
            f"{result.cost_usd_per_hour:.2f} | {'ok' if ok else 'FAILED'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    parser.add_argument("--skip-catalog", action="store_true", help="Only the Mélange comparison.")
    args = parser.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    machine += f", load average {os.getloadavg()[0]:.1f} at the start (a machine shared with other jobs)"
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {machine} (`python benchmarks/bench_melange.py`).", ""]
    lines += melange_rows()
    if not args.skip_catalog:
        lines += ["", *catalog_rows()]
    text = "\n".join(lines)
    print(text)
    if args.no_write:
        return
    doc = DOC.read_text(encoding="utf-8")
    block = f"<!-- melange:begin -->\n{text}\n<!-- melange:end -->"
    if "<!-- melange:begin -->" in doc:
        doc = re.sub(r"<!-- melange:begin -->.*?<!-- melange:end -->", lambda _m: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
