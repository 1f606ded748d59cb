"""The shipped measurements and the shipped profiles fitted on them.

* :func:`shipped_measurements`: every row of ``instances/measurements/*.csv``, checked, with its source ``file``;
* :func:`fit_shipped_profiles`: the hierarchical fit (:func:`solver.performance.calibration.hierarchical_profiles`)
  that writes ``instances/calibration/ENGINE.yaml`` (:func:`write_shipped_profiles`);
* :func:`fit_per_gpu_profiles`: the independent per-GPU fit shipped before issue 12, kept to compare against.

Scoring (leave one source out, leave one GPU out) is in :mod:`solver.performance.validation_report`.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd

from solver.data.resources import data_path
from solver.performance.calibration import (
    check_measurements,
    fit_profile,
    hierarchical_profiles,
)
from solver.performance.ctcf import CalibrationProfile, save_profile
from solver.performance.measurements import model_measurements

METRICS = ("ttft", "tpot", "throughput", "e2e")


def shipped_measurements() -> pd.DataFrame:
    """Return every shipped measurement row (checked), with its source file in column ``file``.

    Returns
    -------
    pandas.DataFrame
        The rows of ``instances/measurements/*.csv``, normalised by
        :func:`solver.performance.calibration.check_measurements`.
    """
    frames = []
    for path in sorted(glob.glob(str(data_path("measurements", "*.csv")))):
        frame = pd.read_csv(path)
        frame["file"] = Path(path).name
        frames.append(frame)
    return check_measurements(pd.concat(frames, ignore_index=True), field="instances/measurements")


def fit_shipped_profiles(modelled: pd.DataFrame | None = None) -> dict[str, CalibrationProfile]:
    """Fit the shipped profiles (one per engine with data, plus ``generic`` pooling all rows).

    Parameters
    ----------
    modelled
        Modelled measurement rows (:func:`solver.performance.measurements.model_measurements`); default all
        shipped measurements.

    Returns
    -------
    dict
        Engine name to its fitted profile.
    """
    if modelled is None:
        modelled = model_measurements(shipped_measurements())
    return hierarchical_profiles(modelled)


def fit_per_gpu_profiles(modelled: pd.DataFrame) -> dict[str, CalibrationProfile]:
    """Fit an independent CTCF per (engine, GPU), as shipped before issue 12 (kept for comparison)."""
    profiles: dict[str, CalibrationProfile] = {}
    for engine, rows in modelled.groupby("engine", sort=True):
        profiles[str(engine)] = _fit(rows, name=str(engine), engine=str(engine))
    profiles["generic"] = _fit(modelled, name="generic", engine="generic")
    return profiles


def _fit(rows: pd.DataFrame, *, name: str, engine: str) -> CalibrationProfile:
    """Fit one profile on ``rows`` and describe which rows were used."""
    used = [
        f"{file}: {len(r)} rows (datasets {', '.join(sorted(r['dataset'].unique()))})"
        for file, r in rows.groupby("file", sort=True)
    ]
    desc = (
        f"CTCF fitted per GPU on the shipped measurements of engine {engine!r}"
        if engine != "generic"
        else "CTCF fitted per GPU on the shipped measurements of every engine, pooled (default for other engines)"
    )
    return fit_profile(rows, name=name, engine=engine, description=desc, rows_used=used)


def write_shipped_profiles(profiles: dict[str, CalibrationProfile], folder: Path | None = None) -> list[Path]:
    """Write profiles as ``instances/calibration/ENGINE.yaml`` (or into ``folder``).

    Parameters
    ----------
    profiles
        Engine name to profile (:func:`fit_shipped_profiles`).
    folder
        Target folder; default the shipped ``instances/calibration``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    target = folder or data_path("calibration")
    return [save_profile(p, Path(target) / f"{name}.yaml") for name, p in profiles.items()]
