"""A small solver-neutral linear model: variable families, blocks of rows, a linear objective.

Everything is stored as numpy arrays and built in bulk: a family of variables is a contiguous index range
with bound and integrality arrays; a block of rows is a set of (row, column, coefficient) triplets with row
bounds ``lo <= a·x <= hi`` (``-inf``/``inf`` for one-sided rows). Backends translate the compiled arrays
(:meth:`LinearModel.compile`) into their solver's objects; formulations never import a solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from solver.tolerances import BOUND_ROUNDING_TOL, EMPTY_ROW_TOL, FEASIBILITY_TOL, SOLUTION_TOL

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Sense = Literal["min", "max"]


@dataclass(frozen=True)
class VarFamily:
    """A family of variables: global indices ``start .. start + size - 1``.

    Attributes
    ----------
    name
        Family name (``n``, ``y``, ``h``), as in ``formulations/README.md``.
    start, size
        First global index and number of variables.
    integer
        Whether the family is integral (binaries are integers with bounds [0, 1]).
    """

    name: str
    start: int
    size: int
    integer: bool

    @property
    def index(self) -> IntArray:
        """Global indices of the family's variables."""
        return np.arange(self.start, self.start + self.size, dtype=np.int64)


@dataclass(frozen=True)
class RowBlock:
    """A block of rows ``lo <= sum coef · x[col] <= hi``, as triplets with block-local row numbers."""

    name: str
    n_rows: int
    row: IntArray
    col: IntArray
    coef: FloatArray
    lo: FloatArray
    hi: FloatArray


