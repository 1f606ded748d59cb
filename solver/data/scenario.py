"""Read scenario files (YAML, loaded safely) into validated :class:`~solver.specs.Scenario` objects.

Relative file paths inside a scenario (``catalog``, ``profile``, a workload's ``model`` config.json) are
resolved against the scenario file's folder, so a scenario can be run from anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.specs import MAX_TOKENS, ModelSpec, Scenario
from solver.validation import load_yaml, validate

DEFAULT_SCENARIO = ("scenarios", "default.yaml")
"""The embedded scenario that ``infersave plan`` solves when given no file."""


def default_scenario_path() -> Path:
    """Path of the embedded default scenario."""
    return data_path(*DEFAULT_SCENARIO)


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read, validate and return a scenario; ``None`` gives the embedded default scenario.

    Raises
    ------
    InputError
        The file is missing, is not YAML, or does not validate (the message names the field).
    """
    p = default_scenario_path() if path is None else Path(path).expanduser()
    if not p.is_file():
        raise InputError("scenario", f"no scenario file at {str(p)!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("scenario", f"cannot read {str(p)!r}: {exc}") from None
    return parse_scenario(text, base_dir=p.resolve().parent, source=p.name)


def parse_scenario(text: str, base_dir: Path | None = None, source: str = "scenario") -> Scenario:
    """Validate scenario YAML (or JSON) text; relative paths are resolved against ``base_dir``.

    Duplicate keys and nesting deeper than :data:`solver.validation.MAX_YAML_DEPTH` are errors.
    """
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise InputError(source, "a scenario must be a mapping of keys (catalog, workloads, ...)")
    return scenario_from_dict(data, base_dir=base_dir)


def scenario_from_dict(data: dict[str, Any], base_dir: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict; relative paths are resolved against ``base_dir``."""
    from solver.data.gpus import add_gpus

    if base_dir is not None:
        data = _resolve_paths(data, base_dir)
    if "gpus" in data:
        data = {**data, "gpus": _gpu_records(data["gpus"], base_dir)}
    scenario = validate(Scenario, data)
    add_gpus(scenario.gpus)  # catalogs and the performance model look GPUs up by name
    return scenario


def _gpu_records(value: Any, base_dir: Path | None) -> Any:
    """``gpus:`` as GPUSpec records: a CSV path is read, mappings may use the table's ``gpu`` and ``a;b`` forms."""
    from solver.data.gpus import gpus_from_records, read_gpus_file

    if isinstance(value, str):
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError("gpus", f"no GPU spec file at {str(path)!r}")
        return [g.model_dump() for g in read_gpus_file(path, field="gpus")]
    if isinstance(value, list):
        return [g.model_dump() for g in gpus_from_records(value, field="gpus")]
    return value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Return a copy of ``data`` with relative file paths made absolute against ``base``."""
    out = dict(data)

    def fix(value: Any, must_exist: bool = False) -> Any:
        if not isinstance(value, str) or not value.strip():
            return value
        looks_like_path = value.endswith((".csv", ".json", ".yaml", ".yml")) or "/" in value
        if not looks_like_path or Path(value).expanduser().is_absolute():
            return value
        candidate = base / value
        return str(candidate) if (candidate.exists() or not must_exist) else value

    if "catalog" in out:
        out["catalog"] = fix(out["catalog"])
    if "profile" in out:
        out["profile"] = fix(out["profile"])
    if isinstance(out.get("workloads"), list):
        out["workloads"] = [
            {**w, "model": fix(w.get("model")), **({"trace": fix(w["trace"])} if "trace" in w else {})}
            if isinstance(w, dict)
            else w
            for w in out["workloads"]
        ]
    return out


def check_references(scenario: Scenario) -> None:
    """Check what the schema cannot: names and files a scenario refers to, and token lengths against models.

    Raises
    ------
    InputError
        An unknown model, engine, catalog or quota key (instance type, family, region; with "did you mean"), a
        ``min_instances`` type outside the scenario's filters, a config.json that cannot be read, or a workload
        whose prompt plus output exceeds its model's context window; the message names the field.
    """
    from solver.data.catalog import load_catalog
    from solver.data.models import get_model
    from solver.performance.calibration import ENGINES

    if scenario.engine not in ENGINES:
        raise UnknownNameError("engine", "engine", scenario.engine, ENGINES)
    catalog = load_catalog(scenario.catalog)
    zones = catalog.zones
    lim = scenario.limits
    for group, column, kind in (
        ("max_instances", "instance_type", "instance type"),
        ("max_instances_per_family", "family", "instance family"),
        ("max_instances_per_region", "region", "region"),
        ("min_instances", "instance_type", "instance type"),
    ):
        known = set(zones[column].unique())
        for key in getattr(lim, group):
            if key not in known:
                raise UnknownNameError(f"limits.{group}.{key}", kind, key, known)
    if lim.min_instances:
        offered = set(catalog.filter(regions=scenario.regions, instances=scenario.instances).zones["instance_type"])
        for key, count in lim.min_instances.items():
            if count > 0 and key not in offered:
                raise InputError(
                    f"limits.min_instances.{key}",
                    "this instance type is not among the scenario's instances and regions",
                )
    for i, w in enumerate(scenario.workloads):
        model = get_model(w.model, field=f"workloads.{i}.model")
        check_context_window(
            model, w.input_tokens, w.output_tokens, f"workloads.{i}.input_tokens", f"workloads.{i}.output_tokens"
        )


def check_context_window(
    model: ModelSpec, input_tokens: int, output_tokens: int, field: str, output_field: str | None = None
) -> None:
    """Refuse lengths outside 1..:data:`~solver.specs.MAX_TOKENS` or longer together than the context window.

    Parameters
    ----------
    model
        The model card (its ``max_position_embeddings`` is the window).
    input_tokens, output_tokens
        Prompt and generated tokens per request.
    field, output_field
        Names of the two inputs in error messages (``output_field`` defaults to ``field``).

    Raises
    ------
    InputError
        Naming the field, with the lengths and the window.
    """
    for name, n in ((field, input_tokens), (output_field or field, output_tokens)):
        if not 0 < n <= MAX_TOKENS:
            raise InputError(name, f"must be in 1..{MAX_TOKENS:,} tokens, got {n:,}")
    window = model.max_position_embeddings
    if window is not None and input_tokens + output_tokens > window:
        raise InputError(
            field,
            f"input_tokens + output_tokens = {input_tokens + output_tokens:,} exceeds the context window of "
            f"{model.name} ({window:,} tokens)",
        )


def scenario_json_schema() -> str:
    """Return the JSON schema of a scenario file as pretty-printed JSON text."""
    return json.dumps(Scenario.model_json_schema(), indent=2)
