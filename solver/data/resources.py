"""Locate the data files shipped in the ``instances`` package (works installed or from a checkout)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Return the path of a shipped data file, e.g. ``data_path("catalogs", "aws.csv")``."""
    root = Path(str(resources.files("instances")))
    return root.joinpath(*parts)
