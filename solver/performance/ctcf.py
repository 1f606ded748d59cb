"""CTCF, InferSave's Compute Time Calibration Function: ``calibrated_ms = alpha · modelled_ms + beta_ms``.

One CTCF per (GPU, serving engine, phase); the phases are ``prefill`` (TTFT, ms) and ``decode`` (TPOT, ms per
output token). This module holds the whole rule:

* the profile types (:class:`CalibrationProfile`: one :class:`GPUCalibration` per measured GPU) and the one
  identity profile :data:`IDENTITY` (alpha = 1, beta = 0; the raw roofline);
* :func:`apply_ctcf`, the one function that applies a profile: the performance model, the accuracy report and
  the fit's in-sample errors all call it;
* :func:`fit_ctcf`, the constrained least-squares fit of one GPU's two CTCFs on modelled measurement rows;
* profile files: :func:`load_profile`, :func:`save_profile`, the shipped profiles (:func:`shipped_profile`) and
  :func:`resolve_profile`.

GPUs without measurements take the fit of the *nearest measured GPU by spec* in the same profile: the distance
is ``|log(bandwidth ratio)| + |log(FP16 TFLOPS ratio)|`` between datasheet values (instances/gpus.csv). The
measurement tables and the per-GPU fit with its errors are in :mod:`solver.performance.calibration`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from solver.data.gpus import get_gpu
from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.performance.memory import ENGINE_MEMORY
from solver.tolerances import ALPHA_FLOOR, LSTSQ_TIE_TOL, RANK_TOL
from solver.validation import first_error, load_yaml, write_text_atomic

FloatArray = npt.NDArray[np.float64]

ENGINES = tuple(ENGINE_MEMORY)
"""Serving engines: those with a memory budget; each has a shipped calibration profile where data exists."""
DEFAULT_ENGINE = "vllm"


ALPHA_RANGE = (1e-3, 1e3)
"""Accepted CTCF scales: a measured time 1,000 times off the roofline means a wrong table, not a slow engine
(shipped profiles lie in 0.69..8.8)."""
MAX_BETA_MS = 1e5
"""Largest accepted CTCF offset, ms (100 s per prefill or per output token; shipped profiles stay under 100 ms)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PhaseFit(_Model):
    """One phase's CTCF: calibrated_ms = alpha · modelled_ms + beta_ms + L · beta_per_layer_ms + m · beta_seq.

    ``beta_seq`` is ``beta_per_sequence_ms`` (:func:`apply_ctcf`).

    ``L`` is the model's layer count; ``beta_per_layer_ms`` is 0 in profiles fitted by ``infersave calibrate``
    (one model at a time) and an engine's per-layer overhead in the shipped profiles. ``m`` is the number of
    sequences in a decode step; ``beta_per_sequence_ms`` is an engine's host-side cost per sequence per step
    (scheduling, sampling, detokenising, streaming: it does not shrink with tensor parallelism), decode only.
    """

    alpha: Annotated[float, Field(gt=0)] = 1.0
    beta_ms: Annotated[float, Field(ge=0)] = 0.0
    beta_per_layer_ms: Annotated[float, Field(ge=0)] = 0.0
    beta_per_sequence_ms: Annotated[float, Field(ge=0)] = 0.0


class FitError(_Model):
    """Mean absolute percentage error and worst absolute percentage error of one metric, in percent."""

    rows: int
    mape_before_pct: float | None = None
    mape_after_pct: float | None = None
    worst_after_pct: float | None = None


class GPUCalibration(_Model):
    """The CTCF of one GPU under one engine, with the rows it was fitted on and its in-sample error."""

    prefill: PhaseFit = PhaseFit()
    decode: PhaseFit = PhaseFit()
    rows: int = 0
    datasets: list[str] = []
    rank: int | None = None
    """Independent equations among the fitted rows (``infersave calibrate`` refuses rank below ``parameters``)."""
    parameters: int | None = None
    """CTCF parameters fitted: 4 (alpha, beta per phase), 2 for one phase or a shared scale."""
    shared_scale: bool = False
    """True when only end-to-end times were measured and one scale was fitted for both phases."""
    pooled: list[str] = []
    """Phases whose alpha is the pooled value of the GPU's class (too few rows to separate alpha from beta)."""
    source: str = ""
    """Where the coefficients come from, in words (shipped profiles: fitted, shrunk, pooled, capped)."""
    achieved_bw_fraction: float | None = None
    """Achieved fraction of peak HBM/GDDR bandwidth in decode: MEMORY_BW_EFFICIENCY / decode alpha (at most 1)."""
    achieved_flops_fraction: float | None = None
    """Achieved fraction of peak tensor FLOPS in prefill: COMPUTE_EFFICIENCY / prefill alpha (at most 1)."""
    errors: dict[str, FitError] = {}


