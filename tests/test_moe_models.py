"""Mixture-of-experts and MLA model cards: parameter counts, config.json import, worked numbers (issue 17)."""

import json
from pathlib import Path

import numpy as np
import pytest

from solver.data.models import from_hf_config, get_model, load_models
from solver.errors import InputError
from solver.performance.latency import ModelCosts, expected_experts_touched
from solver.performance.memory import GIB, kv_head_share, weights_gib
from solver.specs import ModelSpec
from tests.cli_helpers import run

DATA = Path(__file__).parent / "data" / "moe"
MOE_CARDS = [
    "mixtral-8x7b",
    "mixtral-8x22b",
    "qwen3-30b-a3b",
    "qwen3-235b-a22b",
    "gpt-oss-20b",
    "gpt-oss-120b",
    "deepseek-v3",
    "llama-4-scout",
]
FIXTURES = {
    "mixtral-8x7b.json": "mixtral-8x7b",
    "qwen3-30b-a3b.json": "qwen3-30b-a3b",
    "gpt-oss-120b.json": "gpt-oss-120b",
    "deepseek-v3.json": "deepseek-v3",
    "llama-4-scout.json": "llama-4-scout",
}
ARCH_FIELDS = [
    f
    for f in ModelSpec.model_fields
    if f not in ("name", "hf_id", "source", "params_b_published", "params_active_b_published")
    and f not in ("published_active_excludes_input_embedding", "max_position_embeddings")
]
"""Fields a config.json determines (the published counts, provenance and context length are card-only)."""


@pytest.mark.parametrize("name", MOE_CARDS)
def test_moe_card_total_and_active_within_two_percent(name):
    card = load_models()[name]
    assert card.is_moe and card.source
    assert card.params_b_published and card.params_active_b_published
    assert card.num_params / 1e9 == pytest.approx(card.params_b_published, rel=0.02)
    active = card.active_params
    if card.published_active_excludes_input_embedding:  # OpenAI counts gpt-oss active params without it
        active -= card.vocab_size * card.hidden_size
    assert active / 1e9 == pytest.approx(card.params_active_b_published, rel=0.02)
    assert card.active_params < card.num_params


def test_dense_cards_are_unchanged_by_the_moe_fields():
    llama = get_model("llama-3.1-8b")
    assert not llama.is_moe and llama.num_moe_layers == 0
    assert llama.active_params == llama.num_params == 32 * llama.layer_params + 2 * 128256 * 4096 + 2 * 4096
    assert llama.weight_bytes("bf16") == llama.num_params * 2.0


def test_mixtral_counts_by_hand():
    # attention q,k,v,o + 8 gated experts + router + 4h norms per layer; embeddings and head untied
    h, inter = 4096, 14336
    attn = h * 4096 + 2 * h * 1024 + 4096 * h
    expert = 3 * h * inter
    layer = attn + 8 * expert + h * 8 + 4 * h
    total = 32 * layer + 2 * 32000 * h + 2 * h
    m = get_model("mixtral-8x7b")
    assert m.num_params == total
    assert m.active_params == total - 32 * 6 * expert


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_config_json_import_reads_each_family(fixture):
    imported = from_hf_config(DATA / fixture)
    card = get_model(FIXTURES[fixture])
    for f in ARCH_FIELDS:
        assert getattr(imported, f) == getattr(card, f), f"{fixture}: {f}"
    assert imported.num_params == card.num_params
    assert imported.active_params == card.active_params


