"""Exit codes 0/2/3/4, one-line errors, diagnoses and solver limits through the CLI; a short CLI fuzz."""

import json

import numpy as np
import pytest
import yaml
from cli_helpers import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver import backends
from solver.apps.cli import main
from solver.backends.base import Backend, SolveResult

SMALL = {
    "catalog": "aws",
    "regions": ["us-east-1"],
    "instances": ["g6e.xlarge", "p5.48xlarge"],
    "search": {"batch_sizes": [1, 8, 32]},
    "workloads": [
        {
            "name": "chat",
            "model": "llama-3.1-8b",
            "input_tokens": 8192,
            "output_tokens": 128,
            "rate_rps": 2,
            "slo": {"ttft_ms": 30},
        }
    ],
}


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def test_infeasible_exits_3_with_blocker_and_fix(tmp_path, capsys):
    code, _out, err = run(["plan", write(tmp_path, SMALL)], capsys)
    assert code == 3
    assert "Traceback" not in err
    assert "TTFT ≤ 30 ms is unreachable for 8,192-token prompts" in err
    assert "To fix: set workloads.0.slo.ttft_ms:" in err


def test_infeasible_json_carries_the_diagnosis(tmp_path, capsys):
    code, out, _ = run(["plan", write(tmp_path, SMALL), "--json"], capsys)
    assert code == 3
    data = json.loads(out)
    assert data["status"] == "infeasible"
    assert data["diagnosis"]["relaxations"][0]["field"] == "workloads.0.slo.ttft_ms"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["plan", "/no/such/file.yaml"], "no scenario file"),
        (["plan", "{bad}"], None),
        (["plan", "--backend", "gurobi"], "unknown backend 'gurobi'"),
        (["plan", "--time-limit", "-1"], "--time-limit:"),  # the library names the field, the CLI its flag
        (["plan", "--gap", "2"], "--gap:"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    if args[1] == "{bad}":
        args = ["plan", write(tmp_path, "workloads: [\n  - {name: a\n")]
        needle = "not valid YAML"
    code, _out, err = run(args, capsys)
    assert code == 2, err
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


class _Stub(Backend):
    """A backend that answers a fixed status, to exercise the time-limit paths."""

    name = "stub"

    def __init__(self, status, with_x):
        self.status, self.with_x = status, with_x

    def _check_available(self):
        return True

    def solve(self, model, options):
        real = backends.BACKENDS["ortools"].solve(model, options)
        x = real.x if self.with_x else None
        return SolveResult(self.status, x, real.objective, real.objective * 0.9, 0.1, "stub", 60.0)


def test_time_limit_without_plan_exits_4(monkeypatch, capsys):
    monkeypatch.setitem(backends.BACKENDS, "stub", _Stub("no_solution", with_x=False))
    code, _, err = run(["plan", "--backend", "stub"], capsys)
    assert code == 4
    assert "without a plan" in err and "--time-limit" in err


def test_time_limit_with_plan_returns_it_with_its_gap(monkeypatch, capsys):
    monkeypatch.setitem(backends.BACKENDS, "stub", _Stub("feasible", with_x=True))
    code, out, _ = run(["plan", "--backend", "stub", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "feasible"
    assert data["gap"] == pytest.approx(0.1)
    assert data["fleet"]


def test_same_input_same_plan_on_both_backends(capsys):
    plans = []
    for backend in backends.available_backends():
        code, out, _ = run(["plan", "--backend", backend, "--json"], capsys)
        assert code == 0
        data = json.loads(out)
        plans.append(([(r["workload"], r["instance_type"], r["count"], r["batch_size"]) for r in data["fleet"]],
                      data["cost_usd_per_hour"]))  # fmt: skip
    fleets = {tuple(p[0]) for p in plans}
    assert len(fleets) == 1, plans
    costs = [p[1] for p in plans]
    assert np.allclose(costs, costs[0], rtol=1e-6)


LEAVES = ["workloads.0.rate_rps", "workloads.0.input_tokens", "workloads.0.slo.ttft_ms", "workloads.0.model",
          "instances.0", "regions.0", "engine", "search.batch_sizes", "limits", "markets"]  # fmt: skip
cli_values = st.one_of(
    st.none(),
    st.integers(-5, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["g5.xlarge", "spot", "tgi", "opt-2.7b", "us-west-2", [1, 2], {"budget_usd_per_hour": 1}]),
)


@settings(max_examples=12, deadline=None)
@given(path=st.sampled_from(LEAVES), value=cli_values)
def test_cli_fuzz_exit_codes(tmp_path_factory, path, value):
    from solver.apps.sweep import set_path

    base = {**SMALL, "workloads": [{**SMALL["workloads"][0], "slo": {"ttft_ms": 2000}}]}
    data = set_path(base, path, value)
    target = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    target.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(target), "--json", "--time-limit", "20"])
    assert exc.value.code in (0, 2, 3, 4)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(LEAVES), value=cli_values)
def test_cli_fuzz_exit_codes_long(tmp_path_factory, path, value):
    test_cli_fuzz_exit_codes.hypothesis.inner_test(tmp_path_factory, path, value)


