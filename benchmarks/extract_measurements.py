"""Rebuild instances/measurements/*.csv from the public data in ../shared/data (see PROVENANCE.md there).

Run: python benchmarks/extract_measurements.py [--data /work/shared/data]

Every output row is in the measurement-table schema of solver/performance/calibration.py.
Rows whose batch does not fit in
GPU memory by the model's memory budget (the engine then runs the batch in waves or preempts, a regime a
static-batch model does not describe) are dropped and counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from solver.data.models import get_model
from solver.performance.calibration import check_measurements
from solver.performance.measurements import measurement_hardware
from solver.performance.model import predict_frame

OUT = Path(__file__).resolve().parents[1] / "instances" / "measurements"

ARGONNE_MODELS = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "meta-llama/Meta-Llama-3-70B": "llama-3.1-70b",  # same config dims as Llama-3.1-70B (see PROVENANCE.md)
    "mistralai/Mistral-7B-v0.1": "mistral-7b",
    "Qwen/Qwen2-7B": "qwen2-7b",
    "Qwen/Qwen2-72B": "qwen2.5-72b",  # same config dims as Qwen2.5-72B (see PROVENANCE.md)
    "EleutherAI/gpt-j-6b": "gpt-j-6b",
    "facebook/opt-6.7b": "opt-6.7b",
}
ARGONNE_GPUS = {"Nvidia A100 GPU": "A100", "Nvidia H100 GPU": "H100"}
ARGONNE_ENGINES = {"vLLM": "vllm", "TensorRT-LLM": "trtllm"}
AICONF_MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
}
AICONF_GPUS = {"h100_sxm": "H100", "h200_sxm": "H200"}
DLI_MODELS = {
    "LLaMA v2 7B": "llama-2-7b",
    "LLaMA v2 13B": "llama-2-13b",
    "LLaMA v2 70B": "llama-2-70b",
    "Mistral 7B": "mistral-7b",
    "GPTJ 6B": "gpt-j-6b",
}
"""Dense models of the DLI table with a card (Falcon 180B has none; Mixtral 8x7B is mixture-of-experts)."""
DLI_GPUS = {"H100 80GB HBM3": "H100", "H200 141GB HBM3": "H200", "A100-SXM4-80GB": "A100-80GB", "L40S": "L40S"}
"""DLI GPUs with a row in instances/gpus.csv (H100 NVL, GH200 and L40 have none)."""
DLI_DTYPES = {"FP8": "fp8", "Mixed": "fp16"}
TGI_GPUS = {"ml.g5.2xlarge": "A10G", "ml.g5.12xlarge": "A10G", "ml.g5.48xlarge": "A10G", "ml.p4d.24xlarge": "A100"}
COLUMNS = [
    "dataset",
    "source_row",
    "gpu",
    "model",
    "tp",
    "dtype",
    "kv_dtype",
    "engine",
    "batching",
    "batch",
    "input",
    "output",
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
]
OPTIONAL_COLUMNS = ["arrivals"]
"""Written only by the sources that set them (``arrivals``: the closed-loop pattern of a serving benchmark)."""


def argonne(data: Path) -> pd.DataFrame:
    """Argonne LLM-Inference-Bench rows (A100/H100, vLLM/TRT-LLM) in the measurement schema."""
    raw = pd.read_csv(data / "argonne_llm_inference_bench" / "All_results.csv")
    keep = raw["Hardware"].isin(list(ARGONNE_GPUS)) & raw["Framework"].isin(list(ARGONNE_ENGINES))
    keep &= raw["Model"].isin(list(ARGONNE_MODELS))
    sel = raw[keep]
    n = sel["Input Output Length"].astype(int)
    return pd.DataFrame(
        {
            "dataset": "argonne_" + sel["Framework"].map(ARGONNE_ENGINES),
            "source_row": sel.index + 2,
            "gpu": sel["Hardware"].map(ARGONNE_GPUS),
            "model": sel["Model"].map(ARGONNE_MODELS),
            "tp": sel["Num of Hardware"].astype(int),
            "dtype": "fp16",
            "kv_dtype": "fp16",
            "engine": sel["Framework"].map(ARGONNE_ENGINES),
            "batching": "static",
            "batch": sel["Batch Size"].astype(int),
            "input": n,
            "output": n,
            "ttft_ms": np.nan,
            "tpot_ms": np.nan,
            "e2e_s": sel["Latency"].astype(float),
        }
    )


def aiconfigurator(data: Path) -> pd.DataFrame:
    """aiconfigurator silicon samples (aggregated serving, no attention DP, no PP) in the measurement schema."""
    raw = pd.read_csv(data / "aiconfigurator" / "silicon_sample.csv")
    keep = raw["system"].isin(list(AICONF_GPUS)) & (raw["mode"] == "agg") & raw["backend"].isin(["vllm", "trtllm"])
    keep &= raw["model_path"].isin(list(AICONF_MODELS))
    keep &= raw["attention_dp_size"].fillna(1).eq(1) & raw["pp_size"].fillna(1).eq(1)
    sel = raw[keep]
    dtype = sel["precision"].fillna("bf16").replace({"bf16": "bf16"})
    return pd.DataFrame(
        {
            "dataset": "aiconfigurator_" + sel["backend"],
            "source_row": sel.index + 2,
            "gpu": sel["system"].map(AICONF_GPUS),
            "model": sel["model_path"].map(AICONF_MODELS),
            "tp": sel["tp_size"].astype(int),
            "dtype": dtype,
            "kv_dtype": dtype,
            "engine": sel["backend"],
            "batching": "continuous",
            "arrivals": "burst",  # InferenceX's benchmark run, serving.BURST_WAVES
            "batch": sel["batch_size"].astype(int),
            "input": sel["isl"].astype(int),
            "output": sel["osl"].astype(int),
            "ttft_ms": sel["silicon_ttft_ms"].astype(float),
            "tpot_ms": sel["silicon_tpot_ms"].astype(float),
            "e2e_s": np.nan,
        }
    )


def tgi(data: Path) -> pd.DataFrame:
    """Hugging Face TGI SageMaker Llama-2 benchmark rows in the measurement schema."""
    raw = pd.read_csv(data / "hf_tgi_sagemaker_llama2" / "sagemaker.csv")
    sel = raw[raw["Instance"].isin(list(TGI_GPUS))]
    gptq = sel["quantization"].eq("gptq")
    return pd.DataFrame(
        {
            "dataset": "tgi_sagemaker",
            "source_row": sel.index + 2,
            "gpu": sel["Instance"].map(TGI_GPUS),
            "model": "llama-2-7b",
            "tp": sel["Tensor parallelism degree"].astype(int),
            "dtype": np.where(gptq, "int4", "fp16"),
            "kv_dtype": "fp16",
            "engine": "tgi",
            "batching": "continuous",
            "batch": sel["Virtual Users"].astype(int),
            "input": 10,
            "output": sel["generated_tokens per request"].astype(int),
            "ttft_ms": np.nan,
            "tpot_ms": sel["Latency (ms/token) avg"].astype(float),
            "e2e_s": np.nan,
        }
    )


def flexgen(data: Path) -> pd.DataFrame:
    """FlexGen's OPT-6.7B T4 throughput rows (README table and bench-suite policies) in the measurement schema."""
    readme = pd.read_csv(data / "flexgen" / "flexgen_t4_throughput_readme_table.csv")
    r = readme[(readme["system"] == "FlexGen") & (readme["model"] == "OPT-6.7B")]
    suite = pd.read_csv(data / "flexgen" / "flexgen_bench_suite_policies.csv")
    s = suite[(suite["suite"] == "6b7_1x1") & suite["throughput_tok_s_comment"].notna()]
    rows = []
    for idx, row in r.iterrows():
        b, n = int(row["effective_batch_size"]), int(row["gen_len"])
        rows.append(("readme", idx, b, int(row["prompt_len"]), n, b * n / float(row["generation_throughput_tok_s"])))
    for idx, row in s.iterrows():
        b, n = int(row["gpu_batch_size"]) * int(row["num_gpu_batches"]), int(row["gen_len"])
        rows.append(("bench_suite", idx, b, int(row["prompt_len"]), n, b * n / float(row["throughput_tok_s_comment"])))
    return pd.DataFrame(
        {
            "dataset": "flexgen_t4",
            "source_row": [int(x[1]) + 2 for x in rows],
            "gpu": "T4",
            "model": "opt-6.7b",
            "tp": 1,
            "dtype": "fp16",
            "kv_dtype": "fp16",
            "engine": "flexgen",
            "batching": "static",
            "batch": [x[2] for x in rows],
            "input": [x[3] for x in rows],
            "output": [x[4] for x in rows],
            "ttft_ms": np.nan,
            "tpot_ms": np.nan,
            "e2e_s": [x[5] for x in rows],
        }
    )