class CalibrationProfile(_Model):
    """A calibration profile: CTCF per GPU for one engine (``infersave calibrate`` writes one)."""

    name: str
    engine: str = DEFAULT_ENGINE
    created: str = ""
    description: str = ""
    rows_used: list[str] = []
    """Which measurement rows were used (file and filter, in words)."""
    fit: dict[str, float | int | str] = {}
    """Engine-level parameters and settings of a hierarchical fit (shipped profiles), for the record."""
    gpus: dict[str, GPUCalibration] = {}

    def lookup(self, gpu: str) -> tuple[GPUCalibration, str]:
        """Return the CTCF for ``gpu`` and where it came from (measured, nearest measured GPU, or none).

        Parameters
        ----------
        gpu
            Canonical GPU name.

        Returns
        -------
        tuple
            ``(GPUCalibration, source)``: the identity calibration when the profile has no GPU; ``source`` says
            which, in words.
        """
        if gpu in self.gpus:
            cal = self.gpus[gpu]
            return cal, f"{self.name}: {cal.source or f'measured on {gpu}'}"
        if not self.gpus:
            return GPUCalibration(), f"{self.name}: no measurements (uncalibrated roofline)"
        near = nearest_measured_gpu(gpu, list(self.gpus))
        return self.gpus[near], f"{self.name}: nearest measured GPU by spec {near} (no {gpu} measurements)"

    def to_yaml(self) -> str:
        """Serialise the profile as YAML."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, width=120)


IDENTITY = CalibrationProfile(name="uncalibrated", engine="generic", description="alpha = 1, beta = 0")
"""The identity profile: no GPU measured, so every GPU gets alpha = 1, beta = 0 (the raw roofline)."""


def nearest_measured_gpu(gpu: str, measured: list[str]) -> str:
    """Return the measured GPU closest to ``gpu`` by |log bandwidth ratio| + |log FP16 TFLOPS ratio|.

    Parameters
    ----------
    gpu
        The GPU to calibrate.
    measured
        GPUs with a fit (non-empty).

    Returns
    -------
    str
        The nearest of ``measured``; ties go to the first name in sorted order.
    """
    target = get_gpu(gpu)

    def distance(name: str) -> float:
        other = get_gpu(name)
        return abs(math.log(other.memory_bandwidth_gb_per_s / target.memory_bandwidth_gb_per_s)) + abs(
            math.log(other.fp16_tflops / target.fp16_tflops)
        )

    return min(sorted(measured), key=distance)


# ---- applying a profile ------------------------------------------------------------------------------
def apply_ctcf(
    profile: CalibrationProfile,
    gpus: Sequence[str] | npt.ArrayLike,
    ttft_model_ms: npt.ArrayLike,
    tpot_model_ms: npt.ArrayLike,
    num_layers: npt.ArrayLike | float = 0.0,
    running: npt.ArrayLike | float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Apply ``profile``'s CTCF to modelled TTFT and TPOT, row by row; the only place CTCF is evaluated.

    Parameters
    ----------
    profile
        The calibration profile; each row's GPU is looked up once per distinct GPU
        (:meth:`CalibrationProfile.lookup`: measured, nearest measured GPU by spec, or identity).
    gpus
        Canonical GPU name of each row.
    ttft_model_ms, tpot_model_ms
        Modelled (uncalibrated) TTFT and TPOT of each row, milliseconds.
    num_layers
        Layers of each row's model (scalar or per row), for the per-layer part of beta.
    running
        Sequences in each row's decode step (scalar or per row), for the per-sequence part of the decode beta
        (0: not applied).

    Returns
    -------
    tuple of numpy.ndarray
        ``(ttft_ms, tpot_ms)``: ``alpha_prefill · ttft_model_ms + beta_prefill_ms + L · beta_per_layer_ms`` and
        the same with the decode coefficients plus ``running · beta_per_sequence_ms``, of each row's GPU.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(gpus, dtype=object), dtype=object))
    cals = [profile.lookup(str(u))[0] for u in uniques]
    alpha_p = np.array([c.prefill.alpha for c in cals], dtype=float)[codes]
    beta_p = np.array([c.prefill.beta_ms for c in cals], dtype=float)[codes]
    alpha_d = np.array([c.decode.alpha for c in cals], dtype=float)[codes]
    beta_d = np.array([c.decode.beta_ms for c in cals], dtype=float)[codes]
    layers = np.asarray(num_layers, dtype=float)
    beta_p = beta_p + layers * np.array([c.prefill.beta_per_layer_ms for c in cals], dtype=float)[codes]
    beta_d = beta_d + layers * np.array([c.decode.beta_per_layer_ms for c in cals], dtype=float)[codes]
    per_seq = np.array([c.decode.beta_per_sequence_ms for c in cals], dtype=float)[codes]
    beta_d = beta_d + np.asarray(running, dtype=float) * per_seq
    ttft = np.asarray(ttft_model_ms, dtype=float)
    tpot = np.asarray(tpot_model_ms, dtype=float)
    return alpha_p * ttft + beta_p, alpha_d * tpot + beta_d


# ---- the fit -----------------------------------------------------------------------------------------
def _design(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Relative-error design matrix A and target y for theta = (alpha_p, beta_p, alpha_d, beta_d)."""
    blocks: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    n = rows["output"].to_numpy(dtype=float)
    tm = rows["ttft_model_ms"].to_numpy(dtype=float)
    dm = rows["tpot_model_ms"].to_numpy(dtype=float)
    one, zero = np.ones_like(tm), np.zeros_like(tm)
    for col, design in (
        ("ttft_ms", np.column_stack([tm, one, zero, zero])),
        ("tpot_ms", np.column_stack([zero, zero, dm, one])),
        ("e2e_s", np.column_stack([tm, one, n * dm, n])),
    ):
        y = rows[col].to_numpy(dtype=float) * (1000.0 if col == "e2e_s" else 1.0)
        ok = np.isfinite(y)
        if ok.any():
            blocks.append(design[ok] / y[ok, None])
            targets.append(np.ones(int(ok.sum())))
    return np.vstack(blocks), np.concatenate(targets)