PREDICT = ["predict", "--model", "llama-3.1-8b", "--input-len", "512", "--output-len", "128"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--instance", "g5.12xlarge", "--tp", "3", "--batch-size", "8"], "--tp: 3 does not shard llama-3.1-8b"),
        (["--gpu", "A10G", "--batch-size", "99999999999999999999"], "--batch-size: must be between 1 and 65,536"),
        (["--gpu", "A10G", "--batch-size", "8", "--offload", "1.5"], "--offload"),
        (["--gpu", "A10G", "--batch-size", "8", "--dtype", "fp32"], "serving in fp32 is not modelled"),
        (["--gpu", "A10", "--batch-size", "8"], "did you mean 'A10G'"),
    ],
)
def test_predict_rejects_impossible_configurations(capsys, extra, needle):
    code, _out, err = run([*PREDICT, *extra], capsys)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_predict_profile_that_is_not_text(tmp_path, capsys):
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00bad")
    code, _out, err = run([*PREDICT, "--gpu", "A10G", "--batch-size", "8", "--profile", str(bad)], capsys)
    assert code == 2 and "not UTF-8" in err


def test_predict_memory_parts_add_up(capsys):
    args = ["predict", "--model", "opt-2.7b", "--instance", "g4dn.xlarge", "--batch-size", "48"]
    code, out, _ = run([*args, "--input-len", "1024", "--output-len", "128", "--engine", "flexgen", "--json"], capsys)
    assert code == 0
    m = json.loads(out)["memory"]
    assert m["offloaded_kv_gib"] > 0
    parts = m["weights_gib"] + m["kv_gib"] + m["activations_gib"] + m["staging_gib"]
    assert parts == pytest.approx(m["total_gpu_gib"])


# ---- hostile text, numbers, files and grids (issue 11) -------------------------------------------------
markup_text = st.text(alphabet=st.sampled_from(list("[]/bold x=#")), min_size=1, max_size=16).filter(
    lambda s: s.strip() == s and "[" in s
)


@settings(max_examples=15, deadline=None)
@given(leaf=st.sampled_from(["workloads.0.name", "regions.0", "instances.0", "workloads.0.model"]), text=markup_text)
def test_cli_fuzz_markup_in_names_is_literal(tmp_path_factory, leaf, text):
    from solver.apps.sweep import set_path

    base = {**SMALL, "workloads": [{**SMALL["workloads"][0], "slo": {"ttft_ms": 2000}}]}
    target = tmp_path_factory.mktemp("markup") / "s.yaml"
    target.write_text(yaml.safe_dump(set_path(base, leaf, text)))
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(target), "--time-limit", "20", "--no-tie-break"])
    assert exc.value.code in (0, 2, 3)


@pytest.mark.parametrize("leaf", ["workloads.0.rate_rps", "workloads.0.output_tokens", "search.utilisation_cap"])
@pytest.mark.parametrize("flag", [True, False])
def test_cli_booleans_are_not_numbers(tmp_path, capsys, leaf, flag):
    from solver.apps.sweep import set_path

    code, _out, err = run(["plan", write(tmp_path, set_path(SMALL, leaf, flag))], capsys)
    assert code == 2 and f"{leaf}: expected a number, got the boolean {flag}" in err


def test_cli_duplicate_keys_and_deep_yaml(tmp_path, capsys):
    dup = yaml.safe_dump(SMALL) + "catalog: aws\n"
    code, _out, err = run(["plan", write(tmp_path, dup)], capsys)
    assert code == 2 and "duplicate key 'catalog'" in err
    code, _out, err = run(["plan", write(tmp_path, "{w: " * 50_000, "deep.yaml")], capsys)
    assert code == 2 and "nested deeper than" in err and len(err.strip().splitlines()) == 1


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.integers(2, 60), min_size=3, max_size=5).filter(lambda c: np.prod(c) > 10_000))
def test_cli_fuzz_huge_grids_are_refused_at_once(tmp_path_factory, capsys, counts):
    folder = tmp_path_factory.mktemp("grid")
    paths = ["workloads.0.rate_rps", "workloads.0.input_tokens", "workloads.0.output_tokens",
             "search.utilisation_cap", "limits.max_total_instances"]  # fmt: skip
    over = []
    for p, n in zip(paths, counts, strict=False):
        over += ["--over", f"{p}={','.join(str(v + 1) for v in range(n))}"]
    code, _out, err = run(["sweep", write(folder, SMALL), *over, "--out", str(folder / "r.csv")], capsys)
    assert code == 2 and f"{int(np.prod(counts)):,} points" in err
    assert not (folder / "r.csv").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["calibrate", "{m}", "--out", "{existing}"],
        ["sweep", "{s}", "--over", "workloads.0.rate_rps=1", "--out", "{existing}"],
        ["sweep", "{s}", "--over", "workloads.0.rate_rps=1", "--out", "{new}", "--plot", "{existing}"],
        ["reproduce-paper", "--out", "{existing}"],
    ],
)
def test_cli_never_overwrites_without_force(tmp_path, capsys, command):
    import pandas as pd

    m = tmp_path / "m.csv"
    pd.DataFrame([dict(gpu="A10G", model="llama-3.1-8b", batch=b, input=256, output=64, tpot_ms=30.0 + b)
                  for b in (1, 4)]).to_csv(m, index=False)  # fmt: skip
    existing = tmp_path / "precious.txt"
    existing.write_text("keep\n")
    names = {"m": m, "s": write(tmp_path, SMALL), "existing": existing, "new": tmp_path / "new.csv"}
    code, _out, err = run([a.format(**names) for a in command], capsys)
    assert code == 2 and "exists; pass --force" in err
    assert existing.read_text() == "keep\n"
