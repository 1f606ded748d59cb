"""CTCF calibration: ``calibrated = alpha · modelled + beta`` per (GPU, serving engine, phase), by least squares.

InferSave's Compute Time Calibration Function, fitted here on two phases: ``prefill`` (TTFT, ms) and ``decode``
(TPOT, ms per output token). A measurement row may give any subset of ``ttft_ms``, ``tpot_ms`` and ``e2e_s``;
each measured value is one linear equation in ``theta = (alpha_p, beta_p, alpha_d, beta_d)``::

    ttft_ms               = alpha_p · ttft_model_ms + beta_p
    tpot_ms               = alpha_d · tpot_model_ms + beta_d
    e2e_s · 1000          = alpha_p · ttft_model_ms + beta_p + n · (alpha_d · tpot_model_ms + beta_d)

Each equation is divided by its measured value, so the least-squares problem (``numpy.linalg.lstsq``) minimises
relative errors. ``alpha > 0`` and ``beta >= 0`` are enforced (active-set search over the constraints) so that a
calibrated model keeps every monotonicity of the raw model. When a GPU's rows measure only ``e2e_s`` the two
phases cannot be separated; then one scale is fitted (``alpha_p = alpha_d``, ``beta_p = 0``).

Measurement table schema (CSV, one row per measured run; ``infersave calibrate`` reads it):

============  =====================================================================================
column        meaning
============  =====================================================================================
gpu           GPU name or alias (``instances/gpus.csv``)                                   required
model         shipped model name or HF id (``infersave models``)                            required
tp            tensor-parallel degree (GPUs per replica)                                    default 1
dtype         weight dtype fp16|bf16|fp8|int8|int4                            default: the model's
kv_dtype      KV-cache dtype                                                    default: from dtype
engine        serving engine (vllm, tgi, trtllm, flexgen, generic)                      default vllm
batch         sequences in the batch (static) or concurrency (continuous)                 required
input         prompt tokens per sequence                                                  required
output        generated tokens per sequence                                               required
ttft_ms       measured time to first token                                                optional
tpot_ms       measured time per output token                                              optional
e2e_s         measured end-to-end time of the batch                                       optional
batching      ``static`` (default) or ``continuous`` (serving benchmark at fixed concurrency)
offload       KV offload fraction (default 0)                   offload_mode: copy|cpu_attention
dataset       free label, used by leave-one-dataset-out validation                        optional
============  =====================================================================================

At least one of ttft_ms, tpot_ms, e2e_s must be present in each row.

GPUs without measurements take the fit of the *nearest measured GPU by spec* in the same profile: the
distance is ``|log(bandwidth ratio)| + |log(FP16 TFLOPS ratio)|`` between datasheet values (instances/gpus.csv).
The ``generic`` profile pools every engine's measurements per GPU.
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from solver.data.gpus import get_gpu, load_gpus
from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.specs import MAX_BATCH, MAX_TOKENS
from solver.validation import first_error, load_yaml, write_text_atomic

ENGINES = ("vllm", "tgi", "trtllm", "flexgen", "generic")
"""Serving engines with a memory budget and (where data exists) a shipped calibration profile."""
DEFAULT_ENGINE = "vllm"
PHASES = ("prefill", "decode")
MEASURED = ("ttft_ms", "tpot_ms", "e2e_s")
REQUIRED_COLUMNS = ("gpu", "model", "batch", "input", "output")
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "tp": 1,
    "dtype": None,
    "kv_dtype": None,
    "engine": DEFAULT_ENGINE,
    "batching": "static",
    "offload": 0.0,
    "offload_mode": "copy",
    "dataset": "user",
}


ALPHA_RANGE = (1e-3, 1e3)
"""Accepted CTCF scales: a measured time 1,000 times off the roofline means a wrong table, not a slow engine
(shipped profiles lie in 0.69..8.8)."""
MAX_BETA_MS = 1e5
"""Largest accepted CTCF offset, ms (100 s per prefill or per output token; shipped profiles stay under 100 ms)."""
TP_DEGREES = tuple(2**k for k in range(7))
"""Tensor-parallel degrees a measurement may have: the planner's (powers of two up to 64, ``search.tp_degrees``)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PhaseFit(_Model):
    """One phase's CTCF: calibrated_ms = alpha · modelled_ms + beta_ms."""

    alpha: Annotated[float, Field(gt=0)] = 1.0
    beta_ms: Annotated[float, Field(ge=0)] = 0.0

    def apply(self, modelled_ms: Any) -> Any:
        """Return ``alpha · modelled_ms + beta_ms`` (works on scalars and numpy arrays)."""
        return self.alpha * modelled_ms + self.beta_ms


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
    errors: dict[str, FitError] = {}


