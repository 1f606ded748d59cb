"""The notebooks: jupytext percent-format ``.py`` sources, each paired with an output-free ``.ipynb``, all executed.

``notebooks/NN-name.py`` is the source (reviewable, lintable Python); ``notebooks/NN-name.ipynb`` is its pair for
users who open notebooks, kept in sync with ``jupytext --sync`` and stored without outputs. The tests check the
pairing with jupytext's own comparison, then execute every notebook top to bottom in a fresh kernel of the
interpreter running the tests (``sys.executable``, whatever kernel specs are installed), with ``MPLBACKEND=Agg``
and the repository root first on ``PYTHONPATH`` (the checkout under test is what the notebooks import). The
notebooks draw inline (``%matplotlib inline``), so each figure is an ``image/png`` output.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import jupytext
import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from jupytext.compare import compare_notebooks
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9]*.py"))
EXPECTED = {"01-quickstart", "02-offload-vs-batch", "03-cost-vs-slo", "04-calibration", "05-fleet-mix", "06-simulation"}
PAIRING = "ipynb,py:percent"
CELL_TIMEOUT_S = 300
IDS = [p.stem for p in SOURCES]


class ThisInterpreter(KernelSpecManager):
    """Kernel specs that always start ``python -m ipykernel_launcher`` of the interpreter running pytest."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({sys.executable})",
            language="python",
            resource_dir=str(NOTEBOOK_DIR),
        )


def _execute(nb: Any) -> Any:
    km = KernelManager(kernel_spec_manager=ThisInterpreter(), kernel_name="python3")
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    return nb


def test_every_notebook_has_a_source_and_a_pair():
    sources = {p.stem for p in SOURCES}
    paired = {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")}
    assert sources >= EXPECTED, f"missing notebook sources: {sorted(EXPECTED - sources)}"
    assert paired == sources, (
        f"every notebooks/*.py needs its .ipynb and back (jupytext --sync); without a pair: {sorted(sources ^ paired)}"
    )
    assert not (NOTEBOOK_DIR / "build_notebooks.py").exists(), "the notebook generator is gone; edit the .py files"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_source_is_percent_format_and_declares_the_pairing(source: Path):
    nb = jupytext.read(source)
    meta = nb.metadata.get("jupytext", {})
    assert meta.get("formats") == PAIRING, f"{source.name}: jupytext formats {meta.get('formats')!r}, want {PAIRING!r}"
    assert meta.get("text_representation", {}).get("format_name") == "percent", f"{source.name}: not percent format"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{source.name}: kernel is not python3"
    assert any(cell.cell_type == "code" for cell in nb.cells), f"{source.name}: no code cell"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_ipynb_is_in_sync_with_its_source(source: Path):
    paired = source.with_suffix(".ipynb")
    from_source = jupytext.read(source)
    stored = jupytext.read(paired)
    assert stored.metadata.get("jupytext", {}).get("formats") == PAIRING, f"{paired.name} is not paired"
    try:
        # Cell by cell (type, source, metadata), no differences allowed: the .ipynb is what .py says.
        compare_notebooks(stored, from_source, fmt="py:percent", allow_expected_differences=False)
    except Exception as exc:  # jupytext raises NotebookDifference (an Exception) with the first difference
        pytest.fail(f"{paired.name} differs from {source.name} (run jupytext --sync notebooks/*.py): {exc}")


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_ipynb_is_stored_without_outputs(source: Path):
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{source.stem}.ipynb: a code cell has stored outputs"
            assert cell.execution_count is None, f"{source.stem}.ipynb: a code cell has an execution count"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_notebook_runs_and_draws(source: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    start = time.perf_counter()
    try:
        nb = _execute(jupytext.read(source))
    except CellExecutionError as exc:
        pytest.fail(f"{source.name} failed:\n{exc}")
    seconds = time.perf_counter() - start
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, f"{source.name}: {errors[0].ename}: {errors[0].evalue}"
    shown = [out for out in outputs if out.output_type in ("display_data", "execute_result")]
    images = [out for out in shown if "image/png" in out.data]
    assert images, f"{source.name} produced no figure (image/png output)"
    print(f"{source.name}: executed in {seconds:.1f} s, {len(images)} figure(s)")