def test_config_import_reads_the_moe_specific_fields():
    ds = from_hf_config(DATA / "deepseek-v3.json")
    assert (ds.num_experts, ds.num_shared_experts, ds.experts_per_token) == (256, 1, 8)
    assert (ds.first_k_dense_replace, ds.num_moe_layers, ds.num_dense_layers) == (3, 58, 3)
    assert (ds.kv_lora_rank, ds.qk_rope_head_dim, ds.q_lora_rank) == (512, 64, 1536)
    assert ds.attention_type == "mla" and ds.default_dtype == "fp8"
    oss = from_hf_config(DATA / "gpt-oss-120b.json")
    assert oss.expert_dtype == "mxfp4" and oss.default_dtype == "bf16"
    scout = from_hf_config(DATA / "llama-4-scout.json")
    assert (scout.num_experts, scout.num_shared_experts, scout.expert_intermediate_size) == (16, 1, 8192)
    assert scout.intermediate_size == 16384 and scout.num_moe_layers == 48
    qwen = from_hf_config(DATA / "qwen3-30b-a3b.json")
    assert (qwen.num_experts, qwen.experts_per_token, qwen.expert_intermediate_size) == (128, 8, 768)


def _variant(tmp_path, fixture, **changes):
    cfg = json.loads((DATA / fixture).read_text())
    cfg.update(changes)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


@pytest.mark.parametrize(
    ("fixture", "changes", "message"),
    [
        ("mixtral-8x7b.json", {"model_type": "grok"}, "model_type 'grok' is not modelled"),
        ("deepseek-v3.json", {"moe_layer_freq": 2}, "moe_layer_freq"),
        ("qwen3-30b-a3b.json", {"mlp_only_layers": [0, 1]}, "mlp_only_layers"),
        ("qwen3-30b-a3b.json", {"shared_expert_intermediate_size": 1000}, "shared_expert_intermediate_size"),
        ("gpt-oss-120b.json", {"quantization_config": {"quant_method": "awq"}}, "quant_method"),
        ("mixtral-8x7b.json", {"num_experts_per_tok": 9}, "experts_per_token"),
        ("mixtral-8x7b.json", {"num_local_experts": -8}, "num_local_experts"),
        ("deepseek-v3.json", {"n_shared_experts": True}, "n_shared_experts"),
        ("mixtral-8x7b.json", {"num_experts_per_tok": None}, "num_experts_per_tok"),
    ],
)
def test_unsupported_moe_fields_are_one_line_errors(tmp_path, fixture, changes, message):
    with pytest.raises(InputError, match=message) as exc:
        from_hf_config(_variant(tmp_path, fixture, **changes))
    assert "\n" not in str(exc.value)


