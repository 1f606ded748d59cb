"""Accuracy of the continuous-batching serving model on measured serving runs, per concurrency band.

Run: python benchmarks/serving_accuracy.py [--data DIR] [--no-write]

Rows:
* NIM (TensorRT-LLM backend, genai-perf at fixed concurrency 1-250; Llama-3 8B/70B, H100 and A100-80GB):
  ``shared/data/nvidia_dli_trtllm_nim/nim.csv``, mean TTFT and mean inter-token latency (ITL), modelled as
  engine ``trtllm`` (``instances/engines.csv``: NIM runs the TensorRT-LLM backend), TP = GPUs of the replica.
* TGI 1.0.3 on SageMaker (Llama-2-7B, A10G and A100, 1-20 virtual users): ``instances/measurements/tgi.csv``,
  ITL only (the runs record no TTFT).
* aiconfigurator silicon rows (vLLM and TensorRT-LLM at concurrency 8-128 on H100/H200):
  ``instances/measurements/aiconfigurator.csv``, TTFT and TPOT.

Each row is modelled by :func:`solver.performance.model.predict_frame` at concurrency = the measured concurrency
(closed loop, ``batching="continuous"``) on a bare machine of ``tp`` GPUs, three ways: the serving model with the
engine's shipped CTCF profile ("serving, shipped CTCF"), the serving model on the uncalibrated roofline ("serving,
raw"), and the static-batch model with the shipped profile ("static, shipped CTCF", what ``predict`` used before).

Saturation (NIM only, the one source with request throughput): per group of rows sharing model, GPU, GPUs,
precision and lengths, the knee is the smallest concurrency whose measured request throughput reaches 90 % of the
group's largest; rows below the knee are "below saturation". TGI and aiconfigurator rows have no throughput
plateau to test and are all counted. The target of issue 12 is serving TTFT MAPE <= 30 % below saturation.

Writes the section between ``<!-- serving:begin -->`` and ``<!-- serving:end -->`` of docs/accuracy.md (appended
at the end when the markers are missing); the rest of that page belongs to benchmarks/accuracy_report.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from solver.data.models import get_model
from solver.performance.ctcf import IDENTITY, shipped_profile
from solver.performance.measurements import measurement_hardware
from solver.performance.memory import engine_memory
from solver.performance.model import predict_frame

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "accuracy.md"
BEGIN, END = "<!-- serving:begin -->", "<!-- serving:end -->"
NIM_GPUS = {"H100_80GB_HBM3": "H100", "A100-SXM4-80GB": "A100-80GB"}
NIM_MODELS = {"meta-llama3-8b-instruct": "llama-3-8b", "meta-llama3-70b-instruct": "llama-3.1-70b"}
"""Llama-3-70B is not a shipped model card; Llama-3.1-70B has the same layers, heads, widths and vocabulary."""
BANDS = ((1, 2), (5, 10), (25, 50), (100, 250))
KNEE_SHARE = 0.9


def _data_dir(given: str | None) -> Path:
    """The shared data folder: ``--data``, else ``../shared/data`` above the checkout or its parent."""
    if given:
        return Path(given)
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    raise SystemExit("error: --data: shared/data not found; pass --data DIR")


def nim_rows(data: Path) -> pd.DataFrame:
    """NIM serving runs as measurement rows (ms), with the saturation flag of the module docstring."""
    raw = pd.read_csv(data / "nvidia_dli_trtllm_nim" / "nim.csv")
    dtype = raw["task_inputs-precision"].str.lower()
    rows = pd.DataFrame(
        {
            "dataset": "nim",
            "gpu": raw["task_inputs-GPU"].map(NIM_GPUS),
            "model": raw["task_inputs-model"].map(NIM_MODELS),
            "tp": raw["task_inputs-n_gpus"].astype(int),
            "dtype": dtype,
            "kv_dtype": np.where(dtype == "fp8", "fp8", dtype),
            "engine": "trtllm",
            "batch": raw["input_config-concurrency"].astype(int),
            "input": raw["input_config-synthetic_input_tokens_mean"].astype(int),
            "output": raw["input_config-output_tokens_mean"].astype(int),
            "ttft_ms": raw["time_to_first_token-avg"] / 1e6,
            "tpot_ms": raw["inter_token_latency-avg"] / 1e6,
            "throughput_rps": raw["request_throughput-avg"],
        }
    )
    keys = ["model", "gpu", "tp", "dtype", "input", "output"]
    peak = rows.groupby(keys)["throughput_rps"].transform("max")
    saturated = rows["throughput_rps"] >= KNEE_SHARE * peak
    knee = rows["batch"].where(saturated).groupby([rows[k] for k in keys]).transform("min")
    rows["below_saturation"] = rows["batch"] < knee
    return rows


def shipped_rows() -> pd.DataFrame:
    """The continuous-batching rows of the shipped measurement tables (TGI SageMaker, aiconfigurator)."""
    parts = []
    for name in ("tgi.csv", "aiconfigurator.csv"):
        t = pd.read_csv(ROOT / "instances" / "measurements" / name)
        parts.append(t[t["batching"] == "continuous"])
    rows = pd.concat(parts, ignore_index=True)
    rows["below_saturation"] = True
    rows["dtype"] = rows["dtype"].fillna("")
    rows["kv_dtype"] = rows["kv_dtype"].fillna("")
    return rows


def model_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Add the three predictions (TTFT and TPOT, ms) of the module docstring to every row."""
    out = rows.copy()
    for col in ("ttft_serving", "tpot_serving", "ttft_raw", "tpot_raw", "ttft_spread", "ttft_static", "tpot_static"):
        out[col] = np.nan
    keys = ["model", "engine", "dtype", "kv_dtype", "input", "output"]
    for key, part in out.groupby(keys, sort=False):
        model_name, engine, dtype, kv_dtype, s, n = key
        model = get_model(str(model_name), field="model")
        frame = measurement_hardware(part)
        common = dict(
            input_tokens=int(s),
            output_tokens=int(n),
            dtype=str(dtype) or None,
            kv_dtype=str(kv_dtype) or None,
            engine=str(engine),
        )
        prof = shipped_profile(str(engine))
        serving = predict_frame(frame, model, profile=prof, batching="continuous", **common)
        raw = predict_frame(frame, model, profile=IDENTITY, batching="continuous", **common)
        spread = predict_frame(frame, model, profile=IDENTITY, batching="continuous", arrivals="spread", **common)
        static = predict_frame(frame, model, profile=prof, batching="static", **common)
        out.loc[part.index, "ttft_spread"] = spread["ttft_ms"].to_numpy()
        out.loc[part.index, "ttft_serving"] = serving["ttft_ms"].to_numpy()
        out.loc[part.index, "tpot_serving"] = serving["tpot_ms"].to_numpy()
        out.loc[part.index, "ttft_raw"] = raw["ttft_ms"].to_numpy()
        out.loc[part.index, "tpot_raw"] = raw["tpot_ms"].to_numpy()
        out.loc[part.index, "ttft_static"] = static["ttft_ms"].to_numpy()
        out.loc[part.index, "tpot_static"] = static["tpot_ms"].to_numpy()
        out.loc[part.index, "running"] = serving["running"].to_numpy()
    return out


