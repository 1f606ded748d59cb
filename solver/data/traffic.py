"""Request-size distributions: bucketing a trace into a size histogram (``workloads.*.trace``).

:mod:`solver.planning.classes` turns a workload's histogram into request classes. This module imports nothing
from :mod:`solver.specs` (specs reads traces through it). The rest of this docstring describes the classes.

A workload with a size distribution (``sizes`` or ``trace``, :class:`solver.specs.Workload`) is planned as one
*request class* per bucket: the bucket's share of the arrival rate (online) or of the requests (offline), sized
by the bucket's upper lengths. :func:`expand` returns the scenario with every workload replaced by its classes
(a workload without a distribution is its own single class, under its own name, so plans of such scenarios are
unchanged) and, per class, the workload it came from and its *sharing group*: the classes that may share
replicas of one configuration (``formulations/README.md``, "Shared replicas"): online classes of one model,
dtype and KV dtype (the engine is the scenario's), all buckets of a ``dedicated`` workload apart from the rest.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd


def log_edges(longest: int) -> list[int]:
    """Logarithmic bucket edges: powers of two from 1 up to the first one at or above ``longest``."""
    top = max(1, math.ceil(math.log2(max(1, longest))))
    return [2**k for k in range(top + 1)]


def bucket_trace(path: str, input_edges: list[int] | None = None, output_edges: list[int] | None = None) -> list[dict]:
    """Bucket a trace CSV into a size histogram (``sizes`` entries of a workload).

    Parameters
    ----------
    path
        CSV with columns ``input_tokens`` and ``output_tokens`` (positive integers; ``arrival_s`` and other
        columns are ignored).
    input_edges, output_edges
        Sorted bucket edges ``e_0 < e_1 < ...``: a length ``t`` falls in ``(e_{i-1}, e_i]`` (the first bucket is
        ``[1, e_0]``); lengths above the last edge get a last bucket up to the longest length. Default
        :func:`log_edges`.

    Returns
    -------
    list of dict
        One bucket per non-empty (input, output) cell: ``input_tokens`` and ``output_tokens`` as ``[lo, hi]``
        with ``hi`` the longest request seen in the cell (not the edge: the planner sizes a bucket by ``hi``),
        and ``share`` of the requests.

    Raises
    ------
    ValueError
        The file cannot be read, lacks a column, or holds a length that is not a positive integer.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"trace {path}: cannot be read as CSV ({exc.__class__.__name__})") from None
    for col in ("input_tokens", "output_tokens"):
        if col not in frame.columns:
            raise ValueError(f"trace {path}: column {col} is missing")
    if frame.empty:
        raise ValueError(f"trace {path}: has no requests")
    lengths = {}
    for col in ("input_tokens", "output_tokens"):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"trace {path}: row {row + 1} has {col} = {frame[col].iloc[row]!r}, not a positive integer"
            )
        lengths[col] = values.astype(np.int64)
    cells = []
    for col, given in (("input_tokens", input_edges), ("output_tokens", output_edges)):
        values = lengths[col]
        edges = list(given) if given else log_edges(int(values.max()))
        if edges[-1] < values.max():
            edges.append(int(values.max()))
        cells.append((np.searchsorted(np.asarray(edges), values, side="left"), edges))
    (i_in, e_in), (i_out, e_out) = cells
    table = pd.DataFrame({"a": i_in, "b": i_out, "i": lengths["input_tokens"], "o": lengths["output_tokens"]})
    grouped = table.groupby(["a", "b"], sort=True).agg(n=("i", "size"), i_hi=("i", "max"), o_hi=("o", "max"))
    total = float(len(table))
    out: list[dict[str, Any]] = []
    for key, i_hi, o_hi, count in zip(
        grouped.index.tolist(), grouped["i_hi"].tolist(), grouped["o_hi"].tolist(), grouped["n"].tolist(), strict=True
    ):
        a, b = int(key[0]), int(key[1])
        lo_in = 1 if a == 0 else e_in[a - 1] + 1
        lo_out = 1 if b == 0 else e_out[b - 1] + 1
        out.append(
            {
                "input_tokens": [min(lo_in, i_hi), i_hi],
                "output_tokens": [min(lo_out, o_hi), o_hi],
                "share": count / total,
            }
        )
    # shares of a finite trace add up to 1 up to float rounding; put the rounding on the largest bucket
    shares = [float(b["share"]) for b in out]
    big = shares.index(max(shares))
    out[big]["share"] = shares[big] + 1.0 - sum(shares)
    return out


def lognormal_histogram(
    mean_input: float,
    mean_output: float,
    sigma: float,
    input_edges: list[int],
    output_edges: list[int],
) -> list[dict[str, Any]]:
    """Return a size histogram of independent log-normal prompt and output lengths with the given means.

    Each length ``L`` is log-normal with ``E[L] = mean`` and log-standard-deviation ``sigma`` (so
    ``mu = ln(mean) - sigma² / 2``); bucket ``(e_{i-1}, e_i]`` (the first ``[1, e_0]``) gets its probability,
    and the tail above the last edge is folded into the last bucket, sized at the last edge (a truncation:
    choose the last edge near the model's context limit). Prompt and output lengths are taken independent.
    Returns ``sizes`` entries (ranges ``[lo, hi]``, shares adding up to 1; cells with a share below 1e-4 are
    dropped and the rest renormalised).
    """
    from math import erf, log, sqrt

    def cdf(x: float, mean: float) -> float:
        mu = log(mean) - sigma * sigma / 2.0
        return 0.5 * (1.0 + erf((log(x) - mu) / (sigma * sqrt(2.0))))

    def probs(edges: list[int], mean: float) -> list[float]:
        cuts = [0.0, *(cdf(e + 0.5, mean) for e in edges[:-1]), 1.0]
        return [b - a for a, b in itertools.pairwise(cuts)]

    p_in, p_out = probs(input_edges, mean_input), probs(output_edges, mean_output)
    cells = []
    for a, pa in enumerate(p_in):
        for b, pb in enumerate(p_out):
            if pa * pb >= 1e-4:
                lo_in = 1 if a == 0 else input_edges[a - 1] + 1
                lo_out = 1 if b == 0 else output_edges[b - 1] + 1
                cells.append(([lo_in, input_edges[a]], [lo_out, output_edges[b]], pa * pb))
    total = sum(c[2] for c in cells)
    shares = [round(s / total, 6) for _i, _o, s in cells]
    shares[-1] = round(1.0 - sum(shares[:-1]), 6)
    return [{"input_tokens": i, "output_tokens": o, "share": x} for (i, o, _s), x in zip(cells, shares, strict=True)]