class CalibrationProfile(_Model):
    """A calibration profile: CTCF per GPU for one engine (``infersave calibrate`` writes one)."""

    name: str
    engine: str = DEFAULT_ENGINE
    created: str = ""
    description: str = ""
    rows_used: list[str] = []
    """Which measurement rows were used (file and filter, in words)."""
    gpus: dict[str, GPUCalibration] = {}

    def lookup(self, gpu: str) -> tuple[GPUCalibration, str]:
        """Return the CTCF for ``gpu`` and where it came from (measured, nearest measured GPU, or none)."""
        if gpu in self.gpus:
            return self.gpus[gpu], f"{self.name}: measured on {gpu}"
        if not self.gpus:
            return GPUCalibration(), f"{self.name}: no measurements (uncalibrated roofline)"
        near = nearest_measured_gpu(gpu, list(self.gpus))
        return self.gpus[near], f"{self.name}: nearest measured GPU by spec {near} (no {gpu} measurements)"

    def to_yaml(self) -> str:
        """Serialise the profile as YAML."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, width=120)


IDENTITY = CalibrationProfile(name="uncalibrated", engine="generic", description="alpha = 1, beta = 0")


def nearest_measured_gpu(gpu: str, measured: list[str]) -> str:
    """Return the measured GPU closest to ``gpu`` by |log bandwidth ratio| + |log FP16 TFLOPS ratio|."""
    target = get_gpu(gpu)

    def distance(name: str) -> float:
        other = get_gpu(name)
        return abs(math.log(other.memory_bandwidth_gb_per_s / target.memory_bandwidth_gb_per_s)) + abs(
            math.log(other.fp16_tflops / target.fp16_tflops)
        )

    return min(sorted(measured), key=distance)


# ---- profile files -----------------------------------------------------------------------------------
def load_profile(path: str | Path, field: str = "profile") -> CalibrationProfile:
    """Read a profile YAML written by :func:`save_profile` (or shipped); raises InputError on a bad file."""
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
    for phase in PHASES:
        fit: PhaseFit = getattr(cal, phase)
        if not lo <= fit.alpha <= hi:
            raise InputError(f"{where}.{phase}.alpha)", f"must be in [{lo:g}, {hi:g}], got {fit.alpha:g}")
        if not 0 <= fit.beta_ms <= MAX_BETA_MS:
            raise InputError(f"{where}.{phase}.beta_ms)", f"must be in [0, {MAX_BETA_MS:g}] ms, got {fit.beta_ms:g}")


def save_profile(profile: CalibrationProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML to ``path`` (atomically: a failed write keeps the old file) and return the path."""
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--out", f"cannot write {str(p)!r}: {exc.strerror or exc}") from None
    return write_text_atomic(p, profile.to_yaml())


@functools.cache
def shipped_profile(engine: str) -> CalibrationProfile:
    """Return the shipped profile of ``engine`` (``instances/calibration/ENGINE.yaml``), identity if absent."""
    if engine not in ENGINES:
        raise UnknownNameError("engine", "engine", engine, ENGINES)
    path = data_path("calibration", f"{engine}.yaml")
    if not path.is_file():
        return IDENTITY.model_copy(update={"name": f"{engine} (no shipped profile)", "engine": engine})
    return load_profile(path)


def resolve_profile(engine: str, profile: CalibrationProfile | str | Path | None) -> CalibrationProfile:
    """Return ``profile`` (loading it if a path) or the shipped profile of ``engine``."""
    if engine not in ENGINES:
        raise UnknownNameError("engine", "engine", engine, ENGINES)
    if profile is None:
        return shipped_profile(engine)
    if isinstance(profile, CalibrationProfile):
        return profile
    return load_profile(profile)


# ---- measurement tables ------------------------------------------------------------------------------
def read_measurements(path: str | Path, field: str = "measurements") -> pd.DataFrame:
    """Read and check a measurement CSV (schema in the module docstring); fills defaults of optional columns."""
    p = Path(path).expanduser()
    try:
        frame = pd.read_csv(p)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(p)!r} as CSV: {str(exc).splitlines()[0]}") from None
    return check_measurements(frame, field=f"{field} ({p.name})")


