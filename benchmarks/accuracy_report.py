"""Refit the shipped profiles and error bands, and regenerate docs/accuracy.md from `infersave validate`'s numbers.

Run: PYTHONPATH=. python benchmarks/accuracy_report.py [--no-refit] [--quick]

Writes instances/calibration/ENGINE.yaml (hierarchical fit), instances/calibration/error_bands.yaml (quantiles of the
leave-one-source-out residuals) and docs/accuracy.md. Every number in the page comes from this run, except the
"before issue 12" column, which is benchmarks/results/validation_baseline.json (recorded by the same harness before
the calibration changed). Sections of docs/accuracy.md between `<!-- NAME:begin -->` and `<!-- NAME:end -->` for
NAME in serving, simulator, moe and capacity belong to other reports and are kept as they are. `--quick` skips the
ablations (four more cross-validations).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import solver.performance.calibration as calibration
import solver.performance.latency as latency
from solver.data.gpus import get_gpu
from solver.data.models import get_model
from solver.performance import uncertainty
from solver.performance import validation_report as vr
from solver.performance.accuracy import (
    fit_per_gpu_profiles,
    fit_shipped_profiles,
    shipped_measurements,
    write_shipped_profiles,
)
from solver.performance.ctcf import IDENTITY
from solver.performance.measurements import model_measurements
from solver.performance.model import predict_frame

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "accuracy.md"
BANDS = ROOT / "instances" / "calibration" / "error_bands.yaml"
BASELINE = ROOT / "benchmarks" / "results" / "validation_baseline.json"
LLAMACPP = ROOT.parent / "shared" / "data" / "llamacpp_gpu_benchmarks_xiongjiedai"
LLAMACPP_GPUS = {"L40S 48GB": "L40S", "A100 SXM 80GB": "A100-80GB", "H100 PCIe 80GB": "H100-PCIe"}
KEPT_SECTIONS = ("serving", "simulator", "moe", "capacity")


def markdown_table(frame: pd.DataFrame) -> str:
    """Render a DataFrame as a GitHub markdown table (NaN as an empty cell)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        cells = ["" if (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kept_sections(text: str) -> list[str]:
    """Blocks of ``text`` owned by other reports (module docstring), verbatim, in their order."""
    blocks = []
    for name in KEPT_SECTIONS:
        m = re.search(rf"<!-- {name}:begin[^>]*-->.*?<!-- {name}:end[^>]*-->", text, flags=re.DOTALL)
        if m:
            blocks.append((m.start(), m.group(0)))
    return [b for _, b in sorted(blocks)]


def loso_overall(errors: pd.DataFrame) -> dict[str, float]:
    """LOSO MAPE per metric over all rows."""
    s = vr.summarise(errors)
    s = s[s["split"] == "loso"]
    return {str(r.metric): float(r.mape_pct) for r in s.itertuples(index=False)}


def ablations() -> pd.DataFrame:
    """LOSO MAPE per metric for variants of the fit and of the link model (each a full cross-validation)."""
    variants: list[tuple[str, dict[str, Any]]] = [
        ("shipped (hierarchical, source offsets, element-wise traffic, prior 10 rows, fitted PCIe link)", {}),
        ("per-GPU CTCF fit (as shipped before), same raw model", {"fitter": fit_per_gpu_profiles}),
        ("PCIe link at the datasheet (efficiency 1, 20 us)", {"pcie": (1.0, 2e-5)}),
        ("prior weight 3 rows", {"prior": 3.0}),
        ("prior weight 40 rows", {"prior": 40.0}),
        ("alpha not ordered by the datasheet (breaks the dominance invariant)", {"monotone": False}),
        ("every (engine, source) weighted equally instead of every row", {"equal_sources": True}),
        ("serving rows' decode CTCF fitted on the composed TPOT, not the step (as before)", {"step_fit": False}),
        ("no per-sequence decode cost (beta_per_sequence_ms = 0, as before)", {"per_seq": False}),
        ("no source offsets on alpha (one alpha for every source of an engine, as before)", {"source_fx": False}),
        (
            "serving rows scored with the raw stretch x calibrated step, not as predict composes them (as before)",
            {"composed": False},
        ),
        (
            "no element-wise activation traffic (aiconfigurator's add_norm and act ops; as before)",
            {"elementwise": ()},
        ),
        ("element-wise activation traffic in decode steps only, not kept", {"elementwise": ("decode",)}),
    ]
    rows = []
    for label, opts in variants:
        saved = dict(latency.LINK_EFFICIENCY), dict(latency.ALLREDUCE_LATENCY_S), calibration.PRIOR_ROWS
        try:
            calibration.MONOTONE_IN_DATASHEET = opts.get("monotone", True)
            calibration.EQUAL_SOURCE_WEIGHT = opts.get("equal_sources", False)
            calibration.SERVING_STEP_FIT = opts.get("step_fit", True)
            calibration.PER_SEQUENCE_FIT = opts.get("per_seq", True)
            calibration.SOURCE_EFFECTS = opts.get("source_fx", True)
            calibration.COMPOSED_SERVING = opts.get("composed", True)
            latency.ELEMENTWISE_PHASES = opts.get("elementwise", ("prefill", "decode"))
            if "pcie" in opts:
                latency.LINK_EFFICIENCY["pcie"], latency.ALLREDUCE_LATENCY_S["pcie"] = opts["pcie"]
            if "prior" in opts:
                calibration.PRIOR_ROWS = opts["prior"]
            res = loso_overall(vr.run(opts.get("fitter")))
        finally:
            latency.LINK_EFFICIENCY.update(saved[0])
            latency.ALLREDUCE_LATENCY_S.update(saved[1])
            calibration.PRIOR_ROWS = saved[2]
            calibration.MONOTONE_IN_DATASHEET = True
            calibration.EQUAL_SOURCE_WEIGHT = False
            calibration.SERVING_STEP_FIT = True
            calibration.PER_SEQUENCE_FIT = True
            calibration.SOURCE_EFFECTS = True
            calibration.COMPOSED_SERVING = True
            latency.ELEMENTWISE_PHASES = ("prefill", "decode")
        rows.append({"variant": label, **{m: res.get(m) for m in vr.METRICS}})
    return pd.DataFrame(rows)


def carriers(errors: pd.DataFrame, metric: str, top: int = 8) -> pd.DataFrame:
    """Groups (source, engine, GPU, TP) carrying the most LOSO error of ``metric``: share of the summed error."""
    sel = errors[(errors["split"] == "loso") & (errors["metric"] == metric)]
    total = float(sel["ape_pct"].sum())
    g = sel.groupby(["source", "engine", "gpu", "tp"])
    out = g["ape_pct"].agg(rows="size", mape_pct="mean", total="sum").reset_index()
    out["median_signed_pct"] = g["ratio"].median().to_numpy() * 100.0 - 100.0
    out["share_of_error_pct"] = out["total"] / total * 100.0
    out = out.sort_values("total", ascending=False).head(top).drop(columns="total")
    for c in ("mape_pct", "median_signed_pct", "share_of_error_pct"):
        out[c] = out[c].round(1)
    return out.reset_index(drop=True)


def offload_table() -> pd.DataFrame:
    """OPT-2.7B, batch 32, 512/32 tokens, vLLM profile: TTFT/TPOT with the old single host-link efficiency and now."""
    model = get_model("opt-2.7b")
    rows = []
    for gpu in ("T4", "L4", "A10G"):
        for f in (0.6, 1.0):
            frame = pd.DataFrame(
                [
                    {
                        "gpu": gpu,
                        "gpu_count": 1.0,
                        "gpu_memory_mib": get_gpu(gpu).memory_gb * 1e9 / 2**20,
                        "host_memory_gib": 256.0,
                        "tp": 1.0,
                        "batch_size": 32.0,
                        "offload_fraction": f,
                    }
                ]
            )
            out: dict[str, Any] = {"gpu": gpu, "offload": f}
            saved = latency.HOST_WRITE_EFFICIENCY, latency.HOST_HIDDEN_WRITE_EFFICIENCY
            for label, write in (("before (0.879 both ways)", latency.HOST_READ_EFFICIENCY), ("now", None)):
                try:
                    if write is not None:
                        latency.HOST_WRITE_EFFICIENCY = latency.HOST_HIDDEN_WRITE_EFFICIENCY = write
                    p = predict_frame(
                        frame, model, input_tokens=512, output_tokens=32, profile=IDENTITY, offload_mode="copy"
                    ).iloc[0]
                finally:
                    latency.HOST_WRITE_EFFICIENCY, latency.HOST_HIDDEN_WRITE_EFFICIENCY = saved
                out[f"e2e_s {label}"] = round(float(p["e2e_s"]), 2)
            out["slower_by_pct"] = round((out["e2e_s now"] / out["e2e_s before (0.879 both ways)"] - 1) * 100, 1)
            rows.append(out)
    return pd.DataFrame(rows)


def gddr_check() -> pd.DataFrame | None:
    """Effective bandwidth of llama.cpp batch-1 F16 Llama-3-8B decode (tg512) as a fraction of the datasheet."""
    path = LLAMACPP / "llama3_llamacpp_professional_and_gaming_gpus.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    weight_bytes = get_model("llama-3-8b").num_params * 2.0
    rows = []
    for name, gpu in LLAMACPP_GPUS.items():
        sel = table[(table["gpu"] == name) & (table["model"] == "8B F16")]
        if sel.empty:
            continue
        tok_s = float(sel["tg512"].iloc[0])
        spec = get_gpu(gpu)
        rows.append(
            {
                "llama.cpp gpu": name,
                "gpu": gpu,
                "tg512_tok_per_s": tok_s,
                "datasheet_gb_per_s": spec.memory_bandwidth_gb_per_s,
                "effective_fraction": round(tok_s * weight_bytes / (spec.memory_bandwidth_gb_per_s * 1e9), 2),
            }
        )
    return pd.DataFrame(rows)


def dli_fp8_check() -> dict[str, float] | None:
    """What the NVIDIA DLI TensorRT-LLM 0.9.0 table says about its fp8 runs (Llama-2-7B, TP 1, H100 and H200).

    ``kv_ratio``: GPU peak memory per token of the batch (least-squares slope of ``GPU Peak Memory Usage`` on
    batch x (input + output)) of the FP8 runs over the fp16 ("Mixed") runs on H100: about 0.5 when the KV cache is
    fp8 as the measurement rows assume (``kv_dtype`` fp8), about 1 if it were kept in fp16.
    ``h100_over_h200``: median measured TPOT of H100 over H200 on the same fp8 configurations (every model, batch and
    lengths both ran), against ``datasheet`` (H200 over H100 memory bandwidth).
    """
    path = ROOT.parent / "shared" / "data" / "nvidia_dli_trtllm_nim" / "trt_llm_0_9_0_dli.csv"
    if not path.is_file():
        return None
    t = pd.read_csv(path)
    lengths = t["Input/Output Lengths"].str.split(",", expand=True).astype(int)
    t = t.assign(tokens=t["Batch Size"] * (lengths[0] + lengths[1]), tp=t["Tensor Model Parallel Size"])
    t = t[(t["tp"] == 1) & t["GPU Peak Memory Usage (GB)"].notna()]

    def slope(sel: pd.DataFrame) -> float:
        return float(np.polyfit(sel["tokens"], sel["GPU Peak Memory Usage (GB)"], 1)[0])

    h100 = t[(t["GPU"] == "H100 80GB HBM3") & (t["Model"] == "LLaMA v2 7B")]
    kv_ratio = slope(h100[h100["Precision"] == "FP8"]) / slope(h100[h100["Precision"] == "Mixed"])
    keys = ["Model", "Batch Size", "Input/Output Lengths"]
    fp8 = t[t["Precision"] == "FP8"]
    pair = fp8[fp8["GPU"] == "H100 80GB HBM3"].merge(fp8[fp8["GPU"] == "H200 141GB HBM3"], on=keys)
    ratio = float((pair["Token-to-token Latency (ms)_x"] / pair["Token-to-token Latency (ms)_y"]).median())
    sheet = get_gpu("H200").memory_bandwidth_gb_per_s / get_gpu("H100").memory_bandwidth_gb_per_s
    return {"kv_ratio": round(kv_ratio, 2), "h100_over_h200": round(ratio, 2), "pairs": len(pair),
            "datasheet": round(sheet, 2)}  # fmt: skip


def dli_tp_gap() -> dict[str, float]:
    """Measured minus raw TPOT (ms) of the ``nvidia_dli`` Llama-2-70B rows at TP 2, 4 and 8, and the modelled
    all-reduce time per step, on the (GPU, precision, batch >= 64, lengths) configurations run at all three TPs."""
    from solver.performance import latency as lat
    from solver.performance.model import gpu_hardware

    rows = shipped_measurements()
    rows = rows[(rows["file"] == "nvidia_dli.csv") & (rows["model"] == "llama-2-70b") & (rows["batch"] >= 64)]
    m = model_measurements(rows).assign(gap=lambda d: d["tpot_ms"] - d["tpot_model_ms"])
    keys = ["gpu", "dtype", "batch", "input", "output"]
    wide = m.pivot_table(index=keys, columns="tp", values="gap", aggfunc="median")[[2, 4, 8]].dropna()
    card = get_model("llama-2-70b")
    costs = lat.ModelCosts.of(card, "fp16", "fp16")
    sel = m.set_index(keys).loc[wide.index].reset_index()
    ar = {}
    for tp in (2, 4, 8):
        times = []
        for gpu, part in sel[sel["tp"] == tp].groupby("gpu"):
            hw = gpu_hardware(str(gpu), "fp16", float(tp), len(part))
            times.append(costs.comm_s(hw, np.full(len(part), float(tp)), part["batch"].to_numpy(float)))
        ar[tp] = float(np.median(np.concatenate(times)))
    per_seq = float(np.median(wide[8].to_numpy() / wide.index.get_level_values("batch").to_numpy(float)))
    return {
        "tp2": round(float(wide[2].median()), 1),
        "tp4": round(float(wide[4].median()), 1),
        "tp8": round(float(wide[8].median()), 1),
        "n": len(wide),
        "ar2": round(ar[2] * 1e3, 2),
        "ar8": round(ar[8] * 1e3, 2),
        "per_seq_us": round(per_seq * 1e3, 1),
    }


def aiconfigurator_check(errors: pd.DataFrame, modelled: pd.DataFrame) -> dict[str, float]:
    """Evidence for the ``aiconfigurator`` TPOT bullet of docs/accuracy.md (LOSO: profiles fitted without it).

    ``longest_prompt`` against vLLM's prefill token budget (``max_num_batched_tokens``, the memory model's
    ``max_prefill_tokens``); the median signed LOSO TPOT error of the vLLM Llama-3.1-8B rows and of the rest; and,
    for TensorRT-LLM on H100 at concurrency 8 (prefill stretch small), the raw and the calibrated decode step over
    the measured TPOT, with the decode overheads the held-out fit carries.
    """
    from solver.performance import ctcf
    from solver.performance.memory import engine_memory

    aic = modelled["file"] == "aiconfigurator.csv"
    loso = errors[(errors["split"] == "loso") & (errors["metric"] == "tpot")].set_index("row")["ratio"]
    small = aic & (modelled["engine"] == "vllm") & (modelled["model"] == "llama-3.1-8b")
    other = aic & ~small
    prof = fit_shipped_profiles(modelled[~aic])["trtllm"]
    sel = modelled[aic & (modelled["engine"] == "trtllm") & (modelled["gpu"] == "H100") & (modelled["batch"] == 8)]
    _, step = ctcf.apply_ctcf(
        prof, sel["gpu"].to_numpy(), sel["ttft_model_ms"], sel["step_model_ms"], sel["num_layers"].to_numpy(float),
        running=sel["running"].to_numpy(float),
    )  # fmt: skip
    dec = prof.gpus["H100"].decode
    return {
        "longest_prompt": int(modelled.loc[aic, "input"].max()),
        "vllm_budget": int(engine_memory("vllm").max_prefill_tokens or 0),
        "vllm_8b_rows": int(small.sum()),
        "vllm_8b_signed": round(float(loso.reindex(np.flatnonzero(small)).median()) * 100 - 100, 1),
        "other_signed": round(float(loso.reindex(np.flatnonzero(other)).median()) * 100 - 100, 1),
        "trt_c8_raw_step": round(float((sel["step_model_ms"] / sel["tpot_ms"]).median()) * 100 - 100, 1),
        "trt_c8_cal_step": round(float(np.median(step / sel["tpot_ms"].to_numpy())) * 100 - 100, 1),
        "trt_layer_us": round(dec.beta_per_layer_ms * 1e3, 1),
        "trt_seq_us": round(dec.beta_per_sequence_ms * 1e3, 1),
    }


def argonne_vllm_check(errors: pd.DataFrame, modelled: pd.DataFrame) -> dict[str, float]:
    """Evidence for the ``argonne`` vLLM bullet of docs/accuracy.md.

    Per engine on the ``argonne`` rows (same machines, same models): the median host-side excess per decode step,
    ``(e2e - raw prefill) / output - raw step``, at batch 1 (ms) and per sequence at batch 64 (us); and the LOSO
    throughput MAPE over every row but the ``argonne`` vLLM ones, and but those and ``tgi``'s.
    """
    m = modelled[modelled["file"] == "argonne.csv"]
    excess = (m["e2e_s"] * 1e3 - m["ttft_model_ms"]) / m["output"] - m["step_model_ms"]
    out: dict[str, float] = {}
    for engine in ("vllm", "trtllm"):
        mine = m["engine"] == engine
        out[f"{engine}_step_ms"] = round(float(excess[mine & (m["batch"] == 1)].median()), 2)
        big = mine & (m["batch"] == 64)
        per_seq = excess[big] / 64.0 * 1e3
        by_tp = per_seq.groupby(m.loc[big, "tp"]).median()
        out[f"{engine}_seq_us"] = round(float(per_seq.median()), 0)
        out[f"{engine}_seq_lo"], out[f"{engine}_seq_hi"] = round(float(by_tp.min())), round(float(by_tp.max()))
    thr = errors[(errors["split"] == "loso") & (errors["metric"] == "throughput")]
    old_vllm = (thr["source"] == "argonne") & (thr["engine"] == "vllm")
    out["rows"] = int(old_vllm.sum())
    out["without"] = round(float(thr.loc[~old_vllm, "ape_pct"].mean()), 1)
    out["without_tgi"] = round(float(thr.loc[~old_vllm & (thr["source"] != "tgi"), "ape_pct"].mean()), 1)
    return out


def profiles_table(profiles: dict) -> pd.DataFrame:
    """Measured GPUs of each shipped profile: alpha, achieved fractions, beta, pooled phases, in-sample errors."""
    rows = []
    for engine, prof in profiles.items():
        for gpu, cal in prof.gpus.items():
            if not cal.rows:
                continue
            errs = {m: e.mape_after_pct for m, e in cal.errors.items()}
            rows.append(
                {
                    "engine": engine,
                    "gpu": gpu,
                    "rows": cal.rows,
                    "alpha_prefill": round(cal.prefill.alpha, 3),
                    "alpha_decode": round(cal.decode.alpha, 3),
                    "flops_fraction": cal.achieved_flops_fraction,
                    "bw_fraction": cal.achieved_bw_fraction,
                    "beta_decode_ms": round(cal.decode.beta_ms, 2),
                    "beta_decode_per_layer_ms": round(cal.decode.beta_per_layer_ms, 4),
                    "pooled": ",".join(cal.pooled) or "-",
                    "in_sample_mape": ", ".join(f"{k} {v}" for k, v in errs.items()),
                }
            )
    return pd.DataFrame(rows)


def write_bands(errors: pd.DataFrame) -> list[dict[str, Any]]:
    """Write instances/calibration/error_bands.yaml from the LOSO residuals; return the bands."""
    bands = uncertainty.band_table(errors)
    doc = {
        "description": (
            "Quantiles of measured / predicted over the leave-one-source-out residuals of the shipped measurements, "
            "per engine, metric and GPU class (solver/performance/uncertainty.py); written by "
            "benchmarks/accuracy_report.py. search.slo_confidence and infersave predict read it."
        ),
        "levels": list(uncertainty.LEVELS),
        "min_rows": uncertainty.MIN_BAND_ROWS,
        "bands": bands,
    }
    BANDS.write_text(yaml.safe_dump(doc, sort_keys=False, width=120), encoding="utf-8")
    return bands


def main() -> None:
    """Refit (unless --no-refit), cross-validate, write the bands and docs/accuracy.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-refit", action="store_true", help="keep instances/calibration/*.yaml as they are")
    parser.add_argument("--quick", action="store_true", help="skip the ablations")
    args = parser.parse_args()
    profiles = fit_shipped_profiles()
    if not args.no_refit:
        for path in write_shipped_profiles(profiles):
            print(f"wrote {path}")
    errors = vr.run()
    bands = write_bands(errors)
    print(f"wrote {BANDS} ({len(bands)} bands)")
    head = vr.headline(errors)
    tables = vr.report(errors)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.is_file() else None
    overall = tables["overall"].copy()
    if baseline:
        base = {r["metric"]: r.get("loso_mape_pct") for r in baseline["overall"]}
        overall["loso_before_issue12_pct"] = overall["metric"].map(base)
    abl = None if args.quick else ablations()
    gddr = gddr_check()
    old = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    kept = kept_sections(old)
    band_rows = pd.DataFrame(
        [
            {
                "engine": b["engine"],
                "metric": b["metric"],
                "class": b["gpu_class"],
                "rows": b["rows"],
                "from": b["from"],
                "p10": b["quantiles"]["0.1"],
                "p50": b["quantiles"]["0.5"],
                "p90": b["quantiles"]["0.9"],
            }
            for b in bands
            if b["engine"] != "generic"
        ]
    )
    loso = errors[errors["split"] == "loso"]

    def signed(metric: str, source: str | None = None, gpu: str | None = None, tp: int | None = None,
               engine: str | None = None) -> float:  # fmt: skip
        sel = loso[loso["metric"] == metric]
        for col, val in (("source", source), ("gpu", gpu), ("tp", tp), ("engine", engine)):
            if val is not None:
                sel = sel[sel[col] == val]
        return round(float(sel["ratio"].median()) * 100.0 - 100.0, 1)

    results = ROOT / "benchmarks" / "results"
    links = json.loads((results / "link_fit.json").read_text())
    hop = json.loads((results / "link_fit_per_hop.json").read_text())
    tgi_beta = profiles["tgi"].gpus["A10G"].decode.beta_ms
    trt_beta = profiles["trtllm"].gpus["H100"].decode.beta_ms
    per_seq = {e: profiles[e].gpus["H100"].decode.beta_per_sequence_ms * 1e3 for e in ("trtllm", "vllm", "tgi")}
    no_seq = {r["variant"]: r for r in abl.to_dict("records")} if abl is not None else {}
    no_seq_row = next((r for k, r in no_seq.items() if k.startswith("no per-sequence")), None)
    in_sample = errors[errors["split"] == "in_sample"]
    no_seq_text = (
        f"LOSO TPOT {no_seq_row['tpot']} %, throughput {no_seq_row['throughput']} %"
        if no_seq_row
        else "(ablations skipped: run without --quick)"
    )

    def signed_in(metric: str, source: str, engine: str) -> float:
        sel = in_sample[(in_sample["metric"] == metric) & (in_sample["source"] == source)]
        sel = sel[sel["engine"] == engine]
        return round(float(sel["ratio"].median()) * 100.0 - 100.0, 1)

    modelled = model_measurements(shipped_measurements()).reset_index(drop=True)  # the rows ``errors`` indexes
    aic = aiconfigurator_check(errors, modelled)
    arg = argonne_vllm_check(errors, modelled)
    gap = dli_tp_gap()
    dli = dli_fp8_check()
    dli_text = (
        f"the fp8 runs' peak memory grows with the batch's tokens at {dli['kv_ratio']} x the rate of the fp16 runs "
        f"(H100, Llama-2-7B; an fp8 KV cache, as the rows assume), and on the same fp8 configurations H100 TPOT / H200 "
        f"TPOT is {dli['h100_over_h200']} (median of {dli['pairs']}) against {dli['datasheet']} on the datasheet."
        if dli
        else "(shared/data not present: check skipped)."
    )
    targets = []
    for metric, target in vr.TARGETS_PCT.items():
        value = head.get(f"{metric}_loso_mape_pct")
        met = "met" if head[f"{metric}_loso_target_met"] else "**NOT met**"
        targets.append(f"* {metric}: leave-one-source-out MAPE **{value} %** (target {target:g} %): {met}")
    text = f"""# Accuracy of the performance model

Generated by `python benchmarks/accuracy_report.py` on {head["date"]}; `infersave validate` prints the same tables.
Do not edit by hand (the sections marked for other reports at the end are theirs).

Data: every row of `instances/measurements/` (provenance in `instances/measurements/PROVENANCE.md`), one *source* per
file: `argonne` (static batches, end-to-end time only; vLLM and TensorRT-LLM on A100/H100), `aiconfigurator`
(serving at fixed concurrency, TTFT and TPOT; vLLM and TensorRT-LLM on H100/H200), `tgi` (TGI 1.0.3 serving on
A10G/A100, TPOT), `flexgen` (two OPT-6.7B T4 runs, end-to-end) and `nvidia_dli` (TensorRT-LLM 0.9.0 static batches,
TTFT, TPOT and end-to-end, H100/H200/A100-80GB/L40S, TP 1-8 including TP over PCIe on L40S).

Each row is predicted four ways (`solver/performance/validation_report.py`):

* **before**: the raw roofline, no calibration at all;
* **in-sample**: the shipped profiles (fitted on every row);
* **LOSO** (leave one source out): profiles refitted without the row's source file; an engine with no row left takes
  the pooled `generic` profile;
* **LOGO** (leave one GPU out): profiles refitted without any row of the row's GPU, which then gets its class's
  pooled alpha, as a GPU without measurements does.

Metrics: `ttft` (static batches), `ttft_serving` (serving benchmarks; includes waiting for a slot), `tpot`, `e2e` and
`throughput` (tokens per second of the batch: from the end-to-end time, or from TPOT where only TPOT was
measured). MAPE = mean absolute percentage error over the rows (every row weighs the same).

## Headline (every row)

{markdown_table(overall)}

`loso_before_issue12_pct`: the same harness on the same rows with the per-GPU CTCF fit and raw model shipped before
issue 12 (`benchmarks/results/validation_baseline.json`).

Targets of issue 12 (leave one source out, MAPE over the rows):

{chr(10).join(targets)}

## Which rows carry the LOSO error

TPOT (share of the summed absolute error, median signed error: positive = predicted too slow):

{markdown_table(carriers(errors, "tpot"))}

Throughput:

{markdown_table(carriers(errors, "throughput"))}

Why (the numbers above are the evidence):

* `nvidia_dli` H200 (TensorRT-LLM 0.9.0, fp8): left out, the TensorRT-LLM H200 decode alpha comes from the
  `aiconfigurator` H200 serving rows alone (a newer TensorRT-LLM), which need a smaller alpha; the static 0.9.0 rows
  reach a smaller share of the H200's bandwidth and are predicted too fast
  (median signed error {signed("tpot", "nvidia_dli", "H200", 1)} %; raw: column `before` of the per-engine table).
  Not a dtype error: {dli_text}
  The source offsets on alpha (`calibration.SOURCE_EFFECTS`) take out the part of that which is the newer
  version's: `aiconfigurator`'s offset is measured on the H100, which `argonne` also ran, and removed from the
  H200 alpha (ablation without them below); what is left is the two versions' disagreement on the H200 itself,
  which no source left in can show.
* `tgi` (TGI 1.0.3, 20 rows) has a per-step overhead of its own (fitted decode beta {tgi_beta:.1f} ms in the shipped
  `tgi` profile, against {trt_beta:.1f} ms for TensorRT-LLM) that no other source has. Left out, tgi has no rows and
  takes the pooled `generic` profile, so TPOT is predicted several times too fast (median signed TPOT error
  {signed("tpot", "tgi")} %) and throughput as much too high. Its in-sample error shows what a user's own
  `infersave calibrate` run fixes.
* `argonne` vLLM rows (A100, H100, e2e only): left out, vLLM keeps only the `aiconfigurator` serving rows, on
  H100/H200, whose decode fit does not carry over to Argonne's older vLLM on static batches (median signed
  throughput error {signed("throughput", "argonne", engine="vllm")} %: predicted too fast). Not the link: TensorRT-LLM
  on the same Argonne machines at the same TP is predicted within a few percent (median signed throughput error at
  TP 4 {signed("throughput", "argonne", tp=4, engine="trtllm")} % on TensorRT-LLM,
  {signed("throughput", "argonne", tp=4, engine="vllm")} % on vLLM), so the extra time is the older vLLM's own.
  The extra time comes per step and per sequence and does not shrink with TP, as host-side work (scheduling,
  sampling, detokenising) would not: measured time per generated token minus the raw modelled prefill and step,
  median on these machines, is {arg["vllm_step_ms"]} ms at batch 1 and
  {arg["vllm_seq_us"]:.0f} us per sequence at batch 64 on vLLM, against {arg["trtllm_step_ms"]} ms and
  {arg["trtllm_seq_us"]:.0f} us on TensorRT-LLM (medians per TP 1, 2, 4: {arg["vllm_seq_lo"]}-{arg["vllm_seq_hi"]} us on
  vLLM, {arg["trtllm_seq_lo"]}-{arg["trtllm_seq_hi"]} us on TensorRT-LLM). This vLLM is the V0 engine of 2024: the
  `benchmark_latency.py` Argonne ran (repository `vLLM/H100/`) passes `use_beam_search` to `SamplingParams`, which
  vLLM 0.6.3 removed (vllm-project/vllm issue 10605). No other shipped source ran that engine, so leaving `argonne`
  out leaves nothing to learn its host cost from; over every row but these {arg["rows"]}, LOSO throughput MAPE is
  {arg["without"]} % ({arg["without_tgi"]} % without `tgi`'s rows too, the other engine version only one source
  ran).
* `nvidia_dli` at TP 8 (all GPUs): the relative TPOT error grows with TP (median signed TPOT error at TP 8
  {signed("tpot", "nvidia_dli", tp=8)} %, at TP 1 {signed("tpot", "nvidia_dli", tp=1)} %). Not the link: on the
  Llama-2-70B rows (the only model run at TP > 1),
  the measured TPOT minus the raw roofline's, at the same GPU, precision, batch and lengths, does not grow with TP:
  {gap["tp2"]} ms at TP 2, {gap["tp4"]} ms at TP 4 and {gap["tp8"]} ms at TP 8 (medians over batches >= 64, {gap["n"]}
  configurations run at all three), while the modelled all-reduce time per step grows from {gap["ar2"]} to
  {gap["ar8"]} ms: a per-sequence cost that tensor parallelism does not shrink, larger than the fitted
  `beta_per_sequence_ms` ({gap["per_seq_us"]} us per sequence at batch >= 64, against the fitted
  {per_seq["trtllm"]:.1f} us), on a step that does shrink.
  A per-hop all-reduce latency (2(tp-1) x latency, `benchmarks/fit_links.py --per-hop`) was fitted and not kept:
  NVLink rows {hop["nvlink"]["mape_fitted_link_pct"]} % against {links["nvlink"]["mape_fitted_link_pct"]} %, PCIe
  rows {hop["pcie"]["mape_fitted_link_pct"]} % against {links["pcie"]["mape_fitted_link_pct"]} % with one latency per
  all-reduce.
* `aiconfigurator` TPOT (serving) is predicted too slow (LOSO median signed error
  {signed("tpot", "aiconfigurator", engine="vllm")} % on vLLM, {signed("tpot", "aiconfigurator", engine="trtllm")} %
  on TensorRT-LLM; in sample {signed_in("tpot", "aiconfigurator", "vllm")} % and
  {signed_in("tpot", "aiconfigurator", "trtllm")} %). Serving rows are scored as `infersave predict` composes them:
  each phase calibrated first, then the stretch, queue and wait from those times
  (`solver/performance/measurements.py::serving_calibrated`); the raw stretch times the calibrated step, as they were
  scored before, is an ablation row. The prefill token budget is not the cause: the longest prompt of these rows
  ({aic["longest_prompt"]} tokens) fits vLLM's budget ({aic["vllm_budget"]}, `max_num_batched_tokens` of `vllm serve`
  on >= 70 GiB GPUs other than A100, vLLM `EngineArgs.get_batch_defaults`) and TensorRT-LLM's (`max_num_tokens`
  8192), so no prompt is split into chunks, and prefills that share one step hide under one decode step together,
  which lengthens the stretch rather than shortening it. What does not transfer are the engine overheads fitted on
  older versions: the vLLM Llama-3.1-8B rows (vLLM 0.12, {aic["vllm_8b_rows"]} rows, median signed
  {aic["vllm_8b_signed"]} %, other rows {aic["other_signed"]} %) take vLLM's decode overheads from the `argonne`
  static rows; on TensorRT-LLM H100 at concurrency 8 the raw decode step is off the measured TPOT by
  {aic["trt_c8_raw_step"]:+} % and the step calibrated without `aiconfigurator` by {aic["trt_c8_cal_step"]:+} %, from
  the TensorRT-LLM 0.9.0 overheads of `nvidia_dli` ({aic["trt_layer_us"]} us per layer, {aic["trt_seq_us"]} us per
  sequence per step) that TensorRT-LLM 1.0 no longer has.
