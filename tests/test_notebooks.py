"""Execute every notebook in ``notebooks/`` top to bottom; a notebook that fails to run fails the suite.

Each notebook runs in a fresh kernel of the interpreter running the tests (``sys.executable``, whatever
kernel specs are installed), with ``MPLBACKEND=Agg`` in its environment and the repository root first on
``PYTHONPATH`` (the checkout under test is what the notebooks import). The notebooks draw inline
(``%matplotlib inline``), so each figure is an ``image/png`` output.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


class ThisInterpreter(KernelSpecManager):
    """Kernel specs that always start ``python -m ipykernel_launcher`` of the interpreter running pytest."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({sys.executable})",
            language="python",
            resource_dir=str(NOTEBOOK_DIR),
        )


def _execute(path: Path) -> Any:
    nb = nbformat.read(path, as_version=4)
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


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01-quickstart", "02-offload-vs-batch", "03-cost-vs-slo", "04-calibration", "05-fleet-mix"} <= names


def test_notebooks_match_their_generator():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run python notebooks/build_notebooks.py and commit the notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has stored outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    start = time.perf_counter()
    try:
        nb = _execute(path)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    seconds = time.perf_counter() - start
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    shown = [out for out in outputs if out.output_type in ("display_data", "execute_result")]
    images = [out for out in shown if "image/png" in out.data]
    assert images, f"{path.name} produced no figure (image/png output)"
    print(f"{path.name}: executed in {seconds:.1f} s, {len(images)} figure(s)")