def _mape(pred: pd.Series, meas: pd.Series) -> float:
    ok = meas.notna() & pred.notna() & (meas > 0)
    if not ok.any():
        return float("nan")
    return float((100.0 * (pred[ok] - meas[ok]).abs() / meas[ok]).mean())


def _band(c: int) -> str:
    for lo, hi in BANDS:
        if lo <= c <= hi:
            return f"{lo}-{hi}"
    return f"{c}"


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """MAPE per source, concurrency band and saturation, for TTFT and TPOT/ITL, three ways."""
    rows = rows.assign(
        source=np.where(rows["dataset"] == "nim", "NIM (trtllm)", rows["dataset"].astype(str)),
        band=rows["batch"].map(_band),
    )
    records = []
    for (source, below, band), g in rows.groupby(["source", "below_saturation", "band"], sort=True):
        records.append(
            {
                "source": source,
                "below saturation": "yes" if below else "no",
                "concurrency": band,
                "rows": len(g),
                "TTFT serving": _mape(g["ttft_serving"], g["ttft_ms"]),
                "TTFT raw": _mape(g["ttft_raw"], g["ttft_ms"]),
                "TTFT spread raw": _mape(g["ttft_spread"], g["ttft_ms"]),
                "TTFT static": _mape(g["ttft_static"], g["ttft_ms"]),
                "ITL serving": _mape(g["tpot_serving"], g["tpot_ms"]),
                "ITL raw": _mape(g["tpot_raw"], g["tpot_ms"]),
                "ITL static": _mape(g["tpot_static"], g["tpot_ms"]),
            }
        )
    order = {b: i for i, b in enumerate(f"{lo}-{hi}" for lo, hi in BANDS)}
    frame = pd.DataFrame(records)
    frame["_o"] = frame["concurrency"].map(order).fillna(99)
    return frame.sort_values(["source", "below saturation", "_o"], ascending=[True, False, True]).drop(columns="_o")


