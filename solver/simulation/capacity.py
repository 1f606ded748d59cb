"""Capacity curves: the request rate a candidate sustains while meeting a *percentile* latency SLO.

The MILP sees one constant per candidate, its rate ``r_c = b / E2E`` (Little's law at ``b`` running
sequences). Under random arrivals requests wait for a batch slot, so a p99 TTFT of 500 ms is met at a lower
rate than the mean TTFT is. Before the MILP is built (``solver.plan(..., verify=True)``, what ``infersave plan``
does by default), every candidate of a workload with a percentile TTFT or E2E SLO gets the rate read off its
*capacity curve* (rate against percentile latency) where the curve crosses the SLO; the MILP still sees
constants.

The curve is a queueing approximation, checked against the simulator in ``tests/test_capacity_curve.py``:

* a replica is ``c = b`` servers (batch slots), each holding a request for ``S = E2E`` seconds (the
  candidate's own ``e2e_s``), so ``c / S = r_c``;
* the wait for a slot is that of an M/M/c queue (Erlang C, ``P(W > 0) = C(c, a)``, ``a = λ S``) with the
  Allen-Cunneen factor ``(c_a² + c_s²) / 2`` for general arrivals and service (``c_a`` the workload's
  ``arrival.cv``, :data:`SERVICE_CV2` for the service times: one class's lengths are fixed, so its service
  time varies little), and an exponential tail: ``P(W > t) = C · exp(-t (c/S - λ) · 2 / (c_a² + c_s²))``;
* the percentile latency is the candidate's own latency plus the wait's percentile: ``TTFT_p = ttft +
  W_p``, ``E2E_p = e2e + W_p`` with ``W_p = max(0, ln(C / (1 - p)) / θ)``;
* the sustainable rate at the percentile is the largest ``λ ≤ r_c`` with every percentile SLO met (bisection,
  :data:`BISECTION_STEPS`, vectorised over the candidates). Its constant for the MILP is
  ``min(r_c, λ_p / u)``: at the utilisation cap ``u`` a row's load is at most ``λ_p`` per replica.

TPOT percentiles are not on the curve (a request's TPOT depends on how many share its batch, at most ``b``,
which the per-candidate TPOT at batch ``b`` already bounds); the simulation of the plan checks them. The curve is
a function of each candidate's own columns (configuration, lengths) and of the arrival process and SLO, computed
once per plan in closed form: microseconds per candidate, so there is nothing to gain from a cache across plans
(the simulator's points, :func:`solver.simulation.verify.sustainable_rate`, are cached).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from solver.specs import Scenario

SERVICE_CV2 = 0.0
"""Squared coefficient of variation of a slot's holding time (fixed lengths per class: deterministic)."""
BISECTION_STEPS = 30
"""Bisection steps on the rate (the rate is known to ``2^-30`` of the candidate's)."""
SIGMA_STEPS = 50
"""Bisection steps of :func:`gi_sigma` (σ to 2^-50)."""
COLUMN = "rate_model_rps"
"""Column that keeps the candidate's mean-model rate when :func:`apply` lowers ``rate_rps``."""


