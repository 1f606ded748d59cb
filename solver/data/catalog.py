"""Instance catalogs: the shipped AWS catalog and any CSV in the SkyPilot catalog schema.

A catalog keeps one row per (instance type, region, availability zone), as the source has it, in
:attr:`Catalog.zones`. On-demand prices are per region; spot prices are per zone, and are summarised per
region as the minimum and the median over zones (:meth:`Catalog.summary`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from solver.data.gpus import get_gpu, load_gpus
from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.specs import GPUSpec, InstanceType

SHIPPED = {"aws": ("catalogs", "aws.csv")}
"""Shipped catalogs by name; sources in ``instances/catalogs/PROVENANCE.md``."""

REQUIRED = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "SpotPrice",
    "Region",
    "AvailabilityZone",
)
GPU_MEMORY_COLUMNS = ("GpuMemoryMiBPerGpu", "GpuInfo", "GpuMemoryGiB")
"""Any one of these gives the per-GPU memory: MiB, SkyPilot's GpuInfo dict (``SizeInMiB``), or GiB."""

_RENAME = {
    "InstanceType": "instance_type",
    "AcceleratorName": "gpu",
    "AcceleratorCount": "gpu_count",
    "vCPUs": "vcpus",
    "MemoryGiB": "host_memory_gib",
    "Price": "on_demand_usd_per_hour",
    "SpotPrice": "spot_usd_per_hour",
    "Region": "region",
    "AvailabilityZone": "availability_zone",
    "Arch": "arch",
}
_SIZE_IN_MIB = re.compile(r"['\"]SizeInMiB['\"]\s*:\s*([0-9.]+)")

HARDWARE_COLUMNS = ["instance_type", "family", "gpu", "gpu_count", "gpu_memory_mib", "vcpus", "host_memory_gib", "arch"]


@dataclass(frozen=True)
class Catalog:
    """A validated instance catalog.

    Attributes
    ----------
    name
        ``aws`` for the shipped catalog, or the CSV path.
    zones
        One row per (instance_type, region, availability_zone) with hardware columns
        (:data:`HARDWARE_COLUMNS`), ``on_demand_usd_per_hour`` and ``spot_usd_per_hour`` (NaN where absent).
    """

    name: str
    zones: pd.DataFrame

    # ---- look-ups --------------------------------------------------------------------------------
    def instance_types(self) -> dict[str, InstanceType]:
        """Return the hardware of every instance type, by name."""
        hw = self.zones.drop_duplicates("instance_type")[HARDWARE_COLUMNS]
        return {r["instance_type"]: InstanceType.model_validate(_hw_record(r)) for r in hw.to_dict("records")}

    @property
    def regions(self) -> list[str]:
        """Regions present in the catalog, sorted."""
        return sorted(self.zones["region"].unique())

    @property
    def gpus(self) -> list[str]:
        """GPU names present in the catalog, sorted."""
        return sorted(self.zones["gpu"].unique())

    def summary(self) -> pd.DataFrame:
        """One row per (instance_type, region): hardware, on-demand price, spot min and median over zones."""
        z = self.zones
        grouped = z.groupby(["instance_type", "region"], sort=True)
        prices = grouped.agg(
            on_demand_usd_per_hour=("on_demand_usd_per_hour", "first"),
            spot_min_usd_per_hour=("spot_usd_per_hour", "min"),
            spot_median_usd_per_hour=("spot_usd_per_hour", "median"),
            spot_zones=("spot_usd_per_hour", "count"),
            zones=("availability_zone", "nunique"),
        ).reset_index()
        hw = z.drop_duplicates("instance_type")[HARDWARE_COLUMNS]
        out = hw.merge(prices, on="instance_type")
        return out.sort_values(["instance_type", "region"], kind="stable").reset_index(drop=True)

    def offers(
        self,
        markets: Sequence[str] = ("on_demand",),
        spot_price: str = "median",
    ) -> pd.DataFrame:
        """One row per (instance_type, region, market) that has a price: hardware plus ``usd_per_hour``.

        Spot prices are summarised over the region's zones by ``spot_price`` (``min`` or ``median``).
        """
        summary = self.summary()
        frames = []
        for market in markets:
            col = "on_demand_usd_per_hour" if market == "on_demand" else f"spot_{spot_price}_usd_per_hour"
            part = summary[[*HARDWARE_COLUMNS, "region", col]].rename(columns={col: "usd_per_hour"})
            part = part[part["usd_per_hour"].notna()].copy()
            part.insert(len(HARDWARE_COLUMNS) + 1, "market", market)
            frames.append(part)
        return pd.concat(frames, ignore_index=True)

    # ---- filters ---------------------------------------------------------------------------------
    def filter(
        self,
        *,
        regions: Iterable[str] | None = None,
        instances: Iterable[str] | None = None,
        gpus: Iterable[str] | None = None,
        field_prefix: str = "",
    ) -> Catalog:
        """Return the catalog restricted to the given regions, instance types and GPUs.

        Raises
        ------
        UnknownNameError
            A name that the catalog lacks (with close matches).
        InputError
            The filters leave no instance.
        """
        z = self.zones
        pre = f"{field_prefix}." if field_prefix else ""
        if instances is not None:
            wanted = _check_names(list(instances), z["instance_type"], f"{pre}instances", "instance type")
            z = z[z["instance_type"].isin(wanted)]
        if gpus is not None:
            names = [get_gpu(g, f"{pre}gpu").name for g in gpus]
            _check_names(names, self.zones["gpu"], f"{pre}gpu", "GPU in this catalog")
            z = z[z["gpu"].isin(names)]
        if regions is not None:
            wanted = _check_names(list(regions), self.zones["region"], f"{pre}regions", "region")
            z = z[z["region"].isin(wanted)]
        if z.empty:
            raise InputError(
                pre + "regions" if regions is not None else pre + "instances", self._empty_reason(z, instances)
            )
        return Catalog(self.name, z.reset_index(drop=True))

    def _empty_reason(self, _empty: pd.DataFrame, instances: Iterable[str] | None) -> str:
        """Say why a filter left nothing: where the requested instance types are offered instead."""
        if instances is None:
            return "no instance is left after filtering"
        z = self.zones
        where = []
        for name in instances:
            regions = sorted(z.loc[z["instance_type"].str.lower() == str(name).lower(), "region"].unique())
            if regions:
                shown = ", ".join(regions[:4]) + (", ..." if len(regions) > 4 else "")
                where.append(f"{name} is offered in {shown}")
        detail = "; ".join(where)
        return "no instance is left after filtering" + (f" ({detail})" if detail else "")


