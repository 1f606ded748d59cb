"""Fuzz the scenario loader: any input either validates or raises one InputError line, never anything else."""

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.apps.sweep import set_path
from solver.data.scenario import parse_scenario
from solver.errors import InputError

BASE = {
    "catalog": "aws",
    "regions": ["us-east-1"],
    "markets": ["on_demand", "spot"],
    "instances": ["g5.xlarge", "g6.xlarge"],
    "engine": "vllm",
    "workloads": [
        {
            "name": "chat",
            "model": "llama-3.1-8b",
            "input_tokens": 512,
            "output_tokens": 256,
            "rate_rps": 20,
            "slo": {"ttft_ms": 2000, "tpot_ms": 100},
        },
        {
            "name": "digest",
            "model": "llama-3.1-8b",
            "input_tokens": 2048,
            "output_tokens": 128,
            "requests": 100000,
            "deadline_h": 6,
        },
    ],
    "limits": {"budget_usd_per_hour": 200, "max_price_usd_per_hour": 3, "max_instances": {"p5.48xlarge": 2}},
    "search": {"batch_sizes": [1, 2, 4, 8]},
}

LEAVES = [
    "catalog", "regions", "markets", "markets.0", "instances", "engine", "workloads", "workloads.0",
    "workloads.0.name", "workloads.0.input_tokens", "workloads.0.output_tokens", "workloads.0.rate_rps",
    "workloads.0.slo", "workloads.0.slo.ttft_ms", "workloads.1.requests", "workloads.1.deadline_h",
    "workloads.1.dtype", "limits", "limits.budget_usd_per_hour", "limits.max_instances",
    "limits.max_instances.p5.48xlarge", "search.batch_sizes", "search.batch_sizes.0", "search.utilisation_cap",
    "search.offload_grid", "objective", "billing", "offload_mode", "horizon_h", "unknown_key", "workloads.0.typo",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["fp8", "int4", "spot", "per_hour", "max_throughput", "cpu_attention", "1e309", "-0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


def _check(text: str) -> None:
    try:
        parse_scenario(text)
    except InputError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg


@given(path=st.sampled_from(LEAVES), value=values)
def test_mutated_scenarios_validate_or_raise_one_line(path, value):
    try:
        data = set_path(BASE, path, value)
    except InputError:
        return
    text = yaml.safe_dump(data, allow_unicode=True)
    _check(text)


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    _check(text)


@pytest.mark.slow
@settings(max_examples=3000)
@given(path=st.sampled_from(LEAVES), value=values)
def test_mutated_scenarios_long(path, value):
    test_mutated_scenarios_validate_or_raise_one_line.hypothesis.inner_test(path, value)


def test_nan_is_rejected_not_propagated():
    data = set_path(BASE, "workloads.0.rate_rps", math.nan)
    with pytest.raises(InputError, match=r"workloads\.0\.rate_rps"):
        parse_scenario(yaml.safe_dump(data))


NUMERIC_LEAVES = [
    "workloads.0.input_tokens", "workloads.0.output_tokens", "workloads.0.rate_rps", "workloads.0.slo.ttft_ms",
    "workloads.1.requests", "workloads.1.deadline_h", "limits.budget_usd_per_hour", "limits.max_total_instances",
    "limits.max_instances.g5", "search.batch_sizes.0", "search.utilisation_cap", "horizon_h",
]  # fmt: skip


@given(path=st.sampled_from(NUMERIC_LEAVES), flag=st.booleans())
def test_booleans_are_never_numbers(path, flag):
    data = set_path(BASE, path, flag)
    with pytest.raises(InputError, match="boolean") as exc:
        parse_scenario(yaml.safe_dump(data))
    assert exc.value.field == path


@given(
    path=st.sampled_from([p for p in NUMERIC_LEAVES if not p.rsplit(".", 1)[-1].isdigit()]),
    first=st.integers(1, 100),
    second=st.integers(1, 100),
)
def test_a_duplicate_key_is_an_error_not_last_one_wins(path, first, second):
    """Write the leaf's key twice in its mapping (flow style), with two values: always refused."""
    key = path.rsplit(".", 1)[-1]
    marker = "__DUP__"
    data = set_path(BASE, path, marker)
    text = yaml.safe_dump(data, default_flow_style=True, width=10**6)
    text = text.replace(f"{key}: {marker}", f"{key}: {first}, {key}: {second}", 1)
    with pytest.raises(InputError, match=f"duplicate key '{key}'"):
        parse_scenario(text)


@given(depth=st.integers(101, 60_000), opener=st.sampled_from(["[", "{a: ", "- "]))
@settings(max_examples=10, deadline=None)
def test_deep_nesting_is_one_line_not_recursion(depth, opener):
    text = opener * depth if opener != "- " else "".join(" " * (2 * i) + "-\n" for i in range(min(depth, 400)))
    try:
        parse_scenario(text)
    except InputError as exc:
        assert "\n" not in str(exc)
        if opener != "- ":
            assert "nested deeper than" in str(exc)