def erlang_c(servers: npt.ArrayLike, offered: npt.ArrayLike) -> np.ndarray:
    """Probability that an arrival waits in an M/M/c queue (Erlang C), elementwise; 1 at or above saturation.

    ``servers`` are positive integers ``c``, ``offered`` the load ``a = λ S`` in Erlangs. Erlang B by its stable
    recursion ``B_k = a B_{k-1} / (k + a B_{k-1})``, then ``C = B / (1 - ρ (1 - B))`` with ``ρ = a / c``.
    """
    c = np.asarray(servers, dtype=np.int64)
    a = np.asarray(offered, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    b = np.ones(a.shape)
    top = int(c.max()) if c.size else 0
    for k in range(1, top + 1):
        step = a * b / (k + a * b)
        b = np.where(k <= c, step, b)
    rho = a / np.maximum(c, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = b / (1.0 - rho * (1.0 - b))
    return np.where(rho >= 1.0, 1.0, np.clip(out, 0.0, 1.0))


def gi_sigma(rate: np.ndarray, capacity: np.ndarray, cv: float, steps: int = SIGMA_STEPS) -> np.ndarray:
    """Root ``σ`` of ``σ = A*(κ (1 - σ))`` for gamma inter-arrivals (GI/M/c), ``κ = c / S``; 1 at saturation.

    ``A*(s) = (k λ / (k λ + s))^k`` is the Laplace transform of gamma gaps of shape ``k = 1 / cv²`` and mean
    ``1 / λ``; the root in (0, 1) is found by bisection (for Poisson, ``σ = ρ``).
    """
    k = 1.0 / (cv * cv)
    lam, kap = np.broadcast_arrays(np.asarray(rate, dtype=float), np.asarray(capacity, dtype=float))
    lo = np.zeros(lam.shape)
    hi = np.full(lam.shape, 1.0 - 1e-12)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(steps):  # A*(κ(1-σ)) - σ is > 0 below the root and < 0 between it and 1
            mid = 0.5 * (lo + hi)
            above = (k * lam / (k * lam + kap * (1.0 - mid))) ** k > mid
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
    return np.where(lam >= kap, 1.0, 0.5 * (lo + hi))


def wait_quantile_s(
    rate: np.ndarray, servers: np.ndarray, hold_s: np.ndarray, pct: float, cv: float
) -> npt.NDArray[np.float64]:
    """Seconds a request waits for a slot at the ``pct`` percentile (module docstring); inf at saturation."""
    sigma = gi_sigma(rate, servers / hold_s, cv)
    c = erlang_c(servers, servers * sigma)
    theta = servers / hold_s * (1.0 - sigma) * 2.0 / (1.0 + SERVICE_CV2)
    tail = 1.0 - pct / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.log(c / tail) / theta
    w = np.where(c <= tail, 0.0, w)
    return np.where(theta <= 0, np.inf, np.maximum(w, 0.0))


def sustainable_rates(
    ttft_ms: np.ndarray,
    e2e_s: np.ndarray,
    batch: np.ndarray,
    rate_rps: np.ndarray,
    *,
    cv: float,
    ttft_limit_ms: float | None = None,
    ttft_pct: float | None = None,
    e2e_limit_s: float | None = None,
    e2e_pct: float | None = None,
) -> npt.NDArray[np.float64]:
    """Largest rate ``≤ rate_rps`` meeting the percentile TTFT and E2E SLOs given, per candidate (0: none)."""
    ttft = np.asarray(ttft_ms, dtype=float)
    e2e = np.asarray(e2e_s, dtype=float)
    b = np.asarray(batch, dtype=np.int64)
    r = np.asarray(rate_rps, dtype=float)
    hold = np.where(r > 0, b / np.where(r > 0, r, 1.0), np.inf)  # S = b / r (= e2e_s for the model's rate)

    def meets(lam: np.ndarray) -> np.ndarray:
        ok = np.ones(lam.shape, dtype=bool)
        for limit, pct, base, unit in ((ttft_limit_ms, ttft_pct, ttft, 1e3), (e2e_limit_s, e2e_pct, e2e, 1.0)):
            if limit is None or pct is None:
                continue
            ok &= base + wait_quantile_s(lam, b, hold, pct, cv) * unit <= limit
        return ok

    hi = r.copy()
    full = meets(hi)
    lo = np.zeros_like(r)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = meets(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    return np.where(full, r, lo)


def curved_workloads(scenario: Scenario) -> list[str]:
    """Online workloads with a percentile TTFT or E2E SLO: those whose candidates get a capacity curve."""
    return [
        w.name
        for w in scenario.workloads
        if w.kind == "online"
        and (
            (w.slo.ttft_ms is not None and w.slo.ttft_percentile is not None)
            or (w.slo.e2e_s is not None and w.slo.e2e_percentile is not None)
        )
    ]


def curved(scenario: Scenario) -> bool:
    """Whether any workload of ``scenario`` has a capacity curve (:func:`curved_workloads`)."""
    return bool(curved_workloads(scenario))


def apply(frame: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Lower each candidate's ``rate_rps`` to its sustainable rate at its workload's percentile SLOs (module doc).

    Rows of workloads without a percentile TTFT or E2E SLO are unchanged; so is a table without such workloads
    (the same object is returned). The mean-model rate is kept in :data:`COLUMN`. Pooled rows are lowered with
    their own class's constants (the simulation of the plan checks the mix).
    """
    wl = {w.name: w for w in scenario.workloads}
    curved = set(curved_workloads(scenario))
    if frame.empty or not curved:
        return frame
    out = frame.copy()
    out[COLUMN] = out["rate_rps"].to_numpy(dtype=float)
    names = out["workload"].astype(str).to_numpy()
    cap = scenario.search.utilisation_cap
    rates = out["rate_rps"].to_numpy(dtype=float).copy()
    for name in sorted(curved):
        w = wl[name]
        m = names == name
        if not m.any():
            continue
        # one curve per distinct (TTFT, E2E, batch, rate): regions, markets and twin instance types share it
        keys = np.column_stack(
            [out.loc[m, c].to_numpy(dtype=float) for c in ("ttft_ms", "e2e_s", "batch_size", "rate_rps")]
        )
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        lam = sustainable_rates(
            uniq[:, 0],
            uniq[:, 1],
            uniq[:, 2].astype(np.int64),
            uniq[:, 3],
            cv=float(w.arrival.cv),
            ttft_limit_ms=w.slo.ttft_ms,
            ttft_pct=w.slo.ttft_percentile,
            e2e_limit_s=w.slo.e2e_s,
            e2e_pct=w.slo.e2e_percentile,
        )[np.ravel(inverse)]
        rates[m] = np.minimum(rates[m], lam / cap)
    out["rate_rps"] = rates
    return out[out["rate_rps"].to_numpy(dtype=float) > 0].reset_index(drop=True)
