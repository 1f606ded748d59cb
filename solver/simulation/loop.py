"""The event loop: requests routed to replicas that run iteration-level continuous batching (or static batches).

A plain ``heapq`` loop (``docs/benchmarks.md`` compares it with SimPy). Each replica runs one *action* at a
time and the heap holds the time each action ends:

* **prefill pass** — FCFS admission from the replica's queue while a batch slot is free and the request's
  whole context fits in the free KV capacity, up to the engine's prefill-token budget per pass; the admitted
  prompts' first tokens appear when the pass ends. Without chunked prefill, passes have priority over decode
  steps (vLLM's default scheduler); with ``chunked_prefill`` a pass takes at most ``max_prefill_tokens``
  tokens (long prompts are split over passes) and passes alternate with decode steps of the running batch;
* **decode run** — ``k`` decode steps of the running batch, ``k`` = steps until the next sequence finishes. The
  batch does not change during a run, so its time is one closed-form call (:meth:`ReplicaConfig.decode_s`);
  an arrival that could be admitted cuts the run at the end of the step in progress (an iteration-level
  scheduler admits at every step boundary). Runs make the loop cost a few events per request rather than one
  per generated token;
* **static batch** (offline workloads, FlexGen) — up to ``max_batch`` waiting requests are prefilled together
  and decoded for the longest output; all finish together.

Closed-loop users send their next request when the previous one finishes, until ``duration_s``; open-loop
arrivals are given. The loop stops when every request has finished or at ``duration_s + drain_s``.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.simulation.arrivals import Arrivals, ClosedLoop
from solver.simulation.replica import ReplicaConfig
from solver.simulation.routing import make_group_router, make_router

INF = math.inf
IDLE, PREFILL, DECODE, STATIC, WAKE = 0, 1, 2, 3, 4
MAX_BINS = 2_000
"""Most utilisation bins per replica (wider bins beyond)."""


@dataclass(frozen=True)
class RawRun:
    """Per-request times (seconds; NaN = never happened) and per-replica busy time per bin."""

    arrival_s: npt.NDArray[np.float64]
    admit_s: npt.NDArray[np.float64]
    first_token_s: npt.NDArray[np.float64]
    finish_s: npt.NDArray[np.float64]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    replica: npt.NDArray[np.int64]
    busy_s: npt.NDArray[np.float64]
    """Shape (replicas, bins): seconds each replica computed in each bin."""
    bin_s: float
    end_s: float
    events: int


def run(
    configs: list[ReplicaConfig],
    arrivals: Arrivals | ClosedLoop,
    *,
    duration_s: float,
    routing: str = "jsq",
    chunked_prefill: bool = False,
    drain_s: float | None = None,
    bin_s: float | None = None,
    shared_queue: bool = False,
    groups: list[list[int]] | None = None,
    group_of: npt.NDArray[np.int64] | None = None,
) -> RawRun:
    """Simulate ``arrivals`` on the replicas ``configs`` (module docstring) and return every request's times.

    Parameters
    ----------
    configs
        One entry per replica (entries may be the same object).
    arrivals
        Open-loop arrivals, or a closed loop of users.
    duration_s
        Arrival horizon (closed-loop users stop sending after it).
    routing
        ``jsq`` or ``round_robin``.
    chunked_prefill
        Split prefills into passes of at most the engine's prefill-token budget, alternating with decode steps.
    drain_s
        Time after ``duration_s`` allowed for the queues to drain (default ``max(duration_s, 60)``).
    bin_s
        Width of the utilisation bins (default ``duration_s / 60``).
    shared_queue
        One FCFS queue for all replicas, from which each pulls work when free (offline jobs) instead of routing.
    groups, group_of
        Shared replicas (:mod:`solver.simulation.mixed`): replica indices per fleet row, and per open-loop request
        the row it is routed to; routing then picks among that row's replicas only.
    """
    n_rep = len(configs)
    drain = max(duration_s, 60.0) if drain_s is None else drain_s
    t_max = duration_s + drain
    width = bin_s if bin_s is not None else max(duration_s / 60.0, 1e-3)
    width = max(width, t_max / MAX_BINS)
    n_bins = math.ceil(t_max / width) + 1
    busy = [[0.0] * n_bins for _ in range(n_rep)]
    route = make_router(routing, [c.max_batch for c in configs])
    target = group_of.tolist() if group_of is not None else None
    route_in = make_group_router(routing, [c.max_batch for c in configs], groups) if groups is not None else None

    closed = isinstance(arrivals, ClosedLoop)
    if isinstance(arrivals, ClosedLoop):
        open_t: list[float] = []
        arr_t: list[float] = []
        ins: list[int] = []
        outs: list[int] = []
        listed = arrivals.lengths
        pending = [0.0] * (arrivals.users if listed is None else min(arrivals.users, len(listed[0])))
        c_in, c_out = arrivals.input_tokens, arrivals.output_tokens
    else:
        open_t = arrivals.times_s.tolist()
        arr_t = list(open_t)
        ins = arrivals.input_tokens.tolist()
        outs = arrivals.output_tokens.tolist()
        pending = []
        listed = None
        c_in = c_out = 0
    n_open = len(open_t)
    admit = [math.nan] * n_open
    first = [math.nan] * n_open
    finish = [math.nan] * n_open
    rep = [-1] * n_open

    if shared_queue:
        one: deque[int] = deque()
        waiting: list[deque[int]] = [one] * n_rep
    else:
        waiting = [deque() for _ in range(n_rep)]
    prefilling: list[list[int]] = [[] for _ in range(n_rep)]
    pf_left: dict[int, int] = {}
    running: list[list[tuple[int, int]]] = [[] for _ in range(n_rep)]
    steps = [0] * n_rep
    ctx = [0.0] * n_rep
    kv = [0.0] * n_rep
    load = [0] * n_rep
    action = [IDLE] * n_rep
    act_t0 = [0.0] * n_rep
    act_k = [0] * n_rep
    act_ids: list[list[int]] = [[] for _ in range(n_rep)]
    act_pf = [0.0] * n_rep
    last_prefill = [False] * n_rep
    ver = [0] * n_rep
    heap: list[tuple[float, int, int]] = []
    events = 0

    def add_busy(r: int, t0: float, t1: float) -> None:
        row = busy[r]
        b0 = min(int(t0 / width), n_bins - 1)
        b1 = min(int(t1 / width), n_bins - 1)
        if b0 == b1:
            row[b0] += t1 - t0
            return
        row[b0] += (b0 + 1) * width - t0
        for b in range(b0 + 1, b1):
            row[b] += width
        row[b1] += t1 - b1 * width

    def done(r: int, i: int, t: float) -> None:
        finish[i] = t
        kv[r] -= ins[i] + outs[i]
        load[r] -= 1
        if closed and t < duration_s and (listed is None or len(arr_t) + len(pending) < len(listed[0])):
            heapq.heappush(pending, t)

    def schedule(r: int, kind: int, t0: float, t1: float) -> None:
        action[r] = kind
        act_t0[r] = t0
        ver[r] += 1
        heapq.heappush(heap, (t1, ver[r], r))

    def admissible(r: int, cfg: ReplicaConfig, extra: int) -> bool:
        q = waiting[r]
        if not q:
            return False
        i = q[0]
        return len(running[r]) + extra < cfg.max_batch and kv[r] + ins[i] + outs[i] <= cfg.kv_capacity_tokens

    def decide(r: int, t: float) -> None:
        cfg = configs[r]
        q = waiting[r]
        if cfg.static:
            if not q:
                action[r] = IDLE
                return
            ids: list[int] = []
            while q and len(ids) < cfg.max_batch and kv[r] + ins[q[0]] + outs[q[0]] <= cfg.kv_capacity_tokens:
                i = q.popleft()
                kv[r] += ins[i] + outs[i]
                admit[i] = t
                rep[i] = r
                ids.append(i)
            if not ids:  # cannot fit even one: drop it
                i = q.popleft()
                load[r] -= 1
                admit[i] = math.nan
                decide(r, t)
                return
            k = len(ids)
            tok = sum(ins[i] for i in ids)
            n_max = max(outs[i] for i in ids)
            pf = cfg.prefill_s(k, tok)
            dec = cfg.decode_s(k, float(tok + k), n_max)
            act_ids[r] = ids
            act_pf[r] = pf
            schedule(r, STATIC, t, t + pf + dec)
            return
        run_q = running[r]
        nrun = len(run_q)
        pre = prefilling[r]
        want_prefill = bool(pre) or admissible(r, cfg, len(pre))
        if want_prefill and not (chunked_prefill and last_prefill[r] and nrun):
            budget = cfg.max_prefill_tokens
            ids = []
            tokens = 0
            if chunked_prefill:
                for i in pre:
                    take = pf_left[i] if budget is None else min(pf_left[i], budget - tokens)
                    if take <= 0:
                        break
                    ids.append(i)
                    tokens += take
            while admissible(r, cfg, len(pre) + (0 if chunked_prefill else len(ids))) and (
                budget is None or tokens < budget
            ):
                i = q[0]
                if not chunked_prefill and ids and budget is not None and tokens + ins[i] > budget:
                    break
                q.popleft()
                kv[r] += ins[i] + outs[i]
                admit[i] = t
                if chunked_prefill:
                    pre.append(i)
                    pf_left[i] = ins[i]
                    take = ins[i] if budget is None else min(ins[i], budget - tokens)
                    ids.append(i)
                    tokens += take
                else:
                    ids.append(i)
                    tokens += ins[i]
            if ids:
                act_ids[r] = ids
                act_k[r] = tokens
                last_prefill[r] = True
                schedule(r, PREFILL, t, t + cfg.prefill_s(len(ids), tokens))
                return
        last_prefill[r] = False
        if nrun:
            k = run_q[0][0] - steps[r]
            if chunked_prefill and (pre or admissible(r, cfg, len(pre))):
                k = 1
            act_k[r] = k
            schedule(r, DECODE, t, t + cfg.decode_s(nrun, ctx[r], k))
            return
        action[r] = IDLE

    def complete(r: int, t: float) -> None:
        kind = action[r]
        add_busy(r, act_t0[r], t)
        if kind == PREFILL:
            ids = act_ids[r]
            if chunked_prefill:
                budget = act_k[r]
                finished = []
                for i in ids:
                    take = min(pf_left[i], budget)
                    pf_left[i] -= take
                    budget -= take
                    if pf_left[i] == 0:
                        finished.append(i)
                        del pf_left[i]
                pre = prefilling[r]
                for i in finished:
                    pre.remove(i)
                ids = finished
            for i in ids:
                first[i] = t
                if outs[i] <= 1:
                    done(r, i, t)
                else:
                    heapq.heappush(running[r], (steps[r] + outs[i] - 1, i))
                    ctx[r] += ins[i] + 1
        elif kind == DECODE:
            k = act_k[r]
            run_q = running[r]
            ctx[r] += len(run_q) * k
            steps[r] += k
            g = steps[r]
            while run_q and run_q[0][0] <= g:
                _, i = heapq.heappop(run_q)
                ctx[r] -= ins[i] + outs[i]
                done(r, i, t)
        elif kind == STATIC:
            for i in act_ids[r]:
                first[i] = act_t0[r] + act_pf[r]
                done(r, i, t)
        action[r] = IDLE

    def arrive(i: int, t: float) -> None:
        if shared_queue:
            waiting[0].append(i)
            for r in range(n_rep):
                if action[r] == IDLE:
                    schedule(r, WAKE, t, t)
            return
        r = route(load) if route_in is None or target is None else route_in(load, target[i])
        rep[i] = r
        load[r] += 1
        waiting[r].append(i)
        cfg = configs[r]
        if action[r] == IDLE:  # wake at t, after every arrival of the same instant (they share a pass)
            schedule(r, WAKE, t, t)
        elif action[r] == DECODE and not cfg.static and len(waiting[r]) == 1 and admissible(r, cfg, len(prefilling[r])):
            t0 = act_t0[r]
            k = act_k[r]
            j = cfg.steps_within(len(running[r]), ctx[r], k, t - t0)
            if j + 1 < k:
                act_k[r] = j + 1
                ver[r] += 1
                heapq.heappush(heap, (t0 + cfg.decode_s(len(running[r]), ctx[r], j + 1), ver[r], r))

    pos = 0
    t = 0.0
    while True:
        ta = open_t[pos] if pos < n_open else INF
        if pending and pending[0] < ta:
            ta = pending[0]
        te = heap[0][0] if heap else INF
        if te == INF and ta == INF:
            break
        if te < ta:
            t, v, r = heapq.heappop(heap)
            if v != ver[r]:
                continue
            if t > t_max:
                break
            events += 1
            complete(r, t)
            decide(r, t)
        else:
            t = ta
            if t > t_max:
                break
            events += 1
            if pos < n_open and open_t[pos] == ta:
                i = pos
                pos += 1
            else:
                heapq.heappop(pending)
                i = len(arr_t)
                arr_t.append(t)
                ins.append(c_in if listed is None else int(listed[0][i]))
                outs.append(c_out if listed is None else int(listed[1][i]))
                admit.append(math.nan)
                first.append(math.nan)
                finish.append(math.nan)
                rep.append(-1)
            arrive(i, t)
    for r in range(n_rep):  # actions still running at the end count as busy up to the end
        if action[r] != IDLE:
            add_busy(r, act_t0[r], min(t, t_max))
    return RawRun(
        arrival_s=np.asarray(arr_t, dtype=float),
        admit_s=np.asarray(admit, dtype=float),
        first_token_s=np.asarray(first, dtype=float),
        finish_s=np.asarray(finish, dtype=float),
        input_tokens=np.asarray(ins, dtype=np.int64),
        output_tokens=np.asarray(outs, dtype=np.int64),
        replica=np.asarray(rep, dtype=np.int64),
        busy_s=np.asarray(busy, dtype=float),
        bin_s=width,
        end_s=min(t, t_max),
        events=events,
    )
