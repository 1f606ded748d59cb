"""Request arrivals: Poisson, bursty (gamma inter-arrivals with a coefficient of variation), closed loop, trace CSV.

Open-loop processes return an :class:`Arrivals` (sorted times in seconds and per-request token lengths);
a closed loop is a :class:`ClosedLoop` (a fixed number of users, each sending its next request the moment the
previous one finishes, as ``genai-perf --concurrency`` does), which the event loop expands as it runs.

Gamma inter-arrivals with mean ``1/rate`` and coefficient of variation ``cv`` have shape ``1/cv²`` and scale
``cv²/rate``; ``cv = 1`` is Poisson, ``cv > 1`` burstier. Every draw comes from one
``numpy.random.Generator(PCG64(seed))``: the same seed gives the same arrivals.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from solver.errors import InputError
from solver.specs import MAX_TOKENS

TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")
"""Header of a trace CSV, in this order."""


@dataclass(frozen=True)
class Arrivals:
    """Open-loop requests: arrival times (seconds, sorted) and token lengths, arrays of equal length."""

    times_s: npt.NDArray[np.float64]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.times_s.size)


@dataclass(frozen=True)
class ClosedLoop:
    """``users`` clients, each sending a request as soon as its previous one finished.

    Every request has ``input_tokens`` / ``output_tokens``, unless ``lengths`` gives a list of requests (input and
    output lengths, arrays of equal size): then they are sent in that order, one per free client, and the clients
    stop when the list is used up, as ``vllm bench serve --num-prompts N --max-concurrency C`` does
    (:func:`benchmark_serving`).
    """

    users: int
    input_tokens: int
    output_tokens: int
    lengths: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None


def benchmark_serving(
    concurrency: int,
    input_tokens: int,
    output_tokens: int,
    *,
    prompts_per_user: int = 10,
    range_ratio: float = 0.8,
    seed: int = 0,
) -> ClosedLoop:
    """Return the closed loop of vLLM's ``benchmark_serving.py`` random dataset as InferenceMAX / InferenceX run it.

    ``--num-prompts`` = ``prompts_per_user`` x ``--max-concurrency`` (10 x C in InferenceMAX's benchmark scripts,
    and in ai-dynamo/aisimulate's replay of InferenceX points: ``request_count = concurrency * 10``), all issued at
    once (``--request-rate inf``) and each replaced by the next as it finishes; lengths drawn uniformly from
    ``[int(range_ratio x L), L]`` (the random dataset of the ``kimbochen/bench_serving`` copy InferenceMAX clones,
    ``--random-range-ratio 0.8``; ``--ignore-eos``, so every request generates its drawn output length).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    n = prompts_per_user * concurrency
    ins = rng.integers(int(input_tokens * range_ratio), input_tokens + 1, size=n)
    outs = rng.integers(int(output_tokens * range_ratio), output_tokens + 1, size=n)
    return ClosedLoop(concurrency, input_tokens, output_tokens, (ins.astype(np.int64), outs.astype(np.int64)))


def _lengths(n: int, input_tokens: int, output_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, input_tokens, dtype=np.int64), np.full(n, output_tokens, dtype=np.int64)


def poisson(rate_rps: float, duration_s: float, input_tokens: int, output_tokens: int, seed: int = 0) -> Arrivals:
    """Poisson arrivals at ``rate_rps`` over ``[0, duration_s)`` (gamma with ``cv = 1``)."""
    return gamma(rate_rps, 1.0, duration_s, input_tokens, output_tokens, seed)


def gamma(
    rate_rps: float, cv: float, duration_s: float, input_tokens: int, output_tokens: int, seed: int = 0
) -> Arrivals:
    """Renewal arrivals with gamma inter-arrival times of mean ``1/rate_rps`` and coefficient of variation ``cv``.

    Parameters
    ----------
    rate_rps
        Mean arrival rate, requests per second.
    cv
        Coefficient of variation of the inter-arrival times (1 = Poisson).
    duration_s
        Arrivals are generated in ``[0, duration_s)``.
    input_tokens, output_tokens
        Lengths of every request.
    seed
        Seed of the generator.
    """
    if not (rate_rps > 0 and math.isfinite(rate_rps)):
        raise InputError("rate_rps", f"must be a positive number, got {rate_rps!r}")
    if not (cv > 0 and math.isfinite(cv)):
        raise InputError("arrival.cv", f"must be a positive number, got {cv!r}")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise InputError("duration_s", f"must be a positive number, got {duration_s!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    expected = rate_rps * duration_s
    n = int(expected + 6.0 * cv * math.sqrt(expected) + 16)
    shape = 1.0 / (cv * cv)
    gaps = rng.gamma(shape, 1.0 / (shape * rate_rps), size=n)
    times = np.cumsum(gaps)
    while times[-1] < duration_s:  # rare: draw more
        more = np.cumsum(rng.gamma(shape, 1.0 / (shape * rate_rps), size=n)) + times[-1]
        times = np.concatenate([times, more])
    times = times[times < duration_s]
    i, o = _lengths(times.size, input_tokens, output_tokens)
    return Arrivals(times, i, o)


def read_trace(path: str | Path, field: str = "--trace") -> Arrivals:
    """Read a trace CSV with header ``arrival_s,input_tokens,output_tokens``.

    Times must be finite, non-negative and non-decreasing; token counts integers in ``[1, MAX_TOKENS]``.
    A bad file raises :class:`InputError` naming the row (1 = the first data row) and column.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(p)!r}: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(field, f"{p}: empty file; expected the header {','.join(TRACE_COLUMNS)} and rows")
    header = [c.strip() for c in rows[0]]
    if tuple(header) != TRACE_COLUMNS:
        raise InputError(field, f"{p}: row 0 (header) must be {','.join(TRACE_COLUMNS)}, got {','.join(header)}")
    body = rows[1:]
    if not body:
        raise InputError(field, f"{p}: no requests after the header")
    times = np.empty(len(body))
    ins = np.empty(len(body), dtype=np.int64)
    outs = np.empty(len(body), dtype=np.int64)
    last = 0.0
    for i, row in enumerate(body, start=1):
        if len(row) != 3:
            raise InputError(field, f"{p}: row {i}: expected 3 columns, got {len(row)}")
        try:
            t = float(row[0])
        except ValueError:
            raise InputError(field, f"{p}: row {i}, column arrival_s: not a number: {row[0]!r}") from None
        if not math.isfinite(t) or t < 0:
            raise InputError(field, f"{p}: row {i}, column arrival_s: must be a finite time >= 0, got {row[0]!r}")
        if t < last:
            raise InputError(field, f"{p}: row {i}, column arrival_s: {t:g} is before the previous row's {last:g}")
        last = t
        times[i - 1] = t
        for j, (col, dest) in enumerate((("input_tokens", ins), ("output_tokens", outs)), start=1):
            cell = row[j].strip()
            if not cell.isdigit() or not 1 <= int(cell) <= MAX_TOKENS:
                raise InputError(
                    field, f"{p}: row {i}, column {col}: must be an integer in [1, {MAX_TOKENS:,}], got {row[j]!r}"
                )
            dest[i - 1] = int(cell)
    return Arrivals(times, ins, outs)