def nvidia_dli(data: Path) -> pd.DataFrame:
    """TensorRT-LLM 0.9.0 static-batch runs of the NVIDIA DLI table (dense models, GPUs in gpus.csv)."""
    raw = pd.read_csv(data / "nvidia_dli_trtllm_nim" / "trt_llm_0_9_0_dli.csv")
    keep = raw["GPU"].isin(list(DLI_GPUS)) & raw["Model"].isin(list(DLI_MODELS))
    keep &= raw["Pipeline Model Parallel Size"].eq(1) & raw["Tensor Model Parallel Size"].eq(raw["Number of GPUs"])
    keep &= raw["Latency (ms)"].notna() & raw["1st Token Latency (ms)"].notna()  # failed runs have no times
    sel = raw[keep]
    lengths = sel["Input/Output Lengths"].str.split(",", expand=True).astype(int)
    dtype = sel["Precision"].map(DLI_DTYPES)
    return pd.DataFrame(
        {
            "dataset": "nvidia_dli_trtllm",
            "source_row": sel.index + 2,
            "gpu": sel["GPU"].map(DLI_GPUS),
            "model": sel["Model"].map(DLI_MODELS),
            "tp": sel["Tensor Model Parallel Size"].astype(int),
            "dtype": dtype,
            "kv_dtype": dtype,
            "engine": "trtllm",
            "batching": "static",
            "batch": sel["Batch Size"].astype(int),
            "input": lengths[0],
            "output": lengths[1],
            "ttft_ms": sel["1st Token Latency (ms)"].astype(float),
            "tpot_ms": sel["Token-to-token Latency (ms)"].astype(float),
            "e2e_s": sel["Latency (ms)"].astype(float) / 1e3,
        }
    )


