"""Analytic serving model of continuous batching: KV-capacity admission, waiting, prefill interleaving.

The planner and ``infersave predict`` evaluate a replica under continuous batching through these functions
(called by :func:`solver.performance.model.predict_frame`). Every function is numpy-vectorised over rows.
Inputs are the calibrated phase times of one replica (seconds), from :mod:`solver.performance.latency` and
the CTCF (:func:`solver.performance.ctcf.apply_ctcf`):

* ``p``: prefill of one request of ``s`` prompt tokens run as its own forward pass (``prefill_s`` at batch 1);
* ``a``: one decode step with ``m`` running requests (``mean_decode_step_s`` at batch ``m``);
* ``q``: what one request's prefill adds to the engine's busy time while others decode. An engine that runs
  prefill as its own pass (TGI 1.x/2.x; ``mixed_prefill = no`` in ``instances/engines.csv``) pays ``q = p``;
  an engine that puts prefill tokens into the decode step's forward pass (vLLM chunked prefill, TensorRT-LLM
  in-flight batching) pays only what does not hide under the memory-bound decode step, ``q = max(p - a, 0)``.

**KV-capacity admission** (engines that do not offload KV, ``offloads_kv = no``)::

    kv_seq  = KV bytes per request per GPU for its reserved tokens (s + n, or s + n/2 where blocks grow)
    M       = min(floor((available - weights - activations) / kv_seq), max_num_seqs)     (slots)
    m       = min(N, M)                                                                   (running)

Requests beyond ``M`` wait for a slot instead of being offloaded; a configuration fits when ``M >= 1``.

**Closed loop** (``N`` clients, each sending its next request when the last one ends; what serving benchmarks
at a fixed concurrency measure). With equal lengths the clients move in cohorts: requests admitted together
finish together and their successors arrive together, so a request's prefill queues behind its cohort's. The
engine prefills at most ``k`` requests per forward pass (its prefill token budget ``B``: vLLM and TensorRT-LLM
8192, TGI 4096, :data:`solver.performance.memory.ENGINE_MEMORY`)::

    k      = min(m, max(1, floor(B / s)))        (requests per prefill pass)
    J      = m / k                                (prefill passes for a cohort of m; continuous, so that
                                                   nothing jumps with one more client)
    c      = (J + 1)/2 · (p_k + [m > 1] · a)      (mean time from admission to first token; p_k = prefill of k)
    q'     = (1 - 1/m) · q                        (prefills of the other m - 1 requests only)
    X      = throughput (requests/s) solving  X · (c + n · a / (1 - X·q')) = m    (a quadratic, smaller root)
    tpot   = a / (1 - X·q')                       (decode steps stretched by the others' prefills)
    L      = c + n · tpot                         (time a request holds its slot);   X = m / L
    w_adm  = (N - m) / X                          (waiting for a slot: N/X = w_adm + L)
    ttft   = w_adm + c,   e2e = ttft + n · tpot = N / X

With ``arrivals="spread"`` (independent arrivals, lengths that vary) a request waits half the step in flight
and prefills alone: ``c = p + [m > 1] · a/2``.

At ``N = 1`` this is ``ttft = p``, ``tpot = a``: the static single-request model. The cohort term is what
fixed-length closed-loop benchmarks (genai-perf, k6 constant-vus) measure; with lengths that vary, arrivals
spread out and TTFT falls towards the open-loop value, so for the planner it is the conservative choice.
Evidence: ``docs/accuracy.md`` (serving section) and ``benchmarks/serving_accuracy.py``.

**Open loop** (Poisson arrivals at ``R`` requests/s per replica). The decode step grows with the running
count, ``a(m) = a1 + (a_ref - a1)(m - 1)/(b_ref - 1)`` (exact for the memory-bound roofline, linear in m).
The mean running count solves ``m = R · (c + n · a(m) / (1 - R·q))`` (linear in ``m``), with
``c = p + (1 - exp(-R (p + n·a1))) · a1`` (an arrival waits for the step in flight when the replica is busy).
Waiting for a slot is the M/G/c approximation of Sakasegawa (1977) with ``c = M`` servers, utilisation
``rho = m / M``, service time ``L`` and deterministic lengths (``(Ca² + Cs²)/2 = 1/2``)::

    w_adm = L · rho^(sqrt(2(M+1)) - 1) / (M (1 - rho)) · 1/2

A load beyond capacity (``R·q >= 1``, ``m >= M``, or no finite solution) is *saturated*: TTFT and e2e are
infinite (the queue grows without bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.performance.memory import FloatArray

ARRIVALS = ("cohort", "spread")
"""Closed-loop arrival patterns: equal-length requests in cohorts (default), or independent arrivals."""


@dataclass(frozen=True)
class ServingTimes:
    """Per-row serving times (seconds) and rates of one replica."""

    ttft_s: FloatArray
    tpot_s: FloatArray
    e2e_s: FloatArray
    throughput_rps: FloatArray
    running: FloatArray
    """Mean requests in a slot (decoding or prefilling)."""
    wait_s: FloatArray
    """Mean wait for a slot (part of ``ttft_s``)."""


def marginal_prefill_s(p: FloatArray, a: FloatArray, mixed_prefill: bool) -> FloatArray:
    """``q``: busy time one request's prefill adds while others decode (module docstring)."""
    if not mixed_prefill:
        return p
    return np.maximum(p - a, 0.0)


