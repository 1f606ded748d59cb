"""How TensorRT-LLM's fake ("random") weights route tokens: a forward pass of Mixtral 8x7B's shape, simulated.

Run: python -m benchmarks.moe_fake_weights [--write]   (about a minute; writes
``benchmarks/results/moe_fake_weight_routing.json`` with ``--write``; ``benchmarks/moe_accuracy.py`` reads it)

Why: the NVIDIA DLI TensorRT-LLM 0.9.0 table (``shared/data/nvidia_dli_trtllm_nim/trt_llm_0_9_0_dli.csv``) has
``Use Fake Weight = Yes`` in every row: the engines were built without a checkpoint. A TensorRT-LLM
``Parameter`` built without a value is filled by ``Parameter.xavier_init`` (``tensorrt_llm/parameter.py``;
``network._fill_weights`` calls it for every weight left unset) as::

    v_range = sqrt(6) / sqrt(shape[0] + shape[1])    (2-D weights; 0.1 for 1-D and 3-D ones, e.g. the MoE
                                                      experts' (experts, out, in) tensors and the norms)
    value = (torch.randn(shape) * 2 - 1) * v_range   ("value ~ N[-v_range, v_range]" in the source's comment)

(NVIDIA/TensorRT-LLM, tensorrt_llm/parameter.py at b57221b764bc579cbb2490154916a871f620e2c4; the eager
version at 138f96d45f90b9667426f7c47297d8c06bafac73 has the same two lines). That is a normal distribution
with mean ``-v_range`` and standard deviation ``2·v_range``, not a zero-mean one: every weight matrix has a
common negative mean, so every linear layer adds ``-v_range · sum(x)`` to all its outputs. The all-ones
direction grows by about ``sqrt(n)/2`` per matrix (n = 4,096 inputs: 32x) and after the first layer every
token's hidden state points the same way; the router's logits ``W_r · x`` are then the same for every token
up to a scale, and top-k picks the same k experts for all tokens. The benchmark's prompts are random tokens
(gptSessionBenchmark: ``rand() % vocab``; the Python benchmark: ``torch.randint(100, ...)``), which do not
change that. The residual also leaves fp16's range (max 65,504) in the first MoE layer (``max_abs_residual``
below); identical non-finite hidden states route all tokens alike too.

How: one forward pass of b prompts of s random tokens through Mixtral 8x7B's shape (hidden 4,096, 32 query
and 8 KV heads of 128, 8 experts of 14,336, top 2, 32 layers; RMSNorm, causal attention without RoPE, SwiGLU
experts, softmax-renormalised top-k) with weights drawn as above. Each weight matrix is applied once to the
pass's token vectors X (T x n); ``W·X`` with ``W = v·(2Z - 1)`` is drawn exactly in law as
``2v·(X Xᵀ)^½·G - v·(X·1)`` with G standard normal (T x out), so no 4,096 x 14,336 matrix is materialised.
Computed in float64 (no fp16 overflow), which shows the routing the finite part of the computation gives.
The control draws zero-mean weights ``v·2Z`` (what the comment's ``N[-v, v]`` reads as): the routing then
spreads over the experts as a real router's does.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "moe_fake_weight_routing.json"
FP16_MAX = 65504.0


@dataclass(frozen=True)
class Shape:
    """Transformer shape of the simulated model (defaults: Mixtral 8x7B, mistralai/Mixtral-8x7B-v0.1 config)."""

    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    ffn: int = 14336
    experts: int = 8
    top_k: int = 2
    layers: int = 32
    vocab: int = 32000


@dataclass(frozen=True)
class Routing:
    """Result of one simulated pass."""

    init: str
    batch: int
    seq: int
    token_ids_below: int
    experts_all_tokens: list[int]
    """Distinct experts the pass's b·s tokens routed to, per layer."""
    experts_last_positions: list[int]
    """Distinct experts of the b prompts' last tokens (what one decode step of b sequences resembles), per layer."""
    max_abs_residual: list[float]
    """Largest |hidden state| after each layer (float64; fp16 overflows above 65,504)."""


def _v_range(shape: tuple[int, ...]) -> float:
    """TensorRT-LLM's xavier_init range: sqrt(6 / (rows + cols)) for 2-D weights, 0.1 otherwise."""
    return float(np.sqrt(6.0) / np.sqrt(shape[0] + shape[1])) if len(shape) == 2 else 0.1


