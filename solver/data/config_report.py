"""How a Hugging Face ``config.json`` was read: the model card infersave built from it, and every assumption.

``infersave models --config PATH`` prints this. An assumption is a value the file does not give and infersave
filled in (tied embeddings, head size, KV heads, the dtype it serves), or a feature of the file it does not model
(sliding-window attention, an architecture read as Llama-style). The parameter count infersave computes is set
against the checkpoint's own count when the folder says it: a ``num_parameters``-style key in the config, or the
``metadata.total_size`` bytes of ``model.safetensors.index.json`` divided by the bytes of the checkpoint's dtype.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.errors import InputError
from solver.specs import DTYPE_BYTES, ModelSpec

_KNOWN_TYPES = {"opt", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"}
_PARAM_KEYS = ("num_parameters", "num_params", "n_params", "total_params")
_CHECKPOINT_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "half": 2.0, "float": 4.0}


@dataclass(frozen=True)
class ConfigReport:
    """A config.json as read: the card, the assumptions, and the parameter counts to compare."""

    path: str
    model: ModelSpec
    assumptions: tuple[str, ...]
    num_params: int
    config_params: int | None
    config_params_source: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON of ``models --config --json``."""
        diff = (self.num_params / self.config_params - 1.0) if self.config_params else None
        return {
            "path": self.path,
            "model": self.model.model_dump(mode="json"),
            "num_params": self.num_params,
            "config_params": self.config_params,
            "config_params_source": self.config_params_source,
            "params_relative_difference": diff,
            "assumptions": list(self.assumptions),
        }


def read_config_report(path: str | Path, field: str = "--config") -> ConfigReport:
    """Read ``path`` (a config.json or its folder) as the planner does and list what it assumed.

    Raises
    ------
    InputError
        The file is missing or is not a config infersave can read (the message names the key).
    """
    from solver.data.models import from_hf_config

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise InputError(field, f"no config.json file at {str(p)!r}")
    model = from_hf_config(p, field=field)
    cfg = json.loads(p.read_text(encoding="utf-8"))
    notes: list[str] = []
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type not in _KNOWN_TYPES:
        notes.append(f"model_type {model_type or '(none)'!r} is not one infersave knows: read as a Llama-style model")
    raw_dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    if raw_dtype is None:
        notes.append(f"no torch_dtype: weights served as {model.default_dtype}")
    else:
        notes.append(
            f"torch_dtype {raw_dtype} is served as {model.default_dtype} (set dtype: in the workload to change)"
        )
    if "tie_word_embeddings" in cfg:
        notes.append(f"tie_word_embeddings {cfg['tie_word_embeddings']} (from the file)")
    else:
        how = "tied: one matrix counted" if model.tie_word_embeddings else "untied: embedding and LM head both counted"
        notes.append(f"tie_word_embeddings not in the file: read as {model.tie_word_embeddings} ({how})")
    if "head_dim" not in cfg and model.family not in ("opt", "gptj", "gpt_neox"):
        notes.append(f"head_dim not in the file: hidden_size / num_attention_heads = {model.head_dim}")
    if "num_key_value_heads" not in cfg and model.family not in ("opt", "gptj", "gpt_neox"):
        notes.append(f"num_key_value_heads not in the file: {model.num_kv_heads} (one per attention head)")
    if cfg.get("sliding_window"):
        notes.append(f"sliding_window {cfg['sliding_window']} is not modelled: every layer keeps the full KV cache")
    if model.max_position_embeddings is None:
        notes.append("no max_position_embeddings: prompt lengths are not checked against a context window")
    config_params, source = _checkpoint_params(p, cfg)
    return ConfigReport(str(p), model, tuple(notes), model.num_params, config_params, source)


def _checkpoint_params(path: Path, cfg: dict[str, Any]) -> tuple[int | None, str]:
    """Return the checkpoint's own parameter count and where it was read (``(None, "")`` when not given)."""
    for key in _PARAM_KEYS:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, f"config.json {key}"
    index = path.parent / "model.safetensors.index.json"
    if index.is_file():
        try:
            total = json.loads(index.read_text(encoding="utf-8"))["metadata"]["total_size"]
        except (OSError, ValueError, KeyError, TypeError):
            return None, ""
        dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "")
        width = _CHECKPOINT_BYTES.get(dtype)
        if isinstance(total, int | float) and width:
            return int(total / width), f"model.safetensors.index.json total_size / {width:g} bytes ({dtype})"
    return None, ""


__all__ = ["DTYPE_BYTES", "ConfigReport", "read_config_report"]
