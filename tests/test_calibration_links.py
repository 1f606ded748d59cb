"""The all-reduce constants of latency.py are the fit of benchmarks/fit_links.py, and that fit is reproducible."""

import importlib.util
import json
from pathlib import Path

import pytest

from solver.performance import latency

ROOT = Path(__file__).resolve().parents[1]


def _fit_links():
    spec = importlib.util.spec_from_file_location("fit_links", ROOT / "benchmarks" / "fit_links.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fit_links()


def test_pcie_constants_are_the_recorded_fit_and_the_fit_reproduces():
    recorded = json.loads((ROOT / "benchmarks" / "results" / "link_fit.json").read_text())
    assert latency.LINK_EFFICIENCY["pcie"] == pytest.approx(recorded["pcie"]["efficiency"], rel=1e-3)
    assert latency.ALLREDUCE_LATENCY_S["pcie"] * 1e6 == pytest.approx(
        recorded["pcie"]["allreduce_latency_us"], rel=1e-3
    )
    fresh = _fit_links()
    for kind in ("pcie", "nvlink"):
        assert fresh[kind]["efficiency"] == pytest.approx(recorded[kind]["efficiency"], rel=1e-3)
        assert fresh[kind]["allreduce_latency_us"] == pytest.approx(recorded[kind]["allreduce_latency_us"], rel=1e-3)
    # the fitted PCIe link explains the L40S tensor-parallel rows better than the datasheet link
    assert fresh["pcie"]["mape_fitted_link_pct"] < fresh["pcie"]["mape_datasheet_link_pct"]
    assert fresh["pcie"]["efficiency"] <= 1.0


def test_pcie_all_reduce_is_never_cheaper_than_nvlink():
    """The datasheet-dominance invariant needs NVLink at least as fast as PCIe per byte and per call."""
    assert latency.LINK_EFFICIENCY["nvlink"] >= latency.LINK_EFFICIENCY["pcie"]
    assert latency.ALLREDUCE_LATENCY_S["nvlink"] <= latency.ALLREDUCE_LATENCY_S["pcie"]