@dataclass(frozen=True)
class CompiledModel:
    """The whole model as flat arrays (rows in CSR form), ready for a backend.

    ``row_block`` gives, per row, the name of the block it came from (for diagnostics).
    """

    sense: Sense
    lb: FloatArray
    ub: FloatArray
    integer: npt.NDArray[np.bool_]
    objective: FloatArray
    objective_offset: float
    indptr: IntArray
    indices: IntArray
    data: FloatArray
    row_lo: FloatArray
    row_hi: FloatArray
    row_block: list[str]

    @property
    def n_vars(self) -> int:
        """Number of variables."""
        return int(self.lb.size)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.row_lo.size)

    def row_activity(self, x: FloatArray) -> FloatArray:
        """Return ``A·x`` for every row."""
        prod = self.data * x[self.indices]
        if not prod.size:
            return np.zeros(self.n_rows)
        out = np.add.reduceat(prod, np.minimum(self.indptr[:-1], prod.size - 1))
        out[np.diff(self.indptr) == 0] = 0.0  # reduceat returns the element itself on empty segments
        return out

    def row_violation(self, x: FloatArray, rows: IntArray) -> FloatArray:
        """Per row of ``rows``, how far ``A·x`` lies outside ``[lo, hi]``, relative to ``max(1, |bound|)``."""
        lengths = np.diff(self.indptr)[rows]
        nz = np.repeat(self.indptr[rows] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        act = np.zeros(rows.size)
        np.add.at(act, np.repeat(np.arange(rows.size), lengths), self.data[nz] * x[self.indices[nz]])
        lo, hi = self.row_lo[rows], self.row_hi[rows]
        with np.errstate(invalid="ignore"):
            below = np.where(np.isfinite(lo), (lo - act) / np.maximum(1.0, np.abs(lo)), 0.0)
            above = np.where(np.isfinite(hi), (act - hi) / np.maximum(1.0, np.abs(hi)), 0.0)
        return np.maximum(np.maximum(below, above), 0.0)

    def rows_hold(self, x: FloatArray, rows: IntArray, rel_tol: float = FEASIBILITY_TOL) -> bool:
        """Whether ``lo - tol <= A·x <= hi + tol`` on ``rows``, ``tol = rel_tol · max(1, |bound|)``."""
        return bool(rows.size == 0 or np.all(self.row_violation(x, rows) <= rel_tol))

    def violations(self, x: FloatArray, tol: float = SOLUTION_TOL) -> list[str]:
        """Return what ``x`` breaks: bounds, integrality and rows, one line each (empty when it holds).

        Parameters
        ----------
        x
            A value per variable.
        tol
            Relative tolerance: a bound or row side ``b`` may be missed by ``tol · max(1, |b|)``; an integer
            variable may lie ``tol`` (absolute) off an integer. Backends use :data:`SOLUTION_TOL`.

        Returns
        -------
        list of str
            At most one line per broken kind and block (the worst entry), naming the row block or variable.
        """
        out: list[str] = []
        if x.shape != (self.n_vars,) or not np.all(np.isfinite(x)):
            return [f"solution has shape {x.shape} or non-finite values; the model has {self.n_vars} variables"]
        with np.errstate(invalid="ignore"):
            below = np.where(np.isfinite(self.lb), (self.lb - x) / np.maximum(1.0, np.abs(self.lb)), 0.0)
            above = np.where(np.isfinite(self.ub), (x - self.ub) / np.maximum(1.0, np.abs(self.ub)), 0.0)
        for what, worst in (("below its lower bound", below), ("above its upper bound", above)):
            if worst.size and worst.max() > tol:
                j = int(np.argmax(worst))
                out.append(f"variable {j} is {what} by {worst[j]:.3g} (relative)")
        frac = np.abs(x - np.rint(x)) * self.integer
        if frac.size and frac.max() > tol:
            j = int(np.argmax(frac))
            out.append(f"integer variable {j} = {x[j]:.9g} is not integral")
        viol = self.row_violation(x, np.arange(self.n_rows))
        worst_by_block: dict[str, int] = {}
        for row in np.flatnonzero(viol > tol).tolist():
            name = self.row_block[row]
            if name not in worst_by_block or viol[row] > viol[worst_by_block[name]]:
                worst_by_block[name] = row
        for name, row in worst_by_block.items():
            out.append(f"row {row} ({name}) is broken by {viol[row]:.3g} (relative)")
        return out

    def relaxable_rows(self, rows: IntArray) -> IntArray:
        """Those of ``rows`` of the form ``sum a·x <= hi`` with every ``a >= 0`` (variables are ``>= 0`` here).

        Dropping the terms of some variables from such a row relaxes it: the restricted row is implied by the
        full one. Quotas and budgets are of this form; ``min_instances`` (a lower bound) is not.
        """
        lengths = np.diff(self.indptr)
        row_of = np.repeat(np.arange(self.n_rows), lengths)
        negative = np.zeros(self.n_rows, dtype=bool)
        negative[row_of[self.data < 0]] = True
        ok = ~negative & ~np.isfinite(self.row_lo) & np.isfinite(self.row_hi)
        return rows[ok[rows]]

    def restrict(self, cols: IntArray, rows: IntArray) -> ModelBlock:
        """Return the sub-model on the variables ``cols`` with ``rows``, dropping their nonzeros on other variables.

        For rows from :meth:`relaxable_rows` (or rows whose nonzeros all lie on ``cols``) the sub-model is a
        relaxation of the whole model projected onto ``cols``.
        """
        pos = np.full(self.n_vars, -1, dtype=np.int64)
        pos[cols] = np.arange(cols.size)
        lengths = np.diff(self.indptr)[rows]
        nz = np.repeat(self.indptr[rows] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        keep = pos[self.indices[nz]] >= 0
        row_local = np.repeat(np.arange(rows.size), lengths)[keep]
        nz = nz[keep]
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_local, minlength=rows.size), out=indptr[1:])
        sub = CompiledModel(
            self.sense,
            self.lb[cols],
            self.ub[cols],
            self.integer[cols],
            self.objective[cols],
            0.0,
            indptr,
            pos[self.indices[nz]],
            self.data[nz],
            self.row_lo[rows],
            self.row_hi[rows],
            [self.row_block[r] for r in rows],
        )
        return ModelBlock(cols, rows, sub)

    def split(self, var_block: IntArray, n_blocks: int) -> tuple[list[ModelBlock], IntArray]:
        """Split by a partition of the variables: one sub-model per block, and the rows that couple blocks.

        Block ``k`` gets the variables with ``var_block == k`` (bounds, integrality, objective) and every row
        whose nonzeros all lie on them. The other rows (nonzeros on two or more blocks, or none) are returned
        as ``coupling``: dropping them relaxes the model, so the blocks' optima bound the whole model's.
        """
        lengths = np.diff(self.indptr)
        row_of = np.repeat(np.arange(self.n_rows), lengths)
        nz_block = var_block[self.indices]
        lo_b = np.full(self.n_rows, n_blocks, dtype=np.int64)
        hi_b = np.full(self.n_rows, -1, dtype=np.int64)
        np.minimum.at(lo_b, row_of, nz_block)
        np.maximum.at(hi_b, row_of, nz_block)
        local = (lengths > 0) & (lo_b == hi_b)
        coupling = np.flatnonzero(~local)
        var_order = np.argsort(var_block, kind="stable")
        var_counts = np.bincount(var_block, minlength=n_blocks)
        var_start = np.concatenate([[0], np.cumsum(var_counts)])
        row_key = np.where(local, lo_b, n_blocks)
        row_order = np.argsort(row_key, kind="stable")
        row_counts = np.bincount(row_key, minlength=n_blocks + 1)
        row_start = np.concatenate([[0], np.cumsum(row_counts)])
        blocks = []
        for k in range(n_blocks):
            cols = var_order[var_start[k] : var_start[k + 1]]
            rows = row_order[row_start[k] : row_start[k + 1]]
            blocks.append(self.restrict(cols, rows))  # local rows: every nonzero lies on ``cols``
        return blocks, coupling


