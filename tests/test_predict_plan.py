"""predict = plan: ``predict`` reproduces every fleet row of the example scenarios' plans, number for number.

Both go through :func:`solver.performance.model.predict_frame`; this test fails if the planner and ``predict``
ever model a configuration differently (batching, KV offload per engine, admission, CTCF, hardware).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from solver.data.scenario import load_scenario
from solver.errors import InfeasibleError
from solver.performance.model import predict
from solver.planning.candidates import batching_mode, mixed_tokens
from solver.planning.classes import expand
from solver.planning.planner import plan

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "instances" / "scenarios").glob("*.yaml"))
REL = 1e-9


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_predict_reproduces_every_plan_row(path: Path) -> None:
    scenario = load_scenario(path)
    try:
        result = plan(scenario)
    except InfeasibleError:
        assert path.stem.startswith("unreachable"), f"{path.stem} is meant to have a plan"
        pytest.skip(f"{path.stem} has no plan by design")
    if not result.fleet:
        pytest.skip(f"{path.stem} has no plan ({result.status})")
    workloads = {w.name: w for w in expand(scenario).scenario.workloads}  # request classes (size buckets)
    for row in result.fleet:
        if row.pool >= 0:
            _check_pool_row(row, workloads, scenario)
            continue
        w = workloads[row.workload]
        pred = _predict_row(row, w, scenario, w.input_tokens)
        where = f"{path.stem}: {row.workload} on {row.instance_type} tp={row.tp} b={row.batch_size}"
        assert pred.fits, where
        assert (pred.tp, pred.batch_size, pred.gpu) == (row.tp, row.batch_size, row.gpu), where
        assert _close(pred.offload_fraction, row.offload_fraction), where
        for name, mine, theirs in (
            ("ttft_ms", pred.ttft_ms, row.ttft_ms),
            ("tpot_ms", pred.tpot_ms, row.tpot_ms),
            ("e2e_s", pred.e2e_s, row.e2e_s),
            ("tps", pred.tps, row.tps),
            ("rate_rps", pred.throughput_rps, row.rate_rps),
            (
                "output_tokens_per_s",
                pred.output_tokens_per_s * row.replicas * row.count,
                row.output_tokens_per_s,
            ),
        ):
            assert _close(mine, theirs), f"{where}: {name} predict {mine!r} != plan {theirs!r}"


def _predict_row(row, w, scenario, input_tokens: int):
    """``predict`` of class ``w`` at fleet row ``row``'s configuration, with this prompt length."""
    return predict(
        w.model,
        batch_size=row.batch_size,
        input_tokens=input_tokens,
        output_tokens=w.output_tokens,
        instance=row.instance_type,
        tp=row.tp,
        ep=row.ep,
        offload=row.offload_fraction,
        dtype=w.dtype,
        kv_dtype=w.kv_dtype,
        engine=scenario.engine,
        offload_mode=scenario.offload_mode,
        profile=scenario.profile,
        batching=batching_mode(w, scenario.engine),
    )


def _check_pool_row(row, workloads, scenario) -> None:
    """A shared row: each class it serves, predicted in the mix of the served classes, is at most the row's figure.

    The row shows the worst class of the pool predicted at the pool's ceiling (``formulations/README.md``, (21));
    the served classes' ceiling is at most the pool's, so ``predict`` of each is no slower than the row.
    """
    served = [workloads[name] for name, _rate in row.split]
    ceil_in = max(w.input_tokens for w in served)
    ceil_out = max(w.output_tokens for w in served)
    for w in served:
        pred = _predict_row(row, w, scenario, mixed_tokens(ceil_in, ceil_out, w.output_tokens))
        where = f"pool {row.pool} ({w.name}) on {row.instance_type}"
        assert pred.fits and (pred.tp, pred.batch_size, pred.gpu) == (row.tp, row.batch_size, row.gpu), where
        assert pred.ttft_ms <= row.ttft_ms * (1 + REL), where
        assert pred.tpot_ms <= row.tpot_ms * (1 + REL), where


def test_predict_cli_default_batching_is_the_planners(capsys) -> None:
    """``infersave predict`` without --batching models an online replica the way the planner does."""
    from solver.apps.cli import main

    args = ["predict", "--model", "llama-2-7b", "--instance", "g5.xlarge", "--input-len", "512"]
    args += ["--output-len", "256", "--json"]
    outs = {}
    for extra in ([], ["--concurrency", "16"], ["--batching", "continuous", "--batch-size", "16"]):
        with pytest.raises(SystemExit) as exc:
            main([*args, *extra] if extra else [*args, "--batch-size", "16"])
        assert exc.value.code in (0, None)
        outs[len(extra)] = json.loads(capsys.readouterr().out)
    assert outs[0]["batching"] == "continuous"
    assert outs[0]["ttft_ms"] == outs[2]["ttft_ms"] == outs[4]["ttft_ms"]
    assert outs[2]["concurrency"] == 16