def drop_impossible(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows faster than streaming the weights once per output token at datasheet peak bandwidth."""
    from solver.data.gpus import get_gpu
    from solver.specs import DTYPE_BYTES

    bound = np.array(
        [
            r.output
            * get_model(r.model).num_params
            * DTYPE_BYTES[r.dtype]
            / (r.tp * get_gpu(r.gpu).memory_bandwidth_gb_per_s * 1e9)
            for r in frame.itertuples()
        ]
    )
    e2e = frame["e2e_s"].to_numpy(dtype=float)
    tpot = frame["tpot_ms"].to_numpy(dtype=float) * frame["output"].to_numpy(dtype=float) / 1e3
    fast = (e2e < bound) | (tpot < bound)
    return frame[~fast], int(fast.sum())


def drop_unfit(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows whose batch does not fit GPU memory without offload under the engine's memory budget."""
    keep = np.ones(len(frame), dtype=bool)
    for (model, engine, dtype, s, n), idx in frame.groupby(
        ["model", "engine", "dtype", "input", "output"]
    ).groups.items():
        rows = frame.loc[idx]
        grid = measurement_hardware(rows)
        grid["offload_fraction"] = 0.0
        pred = predict_frame(
            grid, get_model(model), input_tokens=int(s), output_tokens=int(n), dtype=dtype, engine=engine
        )
        keep[frame.index.get_indexer(idx)] = pred["fits"].to_numpy()
    return frame[keep], int((~keep).sum())


def main() -> None:
    """Extract every source into instances/measurements/NAME.csv and print what was kept and dropped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="/work/shared/data", type=Path)
    args = parser.parse_args()
    for name, fn in (
        ("argonne", argonne),
        ("aiconfigurator", aiconfigurator),
        ("tgi", tgi),
        ("flexgen", flexgen),
        ("nvidia_dli", nvidia_dli),
    ):
        raw = fn(args.data)
        optional = [c for c in OPTIONAL_COLUMNS if c in raw.columns]
        frame = raw[COLUMNS + optional].reset_index(drop=True)
        check_measurements(frame, field=name)
        fit, dropped = drop_unfit(frame)
        kept, impossible = drop_impossible(fit)
        kept.to_csv(OUT / f"{name}.csv", index=False, float_format="%.6g")
        print(
            f"{name}: {len(kept)} rows kept of {len(frame)}; dropped {dropped} (batch does not fit GPU memory), "
            f"{impossible} (faster than streaming the weights once per token at peak bandwidth)"
        )


if __name__ == "__main__":
    main()