def simulate(
    shape: Shape = Shape(),
    *,
    batch: int = 8,
    seq: int = 16,
    token_ids_below: int = 100,
    init: str = "trtllm",
    seed: int = 0,
) -> Routing:
    """Route one pass of ``batch`` prompts of ``seq`` random token ids through ``shape`` with fake weights.

    ``init``: ``trtllm`` (``(randn·2 - 1)·v``, TensorRT-LLM's) or ``zero_mean`` (``randn·2·v``, the control).
    """
    if init not in ("trtllm", "zero_mean"):
        raise ValueError(f"init must be 'trtllm' or 'zero_mean', got {init!r}")
    rng = np.random.default_rng(seed)
    shift = 1.0 if init == "trtllm" else 0.0

    def apply(x: np.ndarray, out: int, weight_shape: tuple[int, ...]) -> np.ndarray:
        """x @ W.T for W of ``weight_shape`` drawn as TensorRT-LLM would (exact in law for one application)."""
        v = _v_range(weight_shape)
        w, u = np.linalg.eigh(x @ x.T)
        root = (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T
        y = root @ rng.standard_normal((x.shape[0], out), dtype=np.float32).astype(np.float64)
        return 2.0 * v * y - shift * v * x.sum(axis=1, keepdims=True)

    def norm(x: np.ndarray) -> np.ndarray:
        gain = 0.1 * (2.0 * rng.standard_normal(x.shape[1]) - shift)  # 1-D weight: v_range 0.1
        return np.asarray(x / np.sqrt((x**2).mean(axis=1, keepdims=True) + 1e-5) * gain)

    h, nq, nkv, d, f, e, k = (
        shape.hidden,
        shape.heads,
        shape.kv_heads,
        shape.head_dim,
        shape.ffn,
        shape.experts,
        shape.top_k,
    )
    tokens = rng.integers(0, token_ids_below, (batch, seq))
    v_emb = _v_range((shape.vocab, h))
    table = {t: v_emb * (2.0 * rng.standard_normal(h) - shift) for t in np.unique(tokens)}
    x = np.stack([table[t] for t in tokens.ravel()])  # (b·s, h); row = sequence · s + position
    causal = np.triu(np.full((seq, seq), -np.inf), 1)
    all_tokens, last, biggest = [], [], []
    for _ in range(shape.layers):
        a = norm(x)
        qkv = apply(a, (nq + 2 * nkv) * d, ((nq + 2 * nkv) * d, h))
        q = qkv[:, : nq * d].reshape(batch, seq, nq, d)
        kk = np.repeat(qkv[:, nq * d : (nq + nkv) * d].reshape(batch, seq, nkv, d), nq // nkv, axis=2)
        vv = np.repeat(qkv[:, (nq + nkv) * d :].reshape(batch, seq, nkv, d), nq // nkv, axis=2)
        scores = np.einsum("bqhd,bkhd->bhqk", q, kk) / np.sqrt(d) + causal
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        attn = np.einsum("bhqk,bkhd->bqhd", p, vv).reshape(batch * seq, nq * d)
        x = x + apply(attn, h, (h, nq * d))
        a = norm(x)
        logits = apply(a, e, (e, h))
        top = np.argsort(-logits, axis=1)[:, :k]
        gate = np.take_along_axis(logits, top, axis=1)
        gate = np.exp(gate - gate.max(axis=1, keepdims=True))
        gate /= gate.sum(axis=1, keepdims=True)
        moe = np.zeros_like(x)
        for expert in np.unique(top):
            rows, slot = np.nonzero(top == expert)
            up = apply(a[rows], 2 * f, (e, 2 * f, h))  # fused gate+up projection, a 3-D (experts, out, in) tensor
            act = up[:, :f] / (1.0 + np.exp(-np.clip(up[:, :f], -80.0, 80.0))) * up[:, f:]
            moe[rows] += gate[rows, slot][:, None] * apply(act, h, (e, h, f))
        x = x + moe
        all_tokens.append(len(np.unique(top)))
        last.append(len(np.unique(top.reshape(batch, seq, k)[:, -1, :])))
        biggest.append(float(np.abs(x).max()))
    return Routing(init, batch, seq, token_ids_below, all_tokens, last, biggest)


CASES = (
    {"init": "trtllm", "batch": 8, "seq": 16, "token_ids_below": 100},  # the Python benchmark's torch.randint(100)
    {"init": "trtllm", "batch": 8, "seq": 16, "token_ids_below": 32000},  # gptSessionBenchmark's rand() % vocab
    {"init": "zero_mean", "batch": 8, "seq": 16, "token_ids_below": 32000},  # control
)


def main() -> None:
    """Command line: simulate CASES, print them, optionally write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = ap.parse_args()
    results = [simulate(**case) for case in CASES]  # type: ignore[arg-type]
    for r in results:
        print(
            f"{r.init:9s} b={r.batch} s={r.seq} ids<{r.token_ids_below}: experts per layer (all tokens) "
            f"{min(r.experts_all_tokens)}-{max(r.experts_all_tokens)}, (last positions) "
            f"{min(r.experts_last_positions)}-{max(r.experts_last_positions)}, max |residual| "
            f"{max(r.max_abs_residual):.3g}"
        )
    if args.write:
        OUT.write_text(json.dumps({"shape": asdict(Shape()), "cases": [asdict(r) for r in results]}, indent=1) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
