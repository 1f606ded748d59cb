"""Memory: a used candidate must fit its GPUs and its host memory at its offload fraction."""

from __future__ import annotations

import pandas as pd

from formulations.model import FleetModel
from solver.specs import Scenario


def add_memory(fm: FleetModel, cands: pd.DataFrame, scenario: Scenario) -> None:
    """(2) ``G_c · y_c <= M^gpu_c`` and (3) ``O_c · y_c <= M^host_c`` for every candidate c.

    ``G_c`` = ``total_gpu_gib`` (weights + (1 − f_c)·KV + activations per GPU at ``f_c``), ``M^gpu_c`` =
    ``available_gpu_gib``; ``O_c`` = ``offloaded_kv_gib`` (= f_c · KV of the replica), ``M^host_c`` =
    ``host_available_gib`` (the replica's share of host memory). A row that breaks fixes ``y_c = 0``.
    """
    y = fm.family("y").index
    fm.lm.add_diagonal_rows("memory.gpu", [(y, fm.col("total_gpu_gib"))], hi=fm.col("available_gpu_gib"))
    fm.lm.add_diagonal_rows("memory.host", [(y, fm.col("offloaded_kv_gib"))], hi=fm.col("host_available_gib"))
