"""Fit the all-reduce cost per link type (NVLink, PCIe) on the tensor-parallel rows of the NVIDIA DLI table.

Run: PYTHONPATH=. python benchmarks/fit_links.py [--write] [--per-hop]

Model (solver/performance/latency.py): one all-reduce of x bytes over tp GPUs costs
``2 (tp-1)/tp · x / (link_gb_per_s · 1e9 · LINK_EFFICIENCY[link]) + ALLREDUCE_LATENCY_S[link]``, two per layer.

Fit, per link type, on the static TensorRT-LLM rows with tp > 1 of instances/measurements/nvidia_dli.csv
(TTFT and TPOT; L40S rows are PCIe, H100/H200/A100-80GB rows NVLink):

1. the model is evaluated three times with the link term switched: no all-reduce cost (``t0``), bandwidth term
   only at the datasheet bandwidth (``t0 + V``), latency term only at 1 s per all-reduce (``t0 + N``);
2. the CTCF of each (GPU, phase) comes from the hierarchical fit on the tp = 1 rows
   (:func:`solver.performance.calibration.fit_hierarchical`), so ``y ≈ alpha · (t0 + V / eff + N · lat) + beta``;
3. ``(y - beta) / alpha - t0 = V · (1 / eff) + N · lat`` is solved by non-negative least squares on relative
   errors for ``1 / eff`` and ``lat``.

Prints the fit, its rows and the MAPE of those rows with the datasheet link (eff 1, 20 us) and with the fitted one;
``--write`` stores them in benchmarks/results/link_fit.json (docs/performance.md cites it; the constants in
latency.py are that file's values, checked by tests/test_calibration_links.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

import solver.performance.latency as latency
from solver.data.gpus import get_gpu
from solver.performance.accuracy import shipped_measurements
from solver.performance.calibration import fit_hierarchical
from solver.performance.measurements import model_measurements

OUT = Path(__file__).resolve().parent / "results" / "link_fit.json"


def per_hop_allreduce_s(nbytes, tp, link_bytes_per_s, latency_s=0.0):  # type: ignore[no-untyped-def]
    """The variant evaluated and not kept: ``2 (tp-1)`` hops, each with the latency (``--per-hop``)."""
    t = 2.0 * (tp - 1.0) / tp * nbytes / link_bytes_per_s + 2.0 * (tp - 1.0) * latency_s
    return np.where(tp > 1.0, t, 0.0)


def _model(table: pd.DataFrame, eff: float, lat: float) -> pd.DataFrame:
    """Model ``table`` with the same link efficiency and latency for every link type."""
    saved = dict(latency.LINK_EFFICIENCY), dict(latency.ALLREDUCE_LATENCY_S)
    try:
        latency.LINK_EFFICIENCY.update({k: eff for k in latency.LINK_TYPES})
        latency.ALLREDUCE_LATENCY_S.update({k: lat for k in latency.LINK_TYPES})
        return model_measurements(table)
    finally:
        latency.LINK_EFFICIENCY.update(saved[0])
        latency.ALLREDUCE_LATENCY_S.update(saved[1])


def fit_links() -> dict[str, Any]:
    """Fit (efficiency, latency) per link type; returns the fit with its rows and errors."""
    table = shipped_measurements()
    table = table[(table["file"] == "nvidia_dli.csv")].reset_index(drop=True)
    base = _model(table, np.inf, 0.0)
    bw = _model(table, 1.0, 0.0)
    one_s = _model(table, np.inf, 1.0)
    single = base[base["tp"] == 1]
    fit = fit_hierarchical(single)
    out: dict[str, Any] = {"source": "instances/measurements/nvidia_dli.csv, static TensorRT-LLM 0.9.0, tp > 1"}
    link = np.array([get_gpu(str(g)).gpu_link for g in base["gpu"]])
    for kind in latency.LINK_TYPES:
        rows_a, rows_y, meas, t0s, alphas, betas = [], [], [], [], [], []
        sel = (base["tp"] > 1).to_numpy() & (link == kind)
        for phase, col, mcol in (("prefill", "ttft_ms", "ttft_model_ms"), ("decode", "tpot_ms", "tpot_model_ms")):
            for i in np.flatnonzero(sel):
                g = str(base["gpu"][i])
                a = fit["alpha"].get(("trtllm", g, phase))
                if a is None:
                    continue
                lay = float(base["num_layers"][i])
                b = fit["beta_ms"][("trtllm", phase)] + lay * fit["beta_per_layer_ms"][("trtllm", phase)]
                if phase == "decode":  # the engine's cost per sequence per decode step
                    b += float(base["batch"][i]) * fit["beta_per_sequence_ms"].get("trtllm", 0.0)
                y = float(base[col][i])
                t0 = float(base[mcol][i])
                v = float(bw[mcol][i]) - t0
                n = float(one_s[mcol][i]) - t0
                rows_a.append([v, n])
                rows_y.append((y - b) / a - t0)
                meas.append(y)
                t0s.append(t0)
                alphas.append(a)
                betas.append(b)
        if not rows_a:
            continue
        design = np.array(rows_a)
        target = np.array(rows_y)
        scale = np.array(meas) / np.array(alphas)  # relative errors of y
        coef, _ = nnls(design / scale[:, None], target / scale)
        inv_eff, lat_s = float(coef[0]), float(coef[1])  # N counts ms per second of latency
        eff = 1.0 / inv_eff if inv_eff > 0 else float("inf")
        al, be, t0a, m = np.array(alphas), np.array(betas), np.array(t0s), np.array(meas)

        def mape(inv_e: float, lat: float, al=al, be=be, t0a=t0a, design=design, m=m) -> float:
            pred = al * (t0a + design[:, 0] * inv_e + design[:, 1] * lat) + be
            return round(float(np.mean(np.abs(pred / m - 1.0)) * 100.0), 1)

        out[kind] = {
            "rows": len(m),
            "gpus": sorted({str(base["gpu"][i]) for i in np.flatnonzero(sel)}),
            "efficiency": round(eff, 4),
            "allreduce_latency_us": round(lat_s * 1e6, 2),
            "mape_datasheet_link_pct": mape(1.0, 2e-5),
            "mape_fitted_link_pct": mape(inv_eff, lat_s),
            "mape_no_allreduce_pct": mape(0.0, 0.0),
        }
    return out


def main() -> None:
    """Print the fit; with --write store it in benchmarks/results/link_fit.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--per-hop", action="store_true", help="fit the per-hop latency variant instead")
    args = parser.parse_args()
    out = OUT
    if args.per_hop:
        latency.allreduce_s = per_hop_allreduce_s
        out = OUT.with_name("link_fit_per_hop.json")
    result = fit_links()
    if args.per_hop:
        result["variant"] = "per-hop latency: 2 (tp-1) x latency per all-reduce (not kept)"
    print(json.dumps(result, indent=1))
    if args.write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