def headline(rows: pd.DataFrame) -> dict[str, float]:
    """Pooled MAPEs below saturation (every source), the numbers the target is judged on."""
    below = rows[rows["below_saturation"]]
    return {
        "ttft_serving": _mape(below["ttft_serving"], below["ttft_ms"]),
        "ttft_raw": _mape(below["ttft_raw"], below["ttft_ms"]),
        "ttft_static": _mape(below["ttft_static"], below["ttft_ms"]),
        "ttft_spread": _mape(below["ttft_spread"], below["ttft_ms"]),
        "itl_serving": _mape(below["tpot_serving"], below["tpot_ms"]),
        "itl_raw": _mape(below["tpot_raw"], below["tpot_ms"]),
        "ttft_rows": int(below["ttft_ms"].notna().sum()),
        "itl_rows": int(below["tpot_ms"].notna().sum()),
    }


def _bias(pred: pd.Series, meas: pd.Series) -> float:
    ok = meas.notna() & pred.notna() & (meas > 0)
    return float((100.0 * (pred[ok] - meas[ok]) / meas[ok]).mean()) if ok.any() else float("nan")


def why(rows: pd.DataFrame) -> str:
    """Where the error sits, with the signed mean errors (%) that show it."""
    below = rows[rows["below_saturation"]]
    nim = below[below["dataset"] == "nim"]
    one = nim[nim["batch"] == 1]
    busy = nim[nim["batch"] >= 100]
    tgi = below[below["dataset"] == "tgi_sagemaker"]
    aic = below[below["dataset"].astype(str).str.startswith("aiconfigurator") & (below["batch"] >= 32)]
    budget = aic["engine"].map(lambda e: engine_memory(str(e)).max_prefill_tokens or 1e18).astype(float)
    k = np.minimum(aic["batch"], np.maximum(1.0, np.floor(budget / aic["input"])))
    ratio = aic["ttft_ms"] / (aic["ttft_raw"] * 2.0 / (aic["batch"] / k + 1.0))  # measured over one raw pass
    return (
        "Where the error is (signed mean error, % of measured; below saturation):\n\n"
        f"* **The shipped CTCF, not the serving model, carries most of the TTFT error.** On NIM at concurrency 1 "
        f"the raw roofline is {_bias(one['ttft_raw'], one['ttft_ms']):+.0f} % (genai-perf's TTFT also counts the "
        f"HTTP front end and tokenisation, which the roofline does not model), the shipped `trtllm` profile "
        f"{_bias(one['ttft_serving'], one['ttft_ms']):+.0f} %: its prefill CTCF was fitted on serving TTFTs that "
        "include queueing, and the serving model now adds the queueing itself. Refitting CTCF on the phase times "
        "(`prefill_model_ms`, `step_model_ms` of `predict_frame`) is the calibration work of issue 12 item 1.\n"
        f"* **aiconfigurator rows at concurrency >= 32** ({len(aic)} rows): cohort arrivals "
        f"{_bias(aic['ttft_raw'], aic['ttft_ms']):+.0f} %, spread arrivals "
        f"{_bias(aic['ttft_spread'], aic['ttft_ms']):+.0f} %. Their TTFT is {ratio.median():.1f}x one prefill pass "
        f"of the engine's token budget (median; quartiles {ratio.quantile(0.25):.1f}-{ratio.quantile(0.75):.1f}x), "
        "between one pass and the cohort's (m/k + 1)/2 passes: the requests of those runs only partly moved "
        "in cohorts, unlike NIM's fixed-length genai-perf runs. How that harness issued requests is not recorded "
        "in the shipped data, so the model cannot tell the two apart from the configuration.\n"
        f"* **ITL at concurrency 100-250 on NIM**: raw {_bias(busy['tpot_raw'], busy['tpot_ms']):+.0f} %. The "
        "decode step grows with the running batch faster than the bytes it reads: likely a per-sequence cost per step "
        "(sampling, streaming) that the roofline lacks (an engine overhead for the calibration, item 1).\n"
        f"* TGI rows: ITL only (the runs record no TTFT); raw {_bias(tgi['tpot_raw'], tgi['tpot_ms']):+.0f} % "
        "(TGI 1.0.3's per-token cost on these 10-token prompts is far above the roofline), shipped `tgi` CTCF "
        f"{_bias(tgi['tpot_serving'], tgi['tpot_ms']):+.0f} % (in sample: that profile was fitted on these rows).\n"
        "* The A10G rows at concurrency 64 quoted in issue 12 (vLLM 0.4, TGI 2.0, NIM on g5; 53-62 ms TPOT) are not "
        "in the shipped data; `tests/test_serving.py` checks that at that concurrency the model keeps the KV cache "
        "on the GPU, queues the excess and predicts a TPOT below the 100 ms that offloading gave.\n"
    )