* Per-sequence decode cost (`beta_per_sequence_ms`, fitted per engine with a ridge toward 0 of
  {calibration.SEQ_PRIOR_SCALE_MS * 1e3:.0f} us): {per_seq["trtllm"]:.1f} us per sequence per step for TensorRT-LLM,
  {per_seq["vllm"]:.1f} us for vLLM, {per_seq["tgi"]:.1f} us for TGI. It is host-side work (scheduling, sampling,
  streaming) that does not shrink with tensor parallelism; without it (ablations)
  {no_seq_text}.
  The `argonne` vLLM rows at TP 2-4 still carry the throughput error: their step grows with the batch (median
  signed throughput error at TP 4 {signed("throughput", "argonne", tp=4, engine="vllm")} %, at TP 1
  {signed("throughput", "argonne", tp=1, engine="vllm")} %) faster than the newer vLLM of `aiconfigurator`, the only
  vLLM source left when `argonne` is out.

## Per source

{markdown_table(tables["by_source"])}

## Per engine and GPU

{markdown_table(tables["by_engine_gpu"])}

## The shipped profiles (measured GPUs)

`alpha >= 0.8` in both phases keeps achieved fractions at most 1 (`flops_fraction` = 0.73 / alpha_prefill,
`bw_fraction` = 0.8 / alpha_decode); `pooled` lists phases that took their class's alpha (too few rows, or only
end-to-end times). Every GPU of `instances/gpus.csv` has an entry in each profile (`instances/calibration/*.yaml`,
field `source` says fitted, pooled, raised or capped to keep datasheet order).