def check_measurements(frame: pd.DataFrame, field: str = "measurements") -> pd.DataFrame:
    """Validate a measurement table and return a normalised copy (canonical GPU names, defaults filled)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(field, f"missing required column(s) {', '.join(missing)}")
    if not any(c in frame.columns for c in MEASURED):
        raise InputError(field, "needs at least one measured column: ttft_ms, tpot_ms or e2e_s")
    if frame.empty:
        raise InputError(field, "has no rows")
    out = frame.copy()
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in out.columns:
            out[col] = default
        elif default is not None:
            out[col] = out[col].where(out[col].notna(), default)
    for col in MEASURED:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="coerce")
    for col, lo, hi, integer in (
        ("batch", 1, MAX_BATCH, True),
        ("input", 1, MAX_TOKENS, True),
        ("output", 1, MAX_TOKENS, True),
        ("tp", 1, max(TP_DEGREES), True),
        ("offload", 0, 1, False),
    ):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values < lo) | (values > hi)
        if integer:
            bad |= values.fillna(0) % 1 != 0
        if col == "tp":
            bad |= ~values.isin(TP_DEGREES)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            kind = "an integer" if integer else "a number"
            allowed = f"one of {', '.join(map(str, TP_DEGREES))}" if col == "tp" else f"{kind} in [{lo:,}, {hi:,}]"
            raise InputError(f"{field} row {i + 2}: {col}", f"must be {allowed}, got {frame[col].iloc[i]!r}")
        out[col] = values
    measured = out[list(MEASURED)]
    if ((measured <= 0) & measured.notna()).any().any():
        raise InputError(field, "measured times must be positive")
    infinite = np.isinf(measured.to_numpy(dtype=float)).any(axis=1)
    if infinite.any():
        i = int(np.flatnonzero(infinite)[0])
        raise InputError(f"{field} row {i + 2}", "measured times must be finite (got inf)")
    empty = measured.isna().all(axis=1)
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError(f"{field} row {i + 2}", "has none of ttft_ms, tpot_ms, e2e_s")
    out["gpu"] = [get_gpu(str(g), field=f"{field}: gpu").name for g in out["gpu"]]
    for eng in out["engine"].unique():
        if eng not in ENGINES:
            raise UnknownNameError(f"{field}: engine", "engine", str(eng), ENGINES)
    bad_batching = ~out["batching"].isin(["static", "continuous"])
    if bad_batching.any():
        raise InputError(f"{field}: batching", "must be 'static' or 'continuous'")
    return out.reset_index(drop=True)


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
            if best is None or loss < best[0] - 1e-15:
                best = (loss, theta)
    if best is None:  # no feasible active set: pure scale fit through the origin
        theta = np.zeros(k)
        cols = [i for i in positive]
        sol, *_ = np.linalg.lstsq(a[:, cols], y, rcond=None)
        theta[cols] = np.maximum(sol, 1e-6)
        return theta
    return best[1]


def fit_ctcf(rows: pd.DataFrame) -> tuple[PhaseFit, PhaseFit, bool]:
    """Fit (prefill, decode) CTCFs on rows holding measured columns and ``ttft_model_ms``/``tpot_model_ms``.

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