def worst(rows: pd.DataFrame, k: int = 8) -> pd.DataFrame:
    """The below-saturation rows with the largest TTFT error of the serving model (shipped CTCF)."""
    below = rows[rows["below_saturation"] & rows["ttft_ms"].notna()].copy()
    below["ttft_err_pct"] = 100.0 * (below["ttft_serving"] - below["ttft_ms"]) / below["ttft_ms"]
    below["ttft_raw_err_pct"] = 100.0 * (below["ttft_raw"] - below["ttft_ms"]) / below["ttft_ms"]
    cols = ["dataset", "model", "gpu", "tp", "dtype", "input", "output", "batch", "ttft_ms", "ttft_serving"]
    cols += ["ttft_err_pct", "ttft_raw_err_pct"]
    return below.reindex(below["ttft_err_pct"].abs().sort_values(ascending=False).index)[cols].head(k)


def _md(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = ""
    for rec in frame.itertuples(index=False):
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in rec]
        body += "| " + " | ".join(c if c != "nan" else "-" for c in cells) + " |\n"
    return head + body


def section(rows: pd.DataFrame) -> str:
    """The markdown section written into docs/accuracy.md."""
    h = headline(rows)
    met = "met" if h["ttft_serving"] <= 30.0 else "not met"
    return (
        f"{BEGIN}\n"
        "## Serving under continuous batching (`python benchmarks/serving_accuracy.py`)\n\n"
        "MAPE (%) of mean TTFT and mean inter-token latency (ITL = TPOT) of the serving model "
        "(`solver/performance/serving.py`) against measured serving runs at a fixed concurrency: NIM "
        "(TensorRT-LLM backend, `shared/data/nvidia_dli_trtllm_nim/nim.csv`), TGI on SageMaker and the "
        "aiconfigurator silicon rows (`instances/measurements/`). *serving* = serving model with the engine's "
        "shipped CTCF; *raw* = serving model on the uncalibrated roofline; *static* = the static-batch model "
        "with the shipped CTCF. None of these rows was used to fit the serving model (it has no fitted "
        "constant); the shipped CTCF profiles were fitted on the TGI and aiconfigurator rows, not on NIM.\n\n"
        f"Pooled below saturation: TTFT serving **{h['ttft_serving']:.1f} %** (raw {h['ttft_raw']:.1f} %, "
        f"static {h['ttft_static']:.1f} %; {h['ttft_rows']} rows), ITL serving **{h['itl_serving']:.1f} %** "
        f"(raw {h['itl_raw']:.1f} %; {h['itl_rows']} rows). Target serving TTFT <= 30 % below saturation: "
        f"**{met}**.\n\n"
        + _md(table(rows))
        + "\n"
        + why(rows)
        + "\nLargest TTFT errors below saturation (serving model, shipped CTCF):\n\n"
        + _md(worst(rows))
        + f"\n{END}\n"
    )


def write(text: str) -> None:
    """Replace the marked section of docs/accuracy.md, or append it at the end."""
    doc = DOC.read_text() if DOC.exists() else ""
    if BEGIN in doc and END in doc:
        before, rest = doc.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        doc = before + text.rstrip("\n") + after
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc)


def main() -> None:
    """Model every serving row, print the tables and write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="shared/data folder (default: found above the checkout)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = pd.concat([nim_rows(_data_dir(args.data)), shipped_rows()], ignore_index=True)
    rows = model_rows(rows)
    text = section(rows)
    print(text)
    if not args.no_write:
        write(text)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
