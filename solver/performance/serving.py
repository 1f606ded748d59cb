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
at a fixed concurrency measure), ``arrivals="steady"`` (default): the steady state, requests spread in time
(lengths that vary, clients that started at different times, an open-loop stream cut into ``N`` slots). A request
arrives during a decode step (it waits half of one when others run), waits for the prefill work queued ahead
of it, then runs its own prefill::

    P      = p                                   (alone, m = 1; or an engine with separate prefill passes)
           = J·a + max(p - a, 0),  J = ceil(s/B) (mixing engine: J chunks of the token budget B, each carrying
                                                   the others' decode tokens)
    rho    = X · q · (1 - 1/m)                   (the other requests' prefills, service q; M/D/1)
    w_pf   = min(rho · q / (2 (1 - rho)), (m - 1) · q)     (Pollaczek-Khinchine; at most everyone else ahead)
    c      = [m > 1] · a/2 + w_pf + P            (admission to first token)
    q'     = (1 - 1/m) · q
    X      = throughput (requests/s) solving  X · (c + n · a / (1 - X·q')) = m    (a quadratic, smaller root)
    tpot   = a / (1 - X·q')                       (decode steps stretched by the others' prefills)
    L      = c + n · tpot                         (time a request holds its slot);   X = m / L
    w_adm  = (N - m) / X                          (waiting for a slot: N/X = w_adm + L)
    ttft   = w_adm + c,   e2e = ttft + n · tpot = N / X

``c`` depends on ``X`` through ``w_pf``: :data:`STEADY_ITERATIONS` fixed-point passes, from ``w_pf = 0``.
``tests/test_serving.py::test_closed_loop_against_the_simulator`` checks it against the event simulator
(:mod:`solver.simulation`) under Poisson arrivals at 90 % of the loop's throughput. At a fixed concurrency a
faster GPU may show a longer TTFT than a slower one, because its clients come back sooner and more prefills
queue (it always has the higher throughput and the shorter end-to-end time; ``tests/test_invariants.py``).

``arrivals="cohort"``: equal lengths and clients started together (genai-perf with fixed synthetic lengths, the
simulator's closed loop): requests admitted together finish together and their successors arrive together, so a
request's prefill queues behind its cohort's. The engine prefills at most ``k`` requests per forward pass (its
prefill token budget ``B``: vLLM and TensorRT-LLM 8192, TGI 4096, :data:`solver.performance.memory.ENGINE_MEMORY`)::

    k      = min(m, max(1, floor(B / s)))        (requests per prefill pass)
    J      = m / k                                (prefill passes for a cohort of m; continuous)
    c      = (J + 1)/2 · (p_k + [m > 1] · a)      (mean time from admission to first token; p_k = prefill of k)

and ``X``, ``tpot``, ``w_adm`` as above with that ``c``. At ``N = 1`` both are ``ttft = p``, ``tpot = a``: the
static single-request model.

``arrivals="burst"``: one benchmark run of ``K·N`` requests from ``N`` clients started at once and each refilled
as its request finishes, with lengths that vary (``vllm bench serve`` / ``benchmark_serving.py --request-rate inf
--max-concurrency N --num-prompts K·N`` on its random dataset). Its mean is over every request of the run: the
first wave arrives together and prefills as a cohort, and varying lengths spread the later waves as in the steady
state, so each mean is ``(cohort + (K - 1)·steady) / K`` (TTFT and TPOT; ``e2e = ttft + n·tpot``,
``X = N / e2e``). ``K`` = :data:`BURST_WAVES`. Evidence: ``docs/accuracy.md`` (serving section) and
``benchmarks/serving_accuracy.py``.

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

ARRIVALS = ("steady", "cohort", "burst")
"""Closed-loop arrival patterns: the steady state with requests spread in time (default), cohorts, or one benchmark
run started at once (module docstring)."""
BURST_WAVES = 10
"""``K`` of ``arrivals="burst"``: requests per client of one benchmark run. InferenceMAX / InferenceX's benchmark
scripts run ``benchmark_serving.py --num-prompts $(( $CONC * 10 )) --max-concurrency $CONC --request-rate inf
--random-range-ratio 0.8`` (e.g. ``benchmarks/70b_fp8_h200_trt_slurm.sh`` of an InferenceMAX copy,
jyothisambolu/InferenceMAX), and ai-dynamo/aisimulate replays InferenceX points with the same
(``scripts/e2e_accuracy/source/defaults/workload_defaults.py``: ``num_prompts_mult=10``,
``random_range_ratio=0.8``, ``req_rate="inf"``; its warm-up requests are not in the measured mean)."""
STEADY_ITERATIONS = 3
"""Fixed-point passes of the steady closed loop (throughput <-> prefill queueing); the change after the third is
below 0.1 % of TTFT on the shipped example scenarios (``tests/test_serving.py``)."""


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


def steady_own_prefill_s(
    running: FloatArray, p: FloatArray, a: FloatArray, input_tokens: float, budget_tokens: int | None, mixed: bool
) -> FloatArray:
    """``P``: admission to first token of one request whose prefill nobody waits in front of (steady state).

    Alone (``m = 1``) it is its own prefill ``p``. With others decoding, an engine that mixes prefill into the
    decode step needs ``J = ceil(s / B)`` steps (chunks of the token budget ``B``), each carrying the others'
    decode tokens, and pays what does not hide under them: ``J·a + max(p - a, 0)``; an engine with separate
    prefill passes pays ``p``.
    """
    if not mixed:
        return p
    chunks = 1.0 if budget_tokens is None else float(np.ceil(float(input_tokens) / float(budget_tokens)))
    return np.where(running > 1.0, chunks * a + np.maximum(p - a, 0.0), p)


def steady_loop(
    concurrency: FloatArray,
    running: FloatArray,
    own: FloatArray,
    service: FloatArray,
    q: FloatArray,
    a: FloatArray,
    output_tokens: float,
) -> ServingTimes:
    """Return the steady state of a closed loop at concurrency ``N`` with requests spread in time.

    ``ttft = w_adm + [m > 1]·a/2 + w_pf + P``: a request arrives at a random point of the decode step in flight
    (half a step), waits for the prefill work queued ahead of it, then runs its own prefill ``P``
    (:func:`steady_own_prefill_s`). The prefill queue is M/D/1 (Pollaczek-Khinchine) with service ``S``
    (``service``: ``q`` for a mixing engine, ``p`` for separate passes) at the loop's throughput ``X``::

        rho  = X·S·(1 - 1/m)              (the other m - 1 requests' prefills)
        w_pf = min(rho·S / (2 (1 - rho)), (m - 1)·S)   (capped at everyone else ahead: the cohort bound)

    ``X`` and ``w_pf`` depend on each other; :data:`STEADY_ITERATIONS` fixed-point passes of
    :func:`closed_loop` (with ``c = [m > 1]·a/2 + w_pf + P``) solve them, starting from ``w_pf = 0``.
    """
    m = running
    others = np.where(m > 1.0, 1.0, 0.0)
    base = others * a / 2.0 + own
    ahead = (m - 1.0) * service
    share = 1.0 - 1.0 / m
    c = base
    for _ in range(STEADY_ITERATIONS):
        x = closed_loop(concurrency, running, c, q, a, output_tokens).throughput_rps
        rho = np.minimum(x * service * share, 0.999)
        c = base + np.minimum(rho * service / (2.0 * (1.0 - rho)), ahead)
    return closed_loop(concurrency, running, c, q, a, output_tokens)


def burst_run(
    cohort: ServingTimes, steady: ServingTimes, concurrency: FloatArray, output_tokens: float
) -> ServingTimes:
    """Means over one benchmark run started at once: one cohort wave and ``K - 1`` steady ones (module docstring)."""
    k = float(BURST_WAVES)

    def mean(first: FloatArray, later: FloatArray) -> FloatArray:
        return (first + (k - 1.0) * later) / k

    ttft = mean(cohort.ttft_s, steady.ttft_s)
    tpot = mean(cohort.tpot_s, steady.tpot_s)
    e2e = ttft + float(output_tokens) * tpot
    return ServingTimes(
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        throughput_rps=concurrency / e2e,
        running=mean(cohort.running, steady.running),
        wait_s=mean(cohort.wait_s, steady.wait_s),
    )


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