def test_cli_rejects_an_unsupported_moe_config_without_traceback(tmp_path, capsys):
    bad = _variant(tmp_path, "deepseek-v3.json", moe_layer_freq=2)
    args = ["predict", "--model", str(bad), "--gpu", "H200", "--gpus", "8"]
    code, _out, err = run([*args, "--batch-size", "1", "--input-len", "10", "--output-len", "10"], capsys)
    assert code == 2
    assert "moe_layer_freq" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_models_lists_total_and_active(capsys):
    code, out, _err = run(["models", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    for name in MOE_CARDS:
        assert rows[name]["active_params_b"] < rows[name]["params_b"]
    assert rows["gpt-oss-120b"]["params_b"] == pytest.approx(116.83, rel=0.01)
    assert rows["deepseek-v3"]["attention_type"] == "mla"


# ---- worked numbers ------------------------------------------------------------------------------
def test_deepseek_v3_mla_kv_bytes_per_token():
    ds = get_model("deepseek-v3")
    # MLA caches the 512-wide latent and the 64-wide shared rope key per layer: 61 · (512 + 64) · 2 bytes
    assert ds.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2 == 70_272
    assert ds.kv_bytes_per_token("fp8") == 35_136
    # the same heads without MLA would cache K (192 wide) and V (128 wide) of 128 heads: 71x more
    mha = 61 * 128 * (192 + 128) * 2
    assert mha / ds.kv_bytes_per_token("bf16") == pytest.approx(71.1, abs=0.1)
    assert np.all(kv_head_share(ds, [1, 2, 8]) == 1.0)  # the latent is replicated on every TP rank


def test_expected_experts_touched_batch_one_and_large_batch():
    # batch 1: exactly the k experts of the one token
    assert expected_experts_touched(128, 4, 1) == pytest.approx(4.0)
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2.0)
    # batch 8 on Mixtral: 8 · (1 - (6/8)^8) = 7.2
    assert expected_experts_touched(8, 2, 8) == pytest.approx(8 * (1 - 0.75**8)) == pytest.approx(7.199, abs=1e-3)
    # gpt-oss-120b at batch 64: 128 · (1 - (124/128)^64) = 111.2; at 4,096 every expert
    assert expected_experts_touched(128, 4, 64) == pytest.approx(128 * (1 - (124 / 128) ** 64))
    assert expected_experts_touched(128, 4, 64) == pytest.approx(111.2, abs=0.05)
    assert expected_experts_touched(128, 4, 4096) == pytest.approx(128.0)


def test_decode_bytes_grow_with_batch_up_to_all_experts():
    oss = get_model("gpt-oss-120b")
    costs = ModelCosts.of(oss, "bf16", "bf16")
    one, big = costs.weights_read(np.array([1.0])), costs.weights_read(np.array([100_000.0]))
    expert = oss.expert_bytes("bf16")
    assert expert == pytest.approx(oss.expert_params * 4.25 / 8)
    assert big[0] == pytest.approx(costs.weight_bytes)
    assert big[0] - one[0] == pytest.approx(36 * (128 - 4) * expert)
    # FLOPs per token come from the active layer parameters, not all of them
    assert costs.flops_per_token == 2.0 * oss.active_layer_params
    dense = ModelCosts.of(get_model("llama-3.1-8b"), "bf16", "bf16")
    assert dense.weights_read(np.array([1.0, 512.0])) == dense.weight_bytes


def test_gpt_oss_120b_weights_memory_at_mxfp4():
    oss = get_model("gpt-oss-120b")
    routed = 36 * 128 * (3 * 2880 * 2880 + 2 * 2880 + 2880)
    rest = oss.num_params - routed
    assert oss.routed_expert_params == routed
    expected = routed * 4.25 / 8 + rest * 2.0  # MXFP4 experts (4 bits + an 8-bit scale per 32), bf16 rest
    assert oss.weight_bytes("bf16") == pytest.approx(expected)
    gib = weights_gib(oss, "bf16", [1, 2])
    assert gib[0] == pytest.approx(expected / GIB) == pytest.approx(60.71, abs=0.01)
    assert gib[1] == pytest.approx(gib[0] / 2)
    # OpenAI's model card gives a 60.8 GiB checkpoint
    assert gib[0] == pytest.approx(60.8, rel=0.005)
    # all bf16 would be 217.6 GiB: the experts' format, not the active count, sets the memory
    assert oss.num_params * 2 / GIB == pytest.approx(217.6, abs=0.1)


def test_moe_validation_rows_are_held_out_of_the_shipped_calibration():
    from solver.data.resources import data_path
    from solver.performance.accuracy import shipped_measurements
    from solver.performance.calibration import read_measurements

    shipped = shipped_measurements()
    assert not shipped["model"].isin(MOE_CARDS).any()
    for name in ("dli_trtllm_mixtral.csv", "aiconfigurator_moe.csv"):
        rows = read_measurements(data_path("measurements", "holdout", name))
        assert len(rows) > 100 and rows["model"].isin(MOE_CARDS).all()


def test_moe_card_rejects_inconsistent_expert_fields():
    base = get_model("mixtral-8x7b").model_dump()
    with pytest.raises(ValueError, match="experts_per_token"):
        ModelSpec.model_validate({**base, "experts_per_token": 9})
    with pytest.raises(ValueError, match="expert_intermediate_size"):
        ModelSpec.model_validate({**base, "expert_intermediate_size": None})
    with pytest.raises(ValueError, match="no mixture-of-experts layer"):
        ModelSpec.model_validate({**base, "first_k_dense_replace": 32})
    dense = get_model("llama-3.1-8b").model_dump()
    with pytest.raises(ValueError, match="num_experts > 0"):
        ModelSpec.model_validate({**dense, "expert_dtype": "mxfp4"})
    with pytest.raises(ValueError, match="qk_rope_head_dim"):
        ModelSpec.model_validate({**dense, "kv_lora_rank": 512})