def _check_names(names: list[str], column: pd.Series, field: str, kind: str) -> list[str]:
    known = set(column.unique())
    lower = {k.lower(): k for k in known}
    out = []
    for i, n in enumerate(names):
        if n in known:
            out.append(n)
        elif n.lower() in lower:
            out.append(lower[n.lower()])
        else:
            idx = f"{field}.{i}" if len(names) > 1 else field
            raise UnknownNameError(idx, kind, n, known)
    return out


def _hw_record(row: dict) -> dict:
    rec = {k: row[k] for k in HARDWARE_COLUMNS}
    rec["name"] = rec.pop("instance_type")
    return rec


@functools.cache
def _load_shipped(name: str) -> Catalog:
    return read_skypilot_csv(data_path(*SHIPPED[name]), name=name)


def load_catalog(name_or_path: str = "aws", base_dir: Path | None = None, field: str = "catalog") -> Catalog:
    """Return a shipped catalog by name, or read a CSV in the SkyPilot schema.

    Relative paths are resolved against ``base_dir`` (the scenario file's folder) when given.
    """
    if name_or_path.lower() in SHIPPED:
        return _load_shipped(name_or_path.lower())
    path = Path(name_or_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        if not name_or_path.lower().endswith(".csv"):
            raise UnknownNameError(field, "catalog", name_or_path, SHIPPED)
        raise InputError(field, f"no catalog file at {str(path)!r}")
    return read_skypilot_csv(path, field=field)


def read_skypilot_csv(path: str | Path, name: str | None = None, field: str = "catalog") -> Catalog:
    """Read and validate a catalog CSV in the SkyPilot schema (v7/v8 ``vms.csv`` columns).

    Columns: ``InstanceType, AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB, Price, SpotPrice, Region,
    AvailabilityZone`` plus the per-GPU memory as ``GpuMemoryMiBPerGpu``, SkyPilot's ``GpuInfo`` dict
    (``SizeInMiB``), or ``GpuMemoryGiB``; ``Arch`` is optional. ``Price`` or ``SpotPrice`` may be empty
    where the source has no offer. Rows without an accelerator are skipped. Every GPU must be in the shipped
    GPU spec table.
    """
    path = Path(path)
    label = name or str(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(path)!r}: {exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(field, f"{str(path)!r} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(field, f"{path.name} lacks the column(s) {', '.join(missing)} of the SkyPilot schema")
    mem_col = next((c for c in GPU_MEMORY_COLUMNS if c in raw.columns), None)
    if mem_col is None:
        raise InputError(field, f"{path.name} needs a per-GPU memory column: one of {', '.join(GPU_MEMORY_COLUMNS)}")
    raw = raw[raw["AcceleratorName"].str.strip() != ""].reset_index(drop=True)
    if raw.empty:
        raise InputError(field, f"{path.name} has no row with an accelerator")

    z = raw.rename(columns=_RENAME)
    if "arch" not in z.columns:
        z["arch"] = "x86_64"
    for col in ("instance_type", "gpu", "region", "availability_zone", "arch"):
        z[col] = z[col].str.strip()
    z["gpu_memory_mib"] = _gpu_memory_mib(raw, mem_col, path.name, field)
    for col, allow_empty in (
        ("gpu_count", False),
        ("vcpus", False),
        ("host_memory_gib", False),
        ("on_demand_usd_per_hour", True),
        ("spot_usd_per_hour", True),
    ):
        z[col] = _numbers(z[col], col, allow_empty, path.name, field)

    known = load_gpus()
    aliases = {a.lower(): n for n, s in known.items() for a in (n, *s.aliases)}
    canon = z["gpu"].str.lower().map(aliases)
    if canon.isna().any():
        i = int(np.flatnonzero(canon.isna().to_numpy())[0])
        bad = z["gpu"].iloc[i]
        err = UnknownNameError(f"{field} row {i + 2} AcceleratorName", "GPU", bad, known)
        raise InputError(err.field, f"{err.problem} (add its specs with --gpus-file or gpus: in the scenario)")
    z["gpu"] = canon
    both_empty = z["on_demand_usd_per_hour"].isna() & z["spot_usd_per_hour"].isna()
    z = z[~both_empty]
    z["family"] = z["instance_type"].str.split(".").str[0]
    _check_consistent_hardware(z, path.name, field)
    _check_gpu_memory(z, known, path.name, field)
    cols = [*HARDWARE_COLUMNS, "region", "availability_zone", "on_demand_usd_per_hour", "spot_usd_per_hour"]
    z = z[cols].drop_duplicates(["instance_type", "region", "availability_zone"])
    return Catalog(label, z.reset_index(drop=True))


MEMORY_ABOVE_SPEC = 1.12
"""Largest per-GPU memory a catalog row may give over its GPU's datasheet memory (as a ratio of bytes). Clouds
report memory in MiB of a datasheet's decimal GB: 16 GB parts show 16,384 MiB (1.074 of 16e9 bytes), a B200's
180 GB shows 183,359 MiB (1.068) in the shipped catalog. Less memory than the datasheet is allowed (fractional
GPUs such as g6f's 1/8 L4, MIG slices); more is another GPU."""


def _check_gpu_memory(z: pd.DataFrame, known: Mapping[str, GPUSpec], fname: str, field: str) -> None:
    """Refuse a row whose per-GPU memory is more than its named GPU has; name the GPU that memory matches."""
    pairs = z.drop_duplicates(["gpu", "gpu_memory_mib"])
    for gpu, memory in zip(pairs["gpu"].tolist(), pairs["gpu_memory_mib"].tolist(), strict=True):
        spec = known[str(gpu)]
        mib = float(memory)
        ratio = mib * 2**20 / (spec.memory_gb * 1e9)
        if ratio <= MEMORY_ABOVE_SPEC:
            continue
        family = str(gpu).split("-")[0].lower()
        matches = sorted(
            (abs(mib * 2**20 / (g.memory_gb * 1e9) - 1.0), name)
            for name, g in known.items()
            if name.split("-")[0].lower() == family and 0.9 <= mib * 2**20 / (g.memory_gb * 1e9) <= MEMORY_ABOVE_SPEC
        )
        i = int(np.flatnonzero(((z["gpu"] == gpu) & (z["gpu_memory_mib"] == mib)).to_numpy())[0])
        said = f"{mib:,.0f} MiB ({mib / 1024:,.4g} GiB) per GPU, more than the {spec.memory_gb:g} GB of {spec.name}"
        fix = (
            f"that is {matches[0][1]}: name it AcceleratorName {matches[0][1]}"
            if matches
            else "add your GPU's specs with --gpus-file (or gpus: in the scenario)"
        )
        raise InputError(f"{field} row {i + 2} AcceleratorName", f"{fname} gives {said}; {fix}")


def _check_consistent_hardware(z: pd.DataFrame, fname: str, field: str) -> None:
    """Refuse an instance type whose rows disagree on its hardware (the first row would silently win)."""
    for col in HARDWARE_COLUMNS[2:]:
        counts = z.groupby("instance_type", sort=True)[col].nunique(dropna=False)
        if (counts > 1).any():
            name = str(counts[counts > 1].index[0])
            values = sorted(str(v) for v in z.loc[z["instance_type"] == name, col].unique())
            raise InputError(
                f"{field} instance type {name}",
                f"its rows in {fname} disagree on {col} ({', '.join(values)}); give one value for every row",
            )


def _numbers(col: pd.Series, name: str, allow_empty: bool, fname: str, field: str) -> pd.Series:
    stripped = col.str.strip()
    values = pd.Series(pd.to_numeric(stripped.where(stripped != ""), errors="coerce"), index=col.index, dtype=float)
    bad = (values.isna() & ((stripped != "") | (not allow_empty))) | ~np.isfinite(values.fillna(1.0)) | (values <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{field} row {i + 2} {name}", f"expected a positive finite number, got {col.iloc[i]!r} in {fname}"
        )
    return values.astype(float)


def _gpu_memory_mib(raw: pd.DataFrame, col: str, fname: str, field: str) -> pd.Series:
    if col == "GpuInfo":
        extracted = raw[col].str.extract(_SIZE_IN_MIB, expand=False)
        return _numbers(extracted.fillna(""), "GpuInfo SizeInMiB", False, fname, field)
    values = _numbers(raw[col], col, False, fname, field)
    return values * 1024.0 if col == "GpuMemoryGiB" else values
