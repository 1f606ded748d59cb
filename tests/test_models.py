import json

import pytest

from solver.data.models import from_hf_config, get_model, load_models
from solver.errors import InputError, UnknownNameError

REQUIRED = [
    "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b",
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
    "mistral-7b", "qwen2.5-7b", "qwen2.5-32b", "qwen2.5-72b", "gpt-j-6b",
]  # fmt: skip


def test_required_models_are_shipped():
    assert set(REQUIRED) <= set(load_models())


@pytest.mark.parametrize("name", sorted(load_models()))
def test_parameter_count_within_two_percent_of_published(name):
    card = load_models()[name]
    assert card.params_b_published is not None, f"{name} lacks a published size"
    assert card.num_params / 1e9 == pytest.approx(card.params_b_published, rel=0.02)
    assert card.source, f"{name} has no source"


def test_kv_bytes_per_token_worked_numbers():
    # 2 * layers * kv_heads * head_dim * bytes
    assert get_model("opt-2.7b").kv_bytes_per_token("fp16") == 2 * 32 * 32 * 80 * 2 == 327_680
    assert get_model("llama-3.1-8b").kv_bytes_per_token("bf16") == 2 * 32 * 8 * 128 * 2 == 131_072
    assert get_model("llama-3.1-8b").kv_bytes_per_token("fp8") == 65_536


def test_lookup_is_case_insensitive_and_accepts_hf_id():
    assert get_model("Llama-3.1-8B").name == "llama-3.1-8b"
    assert get_model("meta-llama/Llama-3.1-8B").name == "llama-3.1-8b"


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownNameError) as exc:
        get_model("llama-3.1-8", field="workloads.0.model")
    assert "workloads.0.model" in str(exc.value)
    assert "did you mean" in str(exc.value) and "llama-3.1-8b" in str(exc.value)


def test_hf_config_import(tmp_path):
    src = tmp_path / "config.json"
    src.write_text((__import__("pathlib").Path(__file__).parent / "data" / "llama_like_config.json").read_text())
    card = get_model(str(src))
    assert card.num_kv_heads == 4 and card.head_dim == 64 and card.default_dtype == "bf16"
    assert card.kv_bytes_per_token() == 2 * 22 * 4 * 64 * 2
    # directory containing config.json works too
    assert get_model(str(tmp_path)).num_layers == 22


def test_hf_config_opt_and_qwen_shapes(tmp_path):
    opt = {
        "model_type": "opt",
        "hidden_size": 2560,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "ffn_dim": 10240,
        "vocab_size": 50272,
        "max_position_embeddings": 2048,
        "torch_dtype": "float16",
    }
    p = tmp_path / "opt.json"
    p.write_text(json.dumps(opt))
    card = from_hf_config(p)
    assert card.num_params == pytest.approx(get_model("opt-2.7b").num_params, rel=1e-6)


def test_hf_config_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        get_model(str(bad))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(InputError, match="lacks the key"):
        get_model(str(missing))
    moe = tmp_path / "moe.json"
    moe.write_text(json.dumps({"model_type": "mixtral", "num_local_experts": 8}))
    with pytest.raises(InputError, match="mixture-of-experts"):
        get_model(str(moe))
    with pytest.raises(InputError, match=r"no config\.json"):
        get_model(str(tmp_path / "nowhere" / "config.json"))
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"model_type": "llama", "hidden_size": 48, "num_attention_heads": 6,
                                 "num_key_value_heads": 4, "num_hidden_layers": 2, "intermediate_size": 128,
                                 "vocab_size": 100}))  # fmt: skip
    with pytest.raises(InputError, match=r"num_key_value_heads.*4 KV heads must divide the 6"):
        get_model(str(heads))