def _constrained_lstsq(a: np.ndarray, y: np.ndarray, positive: list[int], free_zero: list[int]) -> np.ndarray:
    """Least squares with theta[i] > 0 for ``positive`` and theta[j] >= 0 for ``free_zero`` (active-set search)."""
    k = a.shape[1]
    best: tuple[float, np.ndarray] | None = None
    for r in range(len(free_zero) + 1):
        for fixed in itertools.combinations(free_zero, r):
            keep = [i for i in range(k) if i not in fixed]
            theta = np.zeros(k)
            sol, *_ = np.linalg.lstsq(a[:, keep], y, rcond=None)
            theta[keep] = sol
            if any(theta[i] <= 0 for i in positive) or any(theta[j] < 0 for j in free_zero):
                continue
            loss = float(np.sum((a @ theta - y) ** 2))
            if best is None or loss < best[0] - LSTSQ_TIE_TOL:
                best = (loss, theta)
    if best is None:  # no feasible active set: pure scale fit through the origin
        theta = np.zeros(k)
        sol, *_ = np.linalg.lstsq(a[:, positive], y, rcond=None)
        theta[positive] = np.maximum(sol, ALPHA_FLOOR)
        return theta
    return best[1]


def fit_ctcf(rows: pd.DataFrame) -> tuple[PhaseFit, PhaseFit, bool]:
    """Fit one GPU's (prefill, decode) CTCFs by least squares on its modelled measurement rows.

    Each measured value is one linear equation in ``theta = (alpha_p, beta_p, alpha_d, beta_d)``::

        ttft_ms               = alpha_p · ttft_model_ms + beta_p
        tpot_ms               = alpha_d · tpot_model_ms + beta_d
        e2e_s · 1000          = alpha_p · ttft_model_ms + beta_p + n · (alpha_d · tpot_model_ms + beta_d)

    Each equation is divided by its measured value, so the least-squares problem (``numpy.linalg.lstsq``)
    minimises relative errors. ``alpha > 0`` and ``beta >= 0`` are enforced (active-set search over the
    constraints) so that a calibrated model keeps every monotonicity of the raw model. When the rows measure
    only ``e2e_s`` the two phases cannot be separated; then one scale is fitted (``alpha_p = alpha_d``,
    ``beta_p = 0``).

    Parameters
    ----------
    rows
        Measurement rows (``ttft_ms``, ``tpot_ms``, ``e2e_s``, NaN where not measured, and ``output``) with
        ``ttft_model_ms`` and ``tpot_model_ms`` added (:func:`solver.performance.measurements.model_measurements`).

    Returns
    -------
    tuple
        ``(prefill_fit, decode_fit, shared_scale)``; ``shared_scale`` is True when only ``e2e_s`` was measured.
    """
    has_ttft = bool(rows["ttft_ms"].notna().any())
    has_tpot = bool(rows["tpot_ms"].notna().any())
    has_e2e = bool(rows["e2e_s"].notna().any())
    a, y = _design(rows)
    if has_ttft or has_tpot:
        cols = ([0, 1] if has_ttft or has_e2e else []) + ([2, 3] if has_tpot or has_e2e else [])
        sub = _constrained_lstsq(
            a[:, cols],
            y,
            positive=[cols.index(i) for i in (0, 2) if i in cols],
            free_zero=[cols.index(i) for i in (1, 3) if i in cols],
        )
        theta = np.array([1.0, 0.0, 1.0, 0.0])
        theta[cols] = sub
        return (
            PhaseFit(alpha=float(theta[0]), beta_ms=float(theta[1])),
            PhaseFit(alpha=float(theta[2]), beta_ms=float(theta[3])),
            False,
        )
    # e2e only: alpha_p = alpha_d = alpha, beta_p = 0: e2e = alpha·(ttft_m + n·tpot_m) + n·beta_d
    shared = np.column_stack([a[:, 0] + a[:, 2], a[:, 3]])
    theta2 = _constrained_lstsq(shared, y, positive=[0], free_zero=[1])
    alpha = float(theta2[0])
    return PhaseFit(alpha=alpha, beta_ms=0.0), PhaseFit(alpha=alpha, beta_ms=float(theta2[1])), True