@dataclass(frozen=True)
class ModelBlock:
    """One block of :meth:`CompiledModel.split`: global variable and row indices, and the sub-model."""

    cols: IntArray
    rows: IntArray
    model: CompiledModel


@dataclass
class LinearModel:
    """A mixed-integer linear model under construction.

    Variables come in families (:meth:`add_vars`), rows in blocks (:meth:`add_rows` and the helpers
    :meth:`add_diagonal_rows` and :meth:`add_grouped_rows`), the objective as a dense coefficient array.
    """

    sense: Sense = "min"
    families: dict[str, VarFamily] = field(default_factory=dict)
    blocks: dict[str, RowBlock] = field(default_factory=dict)
    _lb: list[FloatArray] = field(default_factory=list)
    _ub: list[FloatArray] = field(default_factory=list)
    _int: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    _obj_idx: list[IntArray] = field(default_factory=list)
    _obj_coef: list[FloatArray] = field(default_factory=list)
    objective_offset: float = 0.0

    # ---- variables -------------------------------------------------------------------------------
    @property
    def n_vars(self) -> int:
        """Number of variables so far."""
        return sum(f.size for f in self.families.values())

    @property
    def n_rows(self) -> int:
        """Number of rows so far."""
        return sum(b.n_rows for b in self.blocks.values())

    def add_vars(
        self,
        name: str,
        size: int,
        lb: float | npt.ArrayLike = 0.0,
        ub: float | npt.ArrayLike = np.inf,
        integer: bool = False,
    ) -> VarFamily:
        """Add a family of ``size`` variables with bounds ``lb <= x <= ub`` (scalars or arrays)."""
        if name in self.families:
            raise ValueError(f"variable family {name!r} already exists")
        fam = VarFamily(name, self.n_vars, int(size), integer)
        self._lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (size,)).copy())
        self._ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (size,)).copy())
        self._int.append(np.full(size, integer, dtype=bool))
        self.families[name] = fam
        return fam

    def set_continuous(self, fam: VarFamily, local: IntArray) -> None:
        """Make the variables ``local`` (positions within ``fam``) continuous (shared replicas' shares)."""
        self._int[list(self.families).index(fam.name)][local] = False

    def bounds(self, fam: VarFamily) -> tuple[FloatArray, FloatArray]:
        """Return (views of) the lower and upper bound arrays of a family."""
        k = list(self.families).index(fam.name)
        return self._lb[k], self._ub[k]

    # ---- rows ------------------------------------------------------------------------------------
    def add_rows(
        self,
        name: str,
        n_rows: int,
        row: npt.ArrayLike,
        col: npt.ArrayLike,
        coef: npt.ArrayLike,
        lo: float | npt.ArrayLike = -np.inf,
        hi: float | npt.ArrayLike = np.inf,
    ) -> RowBlock:
        """Add a block of rows given as triplets (block-local row, global column, coefficient)."""
        if name in self.blocks:
            raise ValueError(f"row block {name!r} already exists")
        r = np.asarray(row, dtype=np.int64)
        c = np.asarray(col, dtype=np.int64)
        a = np.broadcast_to(np.asarray(coef, dtype=float), r.shape).copy()
        if r.size and (r.min() < 0 or r.max() >= n_rows):
            raise ValueError(f"row block {name!r}: row number out of range")
        block = RowBlock(
            name,
            int(n_rows),
            r,
            c,
            a,
            np.broadcast_to(np.asarray(lo, dtype=float), (n_rows,)).copy(),
            np.broadcast_to(np.asarray(hi, dtype=float), (n_rows,)).copy(),
        )
        self.blocks[name] = block
        return block

    def add_diagonal_rows(
        self,
        name: str,
        terms: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
        lo: float | npt.ArrayLike = -np.inf,
        hi: float | npt.ArrayLike = np.inf,
    ) -> RowBlock:
        """Add rows ``i = 0..m-1`` with ``lo_i <= sum_k coef_k[i] · x[idx_k[i]] <= hi_i``.

        ``terms`` is a list of (index array, coefficient array or scalar) pairs of equal length ``m``.
        """
        idx = [np.asarray(t[0], dtype=np.int64) for t in terms]
        m = idx[0].size
        rows = np.concatenate([np.arange(m, dtype=np.int64)] * len(terms))
        cols = np.concatenate(idx)
        coefs = np.concatenate([np.broadcast_to(np.asarray(t[1], dtype=float), (m,)) for t in terms])
        return self.add_rows(name, m, rows, cols, coefs, lo, hi)

    def add_grouped_rows(
        self,
        name: str,
        group: npt.ArrayLike,
        n_groups: int,
        col: npt.ArrayLike,
        coef: npt.ArrayLike,
        lo: float | npt.ArrayLike = -np.inf,
        hi: float | npt.ArrayLike = np.inf,
    ) -> RowBlock:
        """Add one row per group ``g``: ``lo_g <= sum_{i: group_i = g} coef_i · x[col_i] <= hi_g``."""
        return self.add_rows(name, n_groups, group, col, coef, lo, hi)

    # ---- objective -------------------------------------------------------------------------------
    def set_sense(self, sense: Sense) -> None:
        """Minimise or maximise the objective."""
        self.sense = sense

    def add_objective(self, col: npt.ArrayLike, coef: npt.ArrayLike) -> None:
        """Add ``sum coef_i · x[col_i]`` to the objective."""
        c = np.asarray(col, dtype=np.int64)
        self._obj_idx.append(c)
        self._obj_coef.append(np.broadcast_to(np.asarray(coef, dtype=float), c.shape).copy())

    # ---- output ----------------------------------------------------------------------------------
    def compile(self, singletons_as_bounds: bool = False) -> CompiledModel:
        """Return the model as flat arrays; rows in CSR order (block by block).

        With ``singletons_as_bounds``, every row with one nonzero term is turned into a bound on its
        variable (rounded inwards for integer variables) and dropped, and so is every row without a nonzero
        term that holds (``lo <= 0 <= hi``): exact, standard presolve steps.
        """
        n = self.n_vars
        lb = np.concatenate(self._lb) if self._lb else np.zeros(0)
        ub = np.concatenate(self._ub) if self._ub else np.zeros(0)
        integer = np.concatenate(self._int) if self._int else np.zeros(0, dtype=bool)
        obj = np.zeros(n)
        for c, a in zip(self._obj_idx, self._obj_coef, strict=True):
            np.add.at(obj, c, a)
        rows, cols, coefs, lo, hi, names = [], [], [], [], [], []
        offset = 0
        for b in self.blocks.values():
            keep = b.coef != 0.0
            rows.append(b.row[keep] + offset)
            cols.append(b.col[keep])
            coefs.append(b.coef[keep])
            lo.append(b.lo)
            hi.append(b.hi)
            names.extend([b.name] * b.n_rows)
            offset += b.n_rows
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        a = np.concatenate(coefs) if coefs else np.zeros(0)
        row_lo = np.concatenate(lo) if lo else np.zeros(0)
        row_hi = np.concatenate(hi) if hi else np.zeros(0)
        keep_rows = np.ones(offset, dtype=bool)
        if singletons_as_bounds and offset:
            lb, ub = lb.copy(), ub.copy()
            counts = np.bincount(r, minlength=offset)
            single = counts[r] == 1
            sr, sc, sa = r[single], c[single], a[single]
            lo_s, hi_s = row_lo[sr] / sa, row_hi[sr] / sa
            new_lo = np.where(sa > 0, lo_s, hi_s)
            new_hi = np.where(sa > 0, hi_s, lo_s)
            tol = BOUND_ROUNDING_TOL
            new_lo = np.where(integer[sc], np.ceil(new_lo - tol), new_lo)
            new_hi = np.where(integer[sc], np.floor(new_hi + tol), new_hi)
            np.maximum.at(lb, sc, new_lo)
            np.minimum.at(ub, sc, new_hi)
            keep_rows[sr] = False
            empty = counts == 0  # all coefficients zero: only a row that cannot hold (0 outside [lo, hi]) stays
            keep_rows[empty] = (row_lo[empty] > EMPTY_ROW_TOL) | (row_hi[empty] < -EMPTY_ROW_TOL)
            keep_trip = keep_rows[r]
            r, c, a = r[keep_trip], c[keep_trip], a[keep_trip]
            renumber = np.cumsum(keep_rows) - 1
            r = renumber[r]
            row_lo, row_hi = row_lo[keep_rows], row_hi[keep_rows]
            names = [nm for nm, k in zip(names, keep_rows, strict=True) if k]
        m = int(row_lo.size)
        order = np.lexsort((c, r))
        r, c, a = r[order], c[order], a[order]
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=m), out=indptr[1:])
        return CompiledModel(
            self.sense, lb, ub, integer, obj, self.objective_offset, indptr, c, a, row_lo, row_hi, names
        )

    def summary(self) -> dict[str, int]:
        """Numbers of variables (all, integer) and rows and nonzeros, for benchmarks and logs."""
        ints = int(sum(f.size for f in self.families.values() if f.integer))
        nnz = int(sum(int(np.count_nonzero(b.coef)) for b in self.blocks.values()))
        return {"variables": self.n_vars, "integer_variables": ints, "rows": self.n_rows, "nonzeros": nnz}
