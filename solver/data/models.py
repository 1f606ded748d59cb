"""Model cards: the shipped ones (``instances/models.yaml``) and import of a local Hugging Face ``config.json``.

No network is used: a model is either a shipped name or a path to a ``config.json`` on disk.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import yaml

from solver.data.resources import data_path
from solver.errors import InputError, UnknownNameError
from solver.specs import ModelSpec
from solver.validation import first_error

_TORCH_DTYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "half": "fp16", "float": "fp32"}
_MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size")
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3", "llama4", "llama4_text")
"""``model_type`` values of the mixture-of-experts configs that :func:`from_hf_config` reads."""
_MOE_INT_KEYS = (
    *("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size", "num_experts_per_tok"),
    *("experts_per_token", "intermediate_size_mlp", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim"),
    *("qk_nope_head_dim", "v_head_dim", "decoder_sparse_step", "interleave_moe_layer_step", "moe_layer_freq"),
)
_MOE_COUNT_KEYS = ("n_shared_experts", "first_k_dense_replace", "shared_expert_intermediate_size")
"""Counts that may be 0 (a non-negative integer where present)."""
_INT_KEYS = (
    *("hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "head_dim"),
    *("intermediate_size", "vocab_size", "max_position_embeddings", "ffn_dim", "n_embd", "n_head", "n_layer"),
    *("n_inner", "n_positions"),
)
"""config.json keys read as sizes: each must be a positive integer where present (``null`` means absent)."""


@functools.cache
def load_models() -> Mapping[str, ModelSpec]:
    """Return every shipped model card, keyed by its lowercase name."""
    with open(data_path("models.yaml"), encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    cards = [ModelSpec.model_validate(entry) for entry in raw]
    return {card.name: card for card in cards}


def get_model(name_or_path: str, field: str = "model", base_dir: Path | None = None) -> ModelSpec:
    """Return a shipped model card by name, or import a Hugging Face ``config.json`` given as a path.

    Parameters
    ----------
    name_or_path
        A shipped name (case-insensitive, ``llama-3.1-8b``) or a path to a ``config.json`` file
        (or to a folder that holds one).
    field
        Name of the input field, used in error messages.
    base_dir
        Folder that relative paths are resolved against (the scenario file's folder).
    """
    models = load_models()
    key = name_or_path.strip().lower()
    if key in models:
        return models[key]
    by_hf = {m.hf_id.lower(): m for m in models.values() if m.hf_id}
    if key in by_hf:
        return by_hf[key]
    path = Path(name_or_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    looks_like_path = name_or_path.endswith(".json") or "/" in name_or_path or "\\" in name_or_path
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        return from_hf_config(path, field=field)
    if looks_like_path:
        hint = ""
        if (
            name_or_path.count("/") == 1
            and not name_or_path.endswith(".json")
            and not name_or_path.startswith((".", "/", "~"))
        ):
            hint = (
                f"; {name_or_path!r} is not the Hugging Face id of a shipped model (see `infersave models`) and "
                "nothing is downloaded: save its config.json and give that path"
            )
        raise InputError(field, f"no config.json file at {str(path)!r}{hint}")
    raise UnknownNameError(field, "model", name_or_path, models)


def from_hf_config(path: str | Path, name: str | None = None, field: str = "model") -> ModelSpec:
    """Build a :class:`ModelSpec` from a local Hugging Face ``config.json``.

    Llama-style (llama, mistral, qwen2, qwen3, gemma, phi3), OPT, GPT-J and GPT-NeoX configs are understood, and
    the mixture-of-experts families of :data:`MOE_FAMILIES` (Mixtral, Qwen2/Qwen3-MoE, gpt-oss, DeepSeek-V2/V3
    with MLA, Llama 4 with its ``text_config``): routed and shared experts, experts per token, expert
    intermediate size, dense layers before the first MoE layer, MLA ranks, and the experts' quantisation where
    ``quantization_config`` declares it (``mxfp4``: experts only; ``fp8``: every weight). A MoE config of another
    ``model_type``, or a field whose value is not modelled, is an :class:`InputError` naming the field.
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(field, f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(field, f"{str(path)!r} is nested too deeply to be a config.json") from None
    if not isinstance(cfg, dict):
        raise InputError(field, f"{str(path)!r} must hold a JSON object")
    model_type = str(cfg.get("model_type", "")).lower()
    top = cfg
    if model_type == "llama4" and isinstance(cfg.get("text_config"), dict):  # multimodal wrapper: the text model
        cfg = {**cfg["text_config"], "_name_or_path": top.get("_name_or_path")}
        cfg.setdefault("torch_dtype", top.get("torch_dtype"))
        cfg.setdefault("quantization_config", top.get("quantization_config"))
    for key in _INT_KEYS + _MOE_INT_KEYS:
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InputError(f"{field} ({path.name}: {key})", f"must be a positive integer, got {value!r}")
    for key in _MOE_COUNT_KEYS:
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(f"{field} ({path.name}: {key})", f"must be a non-negative integer, got {value!r}")
    moe = any(cfg.get(k) for k in _MOE_KEYS) or model_type in MOE_FAMILIES
    if moe and model_type not in MOE_FAMILIES:
        raise InputError(
            f"{field} ({path.name}: model_type)",
            f"mixture-of-experts model_type {model_type or '(none)'!r} is not modelled; "
            f"supported: {', '.join(MOE_FAMILIES)}",
        )
    label = name or cfg.get("_name_or_path") or path.parent.name or path.stem
    try:
        fields = _parse(model_type, cfg)
        if moe:
            fields.update(_parse_moe(model_type, cfg, f"{field} ({path.name}"))
    except KeyError as exc:
        kind = f"{model_type} (mixture-of-experts)" if moe else model_type or "model"
        raise InputError(field, f"{str(path)!r} lacks the key {exc.args[0]!r} for a {kind} config") from None
    _check_heads(cfg, fields, f"{field} ({path.name}")
    fields.update(name=str(label).lower(), hf_id=cfg.get("_name_or_path"), source=f"config.json at {path}")
    dtype = _TORCH_DTYPES.get(str(cfg.get("torch_dtype") or cfg.get("dtype") or "float16"), "fp16")
    fields.setdefault("default_dtype", dtype)
    try:
        return ModelSpec.model_validate(fields)
    except pydantic.ValidationError as exc:
        loc, msg = first_error(exc)
        raise InputError(f"{field} ({path.name}: {loc})", msg) from None


def _check_heads(cfg: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    """Refuse heads not dividing the hidden size (without an explicit head_dim), or KV heads not dividing heads."""
    h, nh, nkv = fields["hidden_size"], fields["num_attention_heads"], fields["num_kv_heads"]
    heads_key = "n_head" if "n_head" in cfg else "num_attention_heads"
    if not cfg.get("head_dim") and h % nh != 0:
        raise InputError(
            f"{where}: {heads_key})", f"{nh} heads do not divide the hidden size {h} (give head_dim if intended)"
        )
    if nkv > nh or nh % nkv != 0:
        raise InputError(f"{where}: num_key_value_heads)", f"{nkv} KV heads must divide the {nh} attention heads")


def _parse(model_type: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Map a config dict onto ModelSpec fields, by architecture family."""
    if model_type == "opt":
        h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
        return dict(
            family="opt",
            num_layers=cfg["num_hidden_layers"],
            hidden_size=h,
            num_attention_heads=nh,
            num_kv_heads=nh,
            head_dim=h // nh,
            intermediate_size=cfg["ffn_dim"],
            vocab_size=cfg["vocab_size"],
            max_position_embeddings=cfg.get("max_position_embeddings"),
            mlp="standard",
            tie_word_embeddings=cfg.get("tie_word_embeddings", True),
            attention_bias=cfg.get("enable_bias", True),
            mlp_bias=cfg.get("enable_bias", True),
            learned_pos_embeddings=cfg.get("max_position_embeddings", 2048) + 2,
        )
    if model_type == "gptj":
        h, nh = cfg["n_embd"], cfg["n_head"]
        return dict(
            family="gptj",
            num_layers=cfg["n_layer"],
            hidden_size=h,
            num_attention_heads=nh,
            num_kv_heads=nh,
            head_dim=h // nh,
            intermediate_size=cfg.get("n_inner") or 4 * h,
            vocab_size=cfg["vocab_size"],
            max_position_embeddings=cfg.get("n_positions"),
            mlp="standard",
            tie_word_embeddings=cfg.get("tie_word_embeddings", False),
            attention_bias=False,
            mlp_bias=True,
            parallel_attn_mlp=True,
        )
    if model_type == "gpt_neox":
        h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
        return dict(
            family="gpt_neox",
            num_layers=cfg["num_hidden_layers"],
            hidden_size=h,
            num_attention_heads=nh,
            num_kv_heads=nh,
            head_dim=h // nh,
            intermediate_size=cfg["intermediate_size"],
            vocab_size=cfg["vocab_size"],
            max_position_embeddings=cfg.get("max_position_embeddings"),
            mlp="standard",
            tie_word_embeddings=cfg.get("tie_word_embeddings", False),
            attention_bias=True,
            mlp_bias=True,
            parallel_attn_mlp=cfg.get("use_parallel_residual", True),
        )
    # Llama-style default: llama, mistral, qwen2, qwen3, gemma, phi3, ...
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    bias: bool | str = cfg.get("attention_bias", False)
    if model_type == "qwen2":
        bias = "qkv"
    return dict(
        family=model_type or "llama",
        num_layers=cfg["num_hidden_layers"],
        hidden_size=h,
        num_attention_heads=nh,
        num_kv_heads=cfg.get("num_key_value_heads") or nh,
        head_dim=cfg.get("head_dim") or h // nh,
        intermediate_size=cfg["intermediate_size"],
        vocab_size=cfg["vocab_size"],
        max_position_embeddings=cfg.get("max_position_embeddings"),
        mlp="gated",
        tie_word_embeddings=cfg.get("tie_word_embeddings", model_type in TIED_BY_DEFAULT),
        attention_bias=bias,
        mlp_bias=cfg.get("mlp_bias", False),
    )


TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})
"""Llama-style model types whose transformers config class defaults ``tie_word_embeddings`` to True (GemmaConfig,
Gemma2Config, Gemma3TextConfig), so a config.json of theirs that omits the key has tied embeddings; LlamaConfig,
MistralConfig, Qwen2Config, Qwen3Config and Phi3Config default it to False."""


def _parse_moe(model_type: str, cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """Mixture-of-experts (and MLA) fields of a config of one of :data:`MOE_FAMILIES`."""
    out: dict[str, Any] = {"family": model_type.removesuffix("_text")}
    k = cfg.get("num_experts_per_tok") or cfg.get("experts_per_token")
    if not k:
        raise KeyError("num_experts_per_tok")
    out["experts_per_token"] = k
    if model_type == "mixtral":
        out.update(num_experts=cfg["num_local_experts"], expert_intermediate_size=cfg["intermediate_size"])
    elif model_type in ("qwen2_moe", "qwen3_moe"):
        inter = cfg["moe_intermediate_size"]
        out.update(num_experts=cfg["num_experts"], expert_intermediate_size=inter)
        out["moe_layer_step"] = cfg.get("decoder_sparse_step") or 1
        if cfg.get("mlp_only_layers"):
            raise InputError(f"{where}: mlp_only_layers)", "dense layers listed by index are not modelled")
        shared = cfg.get("shared_expert_intermediate_size") or 0
        if shared % inter:
            raise InputError(
                f"{where}: shared_expert_intermediate_size)",
                f"{shared} is not a multiple of moe_intermediate_size {inter}; not modelled",
            )
        out["num_shared_experts"] = shared // inter
    elif model_type == "gpt_oss":
        out.update(
            num_experts=cfg.get("num_local_experts") or cfg["num_experts"],
            expert_intermediate_size=cfg["intermediate_size"],
            attention_bias=cfg.get("attention_bias", True),
            mlp_bias=True,  # gate_up_proj_bias, down_proj_bias and the router bias (HF GptOssExperts)
        )
    elif model_type in ("deepseek_v2", "deepseek_v3"):
        if (cfg.get("moe_layer_freq") or 1) != 1:
            raise InputError(f"{where}: moe_layer_freq)", f"{cfg['moe_layer_freq']} is not modelled; only 1 is")
        out.update(
            num_experts=cfg["n_routed_experts"],
            num_shared_experts=cfg.get("n_shared_experts") or 0,
            expert_intermediate_size=cfg["moe_intermediate_size"],
            first_k_dense_replace=cfg.get("first_k_dense_replace") or 0,
        )
        if cfg.get("kv_lora_rank"):
            out.update(
                kv_lora_rank=cfg["kv_lora_rank"],
                q_lora_rank=cfg.get("q_lora_rank"),
                qk_rope_head_dim=cfg["qk_rope_head_dim"],
                qk_nope_head_dim=cfg["qk_nope_head_dim"],
                v_head_dim=cfg["v_head_dim"],
                head_dim=cfg["v_head_dim"],
            )
    else:  # llama4 / llama4_text
        step = cfg.get("interleave_moe_layer_step") or 1
        layers = cfg["num_hidden_layers"]
        listed = cfg.get("moe_layers")
        if listed is not None and list(listed) != list(range(step - 1, layers, step)):
            raise InputError(f"{where}: moe_layers)", f"must be every {step}th layer to be modelled")
        out.update(
            num_experts=cfg["num_local_experts"],
            num_shared_experts=1,  # HF Llama4TextMoe: one shared expert of the routed size
            expert_intermediate_size=cfg["intermediate_size"],
            intermediate_size=cfg.get("intermediate_size_mlp") or cfg["intermediate_size"],
            moe_layer_step=step,
        )
    quant = cfg.get("quantization_config")
    if quant:
        method = str(quant.get("quant_method", "")).lower() if isinstance(quant, dict) else ""
        if method == "mxfp4":
            out["expert_dtype"] = "mxfp4"
        elif method == "fp8":
            out["default_dtype"] = "fp8"
        else:
            raise InputError(
                f"{where}: quantization_config.quant_method)",
                f"{method or quant!r} is not modelled for a mixture-of-experts model; use mxfp4 or fp8, "
                "or remove it and pass --dtype",
            )
    return out


def models_table() -> pd.DataFrame:
    """Return the shipped model cards as a DataFrame with computed parameter counts."""
    rows = []
    for m in load_models().values():
        row = m.model_dump()
        row["num_params"] = m.num_params
        row["params_b"] = round(m.num_params / 1e9, 3)
        row["active_params_b"] = round(m.active_params / 1e9, 3)
        row["attention_type"] = m.attention_type
        row["kv_bytes_per_token"] = m.kv_bytes_per_token()
        rows.append(row)
    return pd.DataFrame(rows)
