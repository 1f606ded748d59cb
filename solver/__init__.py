"""infersave: cost-efficient cloud GPU fleet planning for LLM inference.

The public API: load data (:func:`load_catalog`, :func:`get_model`, :func:`get_gpu`), read scenarios
(:func:`load_scenario`), predict one replica's memory and latency, plan a fleet, and evaluate a plan.
"""

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
from solver.specs import (
    SLO,
    GPUSpec,
    InstanceType,
    Limits,
    ModelSpec,
    Scenario,
    Search,
    SolveOptions,
    Workload,
)

__version__ = "0.1.0"

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
]
