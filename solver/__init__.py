"""infersave: cost-efficient cloud GPU fleet planning for LLM inference.

The public API, in the order of the data flow (``docs/architecture.md``); every name is importable from
``solver`` directly:

* data (``solver.data``): :func:`load_catalog`, :func:`get_model`, :func:`get_gpu`, :func:`load_scenario`;
* performance model (``solver.performance``): :func:`predict` (one configuration), :func:`predict_frame`
  (a grid, vectorised), :func:`calibrate` (fit a CTCF profile on your measurements), :func:`validate`
  (accuracy on shipped data);
* planning (``solver.planning``): :func:`build_candidates`, :func:`plan` -> :class:`Plan`, :func:`evaluate`
  (exact re-check), :func:`diagnose` (why there is no plan);
* simulation (``solver.simulation``): :func:`simulate` (a plan's fleet under random arrivals, SLO attainment);
* applications (``solver.apps``): :func:`sweep` (a grid of scenarios -> DataFrame), :func:`recommend`
  (InferSave's single-instance question).

Every name is imported on first use, so that ``import solver.specs`` (which the neutral ``formulations``
package needs) loads neither the catalog, nor the scenario loader, nor YAML.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # specs and errors
    "SLO": "solver.specs",
    "Arrival": "solver.specs",
    "GPUSpec": "solver.specs",
    "InstanceType": "solver.specs",
    "Limits": "solver.specs",
    "ModelSpec": "solver.specs",
    "Scenario": "solver.specs",
    "Search": "solver.specs",
    "SolveOptions": "solver.specs",
    "Workload": "solver.specs",
    "InfeasibleError": "solver.errors",
    "InfersaveError": "solver.errors",
    "InputError": "solver.errors",
    "SolverError": "solver.errors",
    "SolverLimitError": "solver.errors",
    "UnknownNameError": "solver.errors",
    # data
    "Catalog": "solver.data.catalog",
    "load_catalog": "solver.data.catalog",
    "get_gpu": "solver.data.gpus",
    "gpu_table": "solver.data.gpus",
    "load_gpus": "solver.data.gpus",
    "from_hf_config": "solver.data.models",
    "get_model": "solver.data.models",
    "load_models": "solver.data.models",
    "models_table": "solver.data.models",
    "load_scenario": "solver.data.scenario",
    "parse_scenario": "solver.data.scenario",
    "scenario_from_dict": "solver.data.scenario",
    # performance model
    "predict": "solver.performance.model",
    "predict_frame": "solver.performance.model",
    "Prediction": "solver.performance.model",
    "calibrate": "solver.performance.calibration",
    "load_profile": "solver.performance.calibration",
    "CalibrationProfile": "solver.performance.calibration",
    "validate": "solver.performance.validation_report",
    # planning
    "build_candidates": "solver.planning.candidates",
    "plan": "solver.planning.planner",
    "Plan": "solver.planning.plan",
    "FleetRow": "solver.planning.plan",
    "evaluate": "solver.planning.evaluate",
    "Evaluation": "solver.planning.evaluate",
    "diagnose": "solver.planning.diagnose",
    "Diagnosis": "solver.planning.diagnose",
    "available_backends": "solver.backends",
    # simulation
    "simulate": "solver.apps.simulate",
    "SimulationResult": "solver.simulation.results",
    # applications
    "sweep": "solver.apps.sweep",
    "recommend": "solver.apps.recommend",
    "Recommendation": "solver.apps.recommend",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for tab completion."""
    return sorted([*_LAZY, "__version__"])


__all__ = ["__version__", *sorted(_LAZY)]
