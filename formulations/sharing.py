"""Shared replicas: request classes of one model split their rate over configurations they share.

A *pool* is one configuration (instance type, region, market, TP degree, batch size, offload fraction) that
two or more request classes may be routed to (``formulations/README.md``, "Shared replicas", rows (20)-(22)).
Its candidates are the rows of the table with that ``pool`` number, one per class it may serve, each with the
class's rate ``r_{k,p}`` and latencies predicted for the mix (``solver.planning.candidates.shared_candidates``).
A row with ``pool = -1`` (or a table without the column) is an ordinary candidate with its own instances.

For a pooled row the count variable ``n_c`` becomes a continuous *instance share* ``s_{k,p} >= 0``: class k
is routed ``x_{k,p} = u · r_{k,p} · ρ_p · s_{k,p}`` requests/s, so demand (8) reads
``Σ_c x_{k,c} >= λ_k`` unchanged, and the pool's integer count ``N_p`` carries

- (20) ``Σ_k s_{k,p} <= N_p``, i.e. ``Σ_k x_{k,p} / r_{k,p} <= u · ρ_p · N_p`` (load additivity);
- the pool's cost and every fleet limit ((13), (15)-(19), (O1)) counted on ``N_p`` instead of ``n_c``.

Nothing else changes: the per-candidate rules (2)-(7) hold row by row on the mixed predictions, and (1)
``s_c <= U_c y_c`` still bounds each share by what the class alone needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations.linear import IntArray, VarFamily
from formulations.model import Context, Selection

POOL_COLUMN = "pool"
"""Candidate column: the pool a row belongs to (``-1``: an ordinary candidate)."""
POOL_KEYS: tuple[str, ...] = ("instance_type", "family", "region", "market", "usd_per_hour", "replicas")
"""Columns every row of one pool must agree on (what the fleet limits and the cost read)."""


@dataclass(frozen=True)
class Pools:
    """The pools of a model: count family ``N``, per candidate its pool (``-1``: none), and each pool's leader.

    ``leader[p]`` is the first candidate of pool ``p``: the row whose type, region, price are the pool's.
    """

    N: VarFamily | None
    pool_of: IntArray
    leader: IntArray

    @property
    def size(self) -> int:
        """Number of pools."""
        return int(self.leader.size)


def pool_codes(cands: pd.DataFrame) -> IntArray:
    """Per candidate, its pool ``0 .. P-1`` in order of first appearance (``-1``: not pooled)."""
    if POOL_COLUMN not in cands.columns or cands.empty:
        return np.full(len(cands), -1, dtype=np.int64)
    raw = cands[POOL_COLUMN].to_numpy(dtype=np.int64)
    out = np.full(raw.size, -1, dtype=np.int64)
    pooled = raw >= 0
    if pooled.any():
        code, _ = pd.factorize(raw[pooled], sort=False)
        out[pooled] = code
    return out


def check_pools(cands: pd.DataFrame) -> None:
    """Raise ``ValueError`` when rows of one pool disagree on :data:`POOL_KEYS` or a class appears twice in one."""
    code = pool_codes(cands)
    pooled = code >= 0
    if not pooled.any():
        return
    part = cands[pooled].assign(_pool=code[pooled])
    for key in POOL_KEYS:
        if key in part.columns and (part.groupby("_pool")[key].nunique(dropna=False) > 1).any():
            raise ValueError(f"candidates.pool: rows of one pool differ in {key}")
    if part.duplicated(["_pool", "workload"]).any():
        raise ValueError("candidates.pool: a workload appears twice in one pool")


def add_pools(ctx: Context, sel: Selection) -> Pools:
    """(20): pooled counts become shares, ``Σ_{c in p} s_c <= N_p`` with ``N_p`` integer.

    ``N_p <= Σ_{c in p} ceil(U_c)``: a pool never needs more instances than its classes' shares can use.
    """
    code = pool_codes(ctx.cands)
    pooled = np.flatnonzero(code >= 0)
    if pooled.size == 0:
        return Pools(None, code, np.zeros(0, dtype=np.int64))
    check_pools(ctx.cands)
    n_pools = int(code.max()) + 1
    leader = np.full(n_pools, -1, dtype=np.int64)
    for c in pooled[::-1]:  # first row of each pool
        leader[code[c]] = c
    ub = np.zeros(n_pools)
    np.add.at(ub, code[pooled], np.ceil(sel.big_m[pooled]))
    pool_n = ctx.lm.add_vars("N", n_pools, 0.0, ub, integer=True)
    ctx.lm.set_continuous(sel.n, pooled)
    ctx.lm.add_grouped_rows(
        "sharing.capacity",
        np.concatenate([code[pooled], np.arange(n_pools)]),
        n_pools,
        np.concatenate([sel.n.index[pooled], pool_n.index]),
        np.concatenate([np.ones(pooled.size), -np.ones(n_pools)]),
        hi=0.0,
    )
    return Pools(pool_n, code, leader)


def instance_columns(ctx: Context, sel: Selection, pools: Pools | None) -> tuple[IntArray, IntArray]:
    """Return the variables that count rented instances, and per variable the candidate whose columns describe it.

    Ordinary candidates: ``n_c`` (candidate c); pools: ``N_p`` (its leader). Every fleet limit and the cost
    sum over these, so a pool's instances are counted once, however many classes it serves.
    """
    m = len(ctx.cands)
    if pools is None or pools.N is None:
        return np.arange(m, dtype=np.int64), sel.n.index
    own = np.flatnonzero(pools.pool_of < 0)
    return np.concatenate([own, pools.leader]), np.concatenate([sel.n.index[own], pools.N.index])
