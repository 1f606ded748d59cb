"""Screening: InferSave's steps 1-3 (price filter, memory check, predicted TPS) for every instance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from solver.apps.recommend.task import Task, task_costs, task_of
from solver.data.catalog import load_catalog
from solver.data.gpus import get_gpu
from solver.errors import InputError
from solver.performance.memory import kv_head_share
from solver.planning.candidates import predict_workload
from solver.specs import Scenario
from solver.tolerances import PRICE_CAP_TOL_USD


# ---- screening: InferSave's steps 1-3 for every instance ------------------------------------------------
def _replica_tp(gpu_count: np.ndarray) -> np.ndarray:
    """One replica on all GPUs: the largest power of two dividing the GPU count (1 on a GPU slice)."""
    out = np.ones(len(gpu_count), dtype=np.int64)
    for i, g in enumerate(gpu_count):
        if g >= 1:
            n = round(g)
            out[i] = n & -n
    return out


def _cheapest_offers(task: Task) -> pd.DataFrame:
    """One offer per instance type: the cheapest of the scenario's regions and markets."""
    s = task.scenario
    cat = load_catalog(s.catalog).filter(regions=s.regions, instances=s.instances)
    off = cat.offers(s.markets, s.spot_price)
    if off.empty:
        raise InputError("markets", "no offer has a price in the chosen regions and markets")
    off = off.sort_values(["usd_per_hour", "instance_type", "region", "market"], kind="stable")
    return off.drop_duplicates("instance_type").reset_index(drop=True)


def screen(scenario: Scenario, *, allow_offload: bool = True) -> pd.DataFrame:
    """Evaluate every instance of the scenario as InferSave does, without choosing.

    Parameters
    ----------
    scenario
        One workload with one batch size (:func:`task_of`).
    allow_offload
        ``True``: use the smallest KV offload fraction that fits; ``False``: keep all KV on the GPU.

    Returns
    -------
    pandas.DataFrame
        One row per instance type (its cheapest offer): the offer, the :func:`~solver.performance.model.predict_frame`
        columns, ``peak_tflops``, the :func:`task_costs` columns (``task_hours``, ``billed_hours``,
        ``task_cost_usd``, ``effective_tps``, ``cost_efficiency``), ``meets_slo`` and ``reason`` (why the price
        filter or the memory check drops it; empty when it passes both).
    """
    task = task_of(scenario)
    s, w = task.scenario, task.workload
    off = _cheapest_offers(task)
    grid = off.assign(
        tp=_replica_tp(off["gpu_count"].to_numpy(dtype=float)),
        batch_size=task.batch_size,
        offload_fraction=np.nan if allow_offload else 0.0,
    )
    pred = predict_workload(grid, w, s, model=task.model, batching="static")
    pred["peak_tflops"] = [get_gpu(str(g)).fp16_tflops for g in pred["gpu"]]
    pred["reason"] = _reasons(pred, task, allow_offload)
    tps = pred["tps"].to_numpy(dtype=float)
    costs = task_costs(tps, pred["usd_per_hour"].to_numpy(dtype=float), task, s.billing)
    for key, values in costs.items():
        pred[key] = values
    slo = task.tps_slo
    pred["meets_slo"] = tps >= slo if slo is not None else np.isfinite(tps) & (tps > 0)
    return pred


def _reasons(pred: pd.DataFrame, task: Task, allow_offload: bool) -> list[str]:
    """Why each instance fails the price filter or the memory check ('' when it passes)."""
    p_max = task.max_price_usd_per_hour
    layers = task.model.num_layers
    out = []
    for r in pred.to_dict("records"):
        base = r["weights_gib"] + r["activations_gib"]
        room = r["available_gpu_gib"] - base
        kv_gpu_full = r["kv_total_gib"] * float(kv_head_share(task.model, r["tp"]))
        layer = kv_gpu_full / layers
        f_min = r["min_offload_fraction"]
        if p_max is not None and r["usd_per_hour"] > p_max + PRICE_CAP_TOL_USD:
            out.append(f"costs ${r['usd_per_hour']:.4g}/h, above P_max ${p_max:.4g}/h")
        elif room <= 0:
            out.append(
                f"cannot hold the weights: weights and activations need {base:.2f} GiB of the "
                f"{r['available_gpu_gib']:.2f} GiB usable per GPU"
            )
        elif room < layer or not math.isfinite(f_min):
            out.append(
                f"cannot hold one layer's KV cache ({layer:.3f} GiB) next to the weights: {room:.3f} GiB left per GPU"
            )
        elif not allow_offload and f_min > 0:
            out.append(
                f"its KV cache ({kv_gpu_full:.2f} GiB) does not fit in GPU memory without offloading "
                f"{f_min:.1%} of it; this policy keeps all KV on the GPU"
            )
        elif not r["fits"]:
            out.append(
                f"host memory too small for the offloaded KV: {r['offloaded_kv_gib']:.2f} GiB needed, "
                f"{r['host_available_gib']:.2f} GiB available"
            )
        else:
            out.append("")
    return out