{markdown_table(profiles_table(profiles))}

## Error bands (for `predict` and `search.slo_confidence`)

Quantiles of measured / predicted over the LOSO residuals per engine, metric and GPU class
(`instances/calibration/error_bands.yaml`; a group with fewer than {uncertainty.MIN_BAND_ROWS} rows takes the level
named in `from`). `search.slo_confidence: 0.9` multiplies every candidate's TTFT, TPOT and end-to-end time by the p90 of
its group before any rule is checked.

{markdown_table(band_rows)}

## Offload: per-direction host-link bandwidth

No shipped measurement offloads the KV cache without also offloading weights (FlexGen's OPT-30B/175B policies
offload weights, which the model does not represent), so the per-direction constants (FlexGen's fitted T4 values:
CPU->GPU 0.879 of nominal, GPU->CPU KV writes 0.066, hidden states 0.329; `solver/performance/latency.py`) are not
validated here. Their effect, OPT-2.7B, batch 32, 512 + 32 tokens, raw roofline, copy mode:

{markdown_table(offload_table())}

"""
    if abl is not None:
        text += f"""## Ablations (LOSO MAPE per metric, each a full cross-validation)

{markdown_table(abl)}

The fitted PCIe link constants come from the `nvidia_dli` L40S rows (`benchmarks/fit_links.py`), so that source's
LOSO figure is not fully out of sample for its TP > 1 L40S rows; the datasheet-link row shows the difference.

Element-wise activation traffic (`latency.ELEMENTWISE_PHASES`, both phases as shipped): the same kernels run in both
phases, so both or neither. It lowers the TTFT error most (only `nvidia_dli` measures static TTFT, so its LOSO TTFT is
the raw prefill with a pooled alpha). Before the source offsets it raised the LOSO TPOT error and was not charged;
with them it raises no leave-one-source-out figure (ablation row without it), so it is charged. Decode steps alone:
charging one phase only has no physical reason, so that is not kept.

"""
    text += """## Other evidence kept from earlier reports

* Effective bandwidth of GDDR parts from llama.cpp batch-1 decode (`shared/data/llamacpp_gpu_benchmarks_xiongjiedai`,
  F16 Llama-3-8B, tg512 x weight bytes / datasheet bandwidth):

"""
    text += (markdown_table(gddr) if gddr is not None else "  (shared/data not present: table skipped)") + "\n"
    for block in kept:
        text += "\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    print(json.dumps(head, indent=1))


if __name__ == "__main__":
    main()