# ---- profile files -----------------------------------------------------------------------------------
def load_profile(path: str | Path, field: str = "profile") -> CalibrationProfile:
    """Read a profile YAML written by :func:`save_profile` (or shipped); raises InputError on a bad file.

    Parameters
    ----------
    path
        The YAML file.
    field
        The input field named in errors.

    Returns
    -------
    CalibrationProfile
        The profile; every GPU it names is checked against the GPU table.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(field, f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(field, f"{str(p)!r} is not UTF-8 text (a calibration profile is YAML)") from None
    raw = load_yaml(text, f"{field} ({p.name})")
    if not isinstance(raw, dict):
        raise InputError(field, f"{str(p)!r} must hold a mapping (a calibration profile)")
    try:
        prof = CalibrationProfile.model_validate(raw)
    except pydantic.ValidationError as exc:
        loc, msg = first_error(exc)
        raise InputError(f"{field} ({p.name}: {loc})", msg) from None
    for gpu, cal in prof.gpus.items():
        get_gpu(gpu, field=f"{field} ({p.name}: gpus)")
        check_fit_bounds(cal, f"{field} ({p.name}: gpus.{gpu}")
    return prof


def check_fit_bounds(cal: GPUCalibration, where: str) -> None:
    """Refuse a CTCF outside :data:`ALPHA_RANGE` or :data:`MAX_BETA_MS` (``where`` opens the field name).

    Raises
    ------
    InputError
        Naming ``WHERE.prefill.alpha`` (or the offending field) and the accepted range.
    """
    lo, hi = ALPHA_RANGE
    for phase in ("prefill", "decode"):
        fit: PhaseFit = getattr(cal, phase)
        if not lo <= fit.alpha <= hi:
            raise InputError(f"{where}.{phase}.alpha)", f"must be in [{lo:g}, {hi:g}], got {fit.alpha:g}")
        if not 0 <= fit.beta_ms <= MAX_BETA_MS:
            raise InputError(f"{where}.{phase}.beta_ms)", f"must be in [0, {MAX_BETA_MS:g}] ms, got {fit.beta_ms:g}")


def save_profile(profile: CalibrationProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML to ``path`` (atomically: a failed write keeps the old file); return the path.

    Parameters
    ----------
    profile
        The profile to write.
    path
        Target file; missing parent folders are created.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("out", f"cannot write {str(p)!r}: {exc.strerror or exc}") from None
    return write_text_atomic(p, profile.to_yaml())


def check_engine(engine: str) -> None:
    """Raise UnknownNameError (field ``engine``) for an engine not in :data:`ENGINES`.

    Parameters
    ----------
    engine
        The engine name to check.
    """
    if engine not in ENGINES:
        raise UnknownNameError("engine", "engine", engine, ENGINES)


@functools.cache
def shipped_profile(engine: str) -> CalibrationProfile:
    """Return the shipped profile of ``engine`` (``instances/calibration/ENGINE.yaml``), identity if absent.

    Parameters
    ----------
    engine
        One of :data:`ENGINES`.

    Returns
    -------
    CalibrationProfile
        The shipped profile, or :data:`IDENTITY` renamed for ``engine`` when none is shipped.
    """
    check_engine(engine)
    path = data_path("calibration", f"{engine}.yaml")
    if not path.is_file():
        return IDENTITY.model_copy(update={"name": f"{engine} (no shipped profile)", "engine": engine})
    return load_profile(path)


def resolve_profile(engine: str, profile: CalibrationProfile | str | Path | None) -> CalibrationProfile:
    """Return ``profile`` (loading it if a path) or the shipped profile of ``engine``.

    Parameters
    ----------
    engine
        One of :data:`ENGINES` (checked even when ``profile`` is given).
    profile
        A profile, a path to a profile YAML, or None for the shipped profile of ``engine``.

    Returns
    -------
    CalibrationProfile
        The profile to apply.
    """
    check_engine(engine)
    if profile is None:
        return shipped_profile(engine)
    if isinstance(profile, CalibrationProfile):
        return profile
    return load_profile(profile)


def fit_identifiability(rows: pd.DataFrame) -> tuple[int, int, list[str]]:
    """Rank of the CTCF design on one GPU's modelled rows, parameters fitted, and the under-determined phases.

    Mirrors :func:`fit_ctcf`: the columns fitted are those its measured columns reach. Columns are scaled to
    unit norm before the rank is taken, so milliseconds and ones weigh alike.

    Parameters
    ----------
    rows
        One GPU's measurement rows with the modelled columns
        (:func:`solver.performance.measurements.model_measurements`).

    Returns
    -------
    tuple
        ``(rank, parameters, phases)``; ``phases`` lists ``prefill``/``decode`` (or ``shared scale``) whose
        parameters the rows cannot separate.
    """
    has_ttft = bool(rows["ttft_ms"].notna().any())
    has_tpot = bool(rows["tpot_ms"].notna().any())
    has_e2e = bool(rows["e2e_s"].notna().any())
    a, _ = _design(rows)
    if has_ttft or has_tpot:
        groups = {}
        if has_ttft or has_e2e:
            groups["prefill"] = [0, 1]
        if has_tpot or has_e2e:
            groups["decode"] = [2, 3]
        mat = a[:, [c for cols in groups.values() for c in cols]]
    else:
        mat = np.column_stack([a[:, 0] + a[:, 2], a[:, 3]])
        groups = {"shared scale": [0, 1]}
    rank = _rank(mat)
    weak = [name for name, cols in groups.items() if _rank(a[:, cols] if name != "shared scale" else mat) < 2]
    return rank, mat.shape[1], weak or list(groups)


def _rank(mat: np.ndarray) -> int:
    """Numerical rank of ``mat`` after scaling its columns to unit norm."""
    norms = np.linalg.norm(mat, axis=0)
    norms[norms == 0] = 1.0
    return int(np.linalg.matrix_rank(mat / norms, tol=RANK_TOL * max(mat.shape)))