def _ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Absolute percentage errors where a measurement exists."""
    ok = np.isfinite(meas) & np.isfinite(pred)
    return np.abs(pred[ok] - meas[ok]) / meas[ok] * 100.0


def apply_fits(rows: pd.DataFrame, prefill: PhaseFit, decode: PhaseFit) -> pd.DataFrame:
    """Return calibrated ``ttft_cal_ms``, ``tpot_cal_ms``, ``e2e_cal_s`` for modelled rows."""
    out = pd.DataFrame(index=rows.index)
    out["ttft_cal_ms"] = prefill.apply(rows["ttft_model_ms"].to_numpy(dtype=float))
    out["tpot_cal_ms"] = decode.apply(rows["tpot_model_ms"].to_numpy(dtype=float))
    out["e2e_cal_s"] = (out["ttft_cal_ms"] + rows["output"].to_numpy(dtype=float) * out["tpot_cal_ms"]) / 1000.0
    return out


def fit_errors(rows: pd.DataFrame, calibrated: pd.DataFrame) -> dict[str, FitError]:
    """In-sample MAPE before/after CTCF and worst error after, for each measured metric."""
    errs: dict[str, FitError] = {}
    for meas, model_col, cal_col in (
        ("ttft_ms", "ttft_model_ms", "ttft_cal_ms"),
        ("tpot_ms", "tpot_model_ms", "tpot_cal_ms"),
        ("e2e_s", "e2e_model_s", "e2e_cal_s"),
    ):
        m = rows[meas].to_numpy(dtype=float)
        n = int(np.isfinite(m).sum())
        if n == 0:
            continue
        before = _ape(rows[model_col].to_numpy(dtype=float), m)
        after = _ape(calibrated[cal_col].to_numpy(dtype=float), m)
        errs[meas] = FitError(
            rows=n,
            mape_before_pct=round(float(before.mean()), 2),
            mape_after_pct=round(float(after.mean()), 2),
            worst_after_pct=round(float(after.max()), 2),
        )
    return errs


def fit_profile(
    modelled: pd.DataFrame,
    *,
    name: str,
    engine: str,
    description: str = "",
    rows_used: list[str] | None = None,
) -> CalibrationProfile:
    """Fit one CTCF per GPU on a modelled measurement table (see :func:`solver.performance.model.model_measurements`).

    Parameters
    ----------
    modelled
        Measurement rows with ``ttft_model_ms``, ``tpot_model_ms``, ``e2e_model_s`` columns added.
    name, engine, description, rows_used
        Recorded in the profile.
    """
    gpus: dict[str, GPUCalibration] = {}
    for gpu, rows in modelled.groupby("gpu", sort=True):
        prefill, decode, shared = fit_ctcf(rows)
        cal = apply_fits(rows, prefill, decode)
        gpus[str(gpu)] = GPUCalibration(
            prefill=prefill,
            decode=decode,
            rows=len(rows),
            datasets=sorted(str(d) for d in rows["dataset"].unique()),
            shared_scale=shared,
            errors=fit_errors(rows, cal),
        )
    return CalibrationProfile(
        name=name,
        engine=engine,
        created=_dt.date.today().isoformat(),
        description=description,
        rows_used=rows_used or [],
        gpus=gpus,
    )


def calibrate(
    measurements: str | Path | pd.DataFrame,
    *,
    name: str | None = None,
    engine: str | None = None,
) -> CalibrationProfile:
    """Fit a calibration profile on a measurement table (CSV path or DataFrame); the ``calibrate`` command.

    Parameters
    ----------
    measurements
        A CSV in the schema of the module docstring, or the same as a DataFrame.
    name
        Profile name (default: the file's stem).
    engine
        Engine recorded in the profile (default: the table's single engine, else ``generic``).

    Returns
    -------
    CalibrationProfile
        One CTCF per GPU in the table, with in-sample errors.
    """
    from solver.performance.model import model_measurements  # local: performance imports this module

    if isinstance(measurements, pd.DataFrame):
        table = check_measurements(measurements)
        label = name or "custom"
    else:
        table = read_measurements(measurements)
        label = name or Path(measurements).stem
    engines = sorted(table["engine"].unique())
    eng = engine or (engines[0] if len(engines) == 1 else "generic")
    if eng not in ENGINES:
        raise UnknownNameError("engine", "engine", eng, ENGINES)
    modelled = model_measurements(table)
    source = str(measurements) if not isinstance(measurements, pd.DataFrame) else "DataFrame"
    checked: dict[str, tuple[int, int]] = {}
    for gpu, rows in modelled.groupby("gpu", sort=True):
        rank, params, weak = fit_identifiability(rows)
        if rank < params:
            raise InputError(
                f"measurements: gpu {gpu}",
                f"{len(rows)} row(s) give {rank} independent equation(s) for {params} CTCF parameters "
                f"({' and '.join(weak)} under-determined); measure at least 2 settings of batch, input or output",
            )
        checked[str(gpu)] = (rank, params)
    profile = fit_profile(
        modelled,
        name=label,
        engine=eng,
        description=f"fitted by infersave calibrate on {source}",
        rows_used=[f"all {len(table)} rows of {source}"],
    )
    gpus = {}
    for gpu, cal in profile.gpus.items():
        rank, params = checked[gpu]
        gpus[gpu] = cal.model_copy(update={"rank": rank, "parameters": params})
        check_fit_bounds(gpus[gpu], f"measurements (fit of gpus.{gpu}")
    return profile.model_copy(update={"gpus": gpus})


def fit_identifiability(rows: pd.DataFrame) -> tuple[int, int, list[str]]:
    """Rank of the CTCF design on one GPU's modelled rows, parameters fitted, and the under-determined phases.

    Mirrors :func:`fit_ctcf`: the columns fitted are those its measured columns reach. Columns are scaled to
    unit norm before the rank is taken, so milliseconds and ones weigh alike.

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
    return int(np.linalg.matrix_rank(mat / norms, tol=1e-9 * max(mat.shape)))


def known_gpus() -> list[str]:
    """Names of the GPUs in the shipped spec table (for help texts)."""
    return list(load_gpus())
