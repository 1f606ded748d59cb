"""infersave: cost-efficient cloud GPU fleet planning for LLM inference.

The public API, in the order of the data flow (``shared/design/ARCHITECTURE.md``):

* data: :func:`load_catalog`, :func:`get_model`, :func:`get_gpu`, :func:`load_scenario`;
* performance model: :func:`predict` (one configuration), :func:`predict_frame` (a grid, vectorised),
  :func:`calibrate` (fit a CTCF profile on your measurements), :func:`validate` (accuracy on shipped data);
* planning: :func:`build_candidates`, ``solver.planner.plan`` -> :class:`Plan`, ``solver.evaluate.evaluate``
  (exact re-check), ``solver.diagnose.diagnose`` (why there is no plan), ``solver.sweep.sweep`` (a grid of
  scenarios -> DataFrame);
* InferSave's single-instance question: ``solver.recommend.recommend``.

Functions named like their module (``plan``, ``evaluate``, ``diagnose``, ``sweep``, ``recommend``) are imported
from the module, so that the module stays importable as ``solver.<name>``. Heavy modules (solvers, the
performance model) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from solver.catalog import Catalog, load_catalog
from solver.errors import (
    InfeasibleError,
    InfersaveError,
    InputError,
    SolverError,
    SolverLimitError,
    UnknownNameError,
)
from solver.gpus import get_gpu, gpu_table, load_gpus
from solver.models import from_hf_config, get_model, load_models, models_table
from solver.scenario import load_scenario, parse_scenario, scenario_from_dict
from solver.specs import SLO, GPUSpec, InstanceType, Limits, ModelSpec, Scenario, Search, SolveOptions, Workload

__version__ = "0.1.0"

_LAZY = {
    "predict": "solver.performance",
    "predict_frame": "solver.performance",
    "Prediction": "solver.performance",
    "calibrate": "solver.calibration",
    "load_profile": "solver.calibration",
    "CalibrationProfile": "solver.calibration",
    "validate": "solver.accuracy",
    "build_candidates": "solver.planner",
    "Plan": "solver.plan",
    "FleetRow": "solver.plan",
    "Evaluation": "solver.evaluate",
    "Diagnosis": "solver.diagnose",
    "Recommendation": "solver.recommend",
    "available_backends": "solver.backends",
}


def __getattr__(name: str) -> Any:
    """Import the public names of the heavier modules on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "SLO",
    "Catalog",
    "GPUSpec",
    "InfeasibleError",
    "InfersaveError",
    "InputError",
    "InstanceType",
    "Limits",
    "ModelSpec",
    "Scenario",
    "Search",
    "SolveOptions",
    "SolverError",
    "SolverLimitError",
    "UnknownNameError",
    "Workload",
    "__version__",
    "from_hf_config",
    "get_gpu",
    "get_model",
    "gpu_table",
    "load_catalog",
    "load_gpus",
    "load_models",
    "load_scenario",
    "models_table",
    "parse_scenario",
    "scenario_from_dict",
    *sorted(_LAZY),
]