def admission_slots(
    slack_gib: FloatArray,
    kv_per_request_gib: FloatArray,
    max_num_seqs: int | None,
) -> FloatArray:
    """``M``: requests whose reserved KV fits in the GPU memory left after weights and activations (>= 0).

    Parameters
    ----------
    slack_gib
        Available GPU memory minus weights and activations, per GPU.
    kv_per_request_gib
        KV one admitted request reserves, per GPU.
    max_num_seqs
        The engine's cap on running sequences (``None``: none).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        slots = np.floor(np.maximum(slack_gib, 0.0) / kv_per_request_gib + 1e-9)
    slots = np.where(np.isfinite(slots), slots, 0.0)
    if max_num_seqs is not None:
        slots = np.minimum(slots, float(max_num_seqs))
    return np.asarray(slots, dtype=np.float64)


def cohort_size(running: FloatArray, input_tokens: float, budget_tokens: int | None) -> FloatArray:
    """``k``: requests prefilled per forward pass, ``min(m, max(1, floor(B / s)))`` (``B = None``: all ``m``)."""
    if budget_tokens is None:
        return running
    return np.minimum(running, max(1.0, float(np.floor(budget_tokens / float(input_tokens)))))


def first_token_s(running: FloatArray, k: FloatArray, p_k: FloatArray, a: FloatArray) -> FloatArray:
    """``c``: mean time from admission to first token of a cohort of ``running`` requests, ``k`` per pass."""
    passes = running / k
    return (passes + 1.0) / 2.0 * (p_k + np.where(running > 1.0, a, 0.0))


def closed_loop(
    concurrency: FloatArray,
    running: FloatArray,
    c: FloatArray,
    q: FloatArray,
    a: FloatArray,
    output_tokens: float,
) -> ServingTimes:
    """Return serving times at a fixed concurrency ``N`` with ``m = min(N, M)`` running (module docstring).

    Parameters
    ----------
    concurrency
        ``N``, clients of the replica.
    running
        ``m``, requests holding a slot (``min(N, M)``, at least 1).
    c, q, a
        Admission to first token (:func:`first_token_s`), marginal prefill, decode step at ``m`` (seconds).
    output_tokens
        ``n``, generated tokens per request.
    """
    n = float(output_tokens)
    m = running
    qo = q * (1.0 - 1.0 / m)
    big_b = c + n * a + m * qo
    x0 = 2.0 * m / (big_b + np.sqrt(np.maximum(big_b * big_b - 4.0 * c * qo * m, 0.0)))
    tpot = a / (1.0 - x0 * qo)
    x = m / (c + n * tpot)
    wait = (concurrency - m) / x
    ttft = wait + c
    return ServingTimes(ttft_s=ttft, tpot_s=tpot, e2e_s=ttft + n * tpot, throughput_rps=x, running=m, wait_s=wait)


def open_loop(
    rate_rps: float,
    slots: FloatArray,
    p: FloatArray,
    q: FloatArray,
    a1: FloatArray,
    a_ref: FloatArray,
    b_ref: FloatArray,
    output_tokens: float,
) -> ServingTimes:
    """Return serving times at a Poisson arrival rate ``R`` per replica (module docstring); saturated: inf.

    Parameters
    ----------
    rate_rps
        ``R``, arrivals per second at this replica.
    slots
        ``M``, the admission limit (``inf`` for an engine that offloads KV).
    p, q
        Prefill alone and marginal prefill (seconds).
    a1, a_ref, b_ref
        Decode step with 1 and with ``b_ref`` running requests (seconds); linear in between.
    output_tokens
        ``n``, generated tokens per request.
    """
    r = float(rate_rps)
    n = float(output_tokens)
    slope = np.where(b_ref > 1.0, (a_ref - a1) / np.maximum(b_ref - 1.0, 1.0), 0.0)
    base = a1 - slope
    rho_pf = r * q
    free = 1.0 - rho_pf
    busy = 1.0 - np.exp(-r * (p + n * a1))  # chance that an arrival finds a step in flight (Poisson)
    c = p + busy * a1
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 - r * n * slope / free
        m = (r * c + r * n * base / free) / denom
        stable = (free > 0) & (denom > 0) & np.isfinite(m) & (m < slots)
        m = np.where(stable, np.maximum(m, r * c), np.inf)
        a = base + slope * np.maximum(m, 1.0)
        tpot = a / free
        w_pf = rho_pf * q / (2.0 * free)
        life = c + w_pf + n * tpot
        util = m / slots
        power = np.sqrt(2.0 * (slots + 1.0)) - 1.0
        wait = np.where(np.isfinite(slots), life * util**power / (slots * (1.0 - util)) * 0.5, 0.0)
    inf = np.full_like(m, np.inf)
    ttft = np.where(stable, wait + c + w_pf, inf)
    tpot = np.where(stable, tpot, inf)
    return ServingTimes(
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=ttft + n * tpot,
        throughput_rps=np.where(stable, r, np.nan),
        running=m,
        wait_s=np.where(stable, wait, inf),
    )
