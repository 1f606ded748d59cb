import json

import pydantic
import pytest

from solver.data.scenario import load_scenario, parse_scenario, scenario_json_schema
from solver.errors import InputError

ISSUE_EXAMPLE = """
catalog: aws
regions: [us-east-1]
markets: [on_demand, spot]
instances: [g5.xlarge, g6.xlarge]
engine: vllm
workloads:
  - name: chat
    model: llama-3.1-8b
    input_tokens: 512
    output_tokens: 256
    rate_rps: 20
    slo: {ttft_ms: 2000, tpot_ms: 100}
  - name: digest
    model: llama-3.1-8b
    input_tokens: 2048
    output_tokens: 128
    requests: 100000
    deadline_h: 6
limits: {budget_usd_per_hour: 200, max_price_usd_per_hour: 3, max_instances: {p5.48xlarge: 2}}
search: {batch_sizes: [1, 2, 4, 8, 16, 32, 64, 128]}
"""


def test_issue_example_validates():
    sc = parse_scenario(ISSUE_EXAMPLE)
    assert [w.kind for w in sc.workloads] == ["online", "offline"]
    assert sc.limits.max_instances == {"p5.48xlarge": 2}
    assert sc.effective_horizon_h == 6
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        sc.engine = "tgi"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("patch", "field", "problem"),
    [
        ("rate_rps: 0", "workloads.0.rate_rps", "greater than 0"),
        ("rate_rps: -1", "workloads.0.rate_rps", "greater than 0"),
        ("rate_rps: .nan", "workloads.0.rate_rps", "finite"),
        ("rate_rps: .inf", "workloads.0.rate_rps", "finite"),
        ("rate_rps: twenty", "workloads.0.rate_rps", "valid number"),
        ("rate_rps: 20\n    colour: blue", "workloads.0.colour", "unknown field"),
        ("rat_rps: 20", "workloads.0.rat_rps", "did you mean 'rate_rps'"),
    ],
)
def test_bad_fields_name_the_field(patch, field, problem):
    text = ISSUE_EXAMPLE.replace("rate_rps: 20", patch)
    with pytest.raises(InputError) as exc:
        parse_scenario(text)
    msg = str(exc.value)
    assert msg.startswith(field + ":"), msg
    assert problem in msg, msg
    assert "\n" not in msg


def test_online_and_offline_exclusive():
    text = ISSUE_EXAMPLE.replace("rate_rps: 20", "rate_rps: 20\n    requests: 5")
    with pytest.raises(InputError, match="not both"):
        parse_scenario(text)
    text = ISSUE_EXAMPLE.replace("    deadline_h: 6\n", "")
    with pytest.raises(InputError, match="deadline_h is missing"):
        parse_scenario(text)


def test_duplicate_workload_names():
    with pytest.raises(InputError, match="duplicate workload name"):
        parse_scenario(ISSUE_EXAMPLE.replace("name: digest", "name: chat"))


def test_malformed_yaml_and_non_mapping():
    with pytest.raises(InputError, match="not valid YAML at line"):
        parse_scenario("workloads: [\n  - {name: a\n")
    with pytest.raises(InputError, match="must be a mapping"):
        parse_scenario("- just\n- a list\n")
    with pytest.raises(InputError, match="required field is missing"):
        parse_scenario("catalog: aws\n")


def test_yaml_is_loaded_safely():
    with pytest.raises(InputError):
        parse_scenario("catalog: !!python/object/apply:os.system ['echo pwned']\nworkloads: []\n")


def test_relative_paths_resolve_against_scenario_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cat.csv").write_text("x")
    (tmp_path / "sub" / "s.yaml").write_text(ISSUE_EXAMPLE.replace("catalog: aws", "catalog: cat.csv"))
    sc = load_scenario(tmp_path / "sub" / "s.yaml")
    assert sc.catalog == str(tmp_path / "sub" / "cat.csv")


def test_missing_scenario_file(tmp_path):
    with pytest.raises(InputError, match="no scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_schema_is_json_with_workload_fields():
    schema = json.loads(scenario_json_schema())
    assert "workloads" in schema["properties"]
    assert "rate_rps" in json.dumps(schema)


def test_check_references_names_the_field():
    from solver.data.scenario import check_references
    from solver.errors import UnknownNameError

    check_references(parse_scenario(ISSUE_EXAMPLE))
    with pytest.raises(UnknownNameError, match="did you mean 'vllm'"):
        check_references(parse_scenario(ISSUE_EXAMPLE.replace("engine: vllm", "engine: vlm")))
    with pytest.raises(UnknownNameError, match=r"workloads\.1\.model: unknown model"):
        check_references(parse_scenario(ISSUE_EXAMPLE.replace("model: llama-3.1-8b\n    input_tokens: 2048",
                                                              "model: llama-9\n    input_tokens: 2048")))  # fmt: skip
    with pytest.raises(InputError, match=r"workloads\.0\.input_tokens: .* exceeds the context window of llama-3.1-8b"):
        check_references(parse_scenario(ISSUE_EXAMPLE.replace("input_tokens: 512", "input_tokens: 200000")))


def test_empty_filter_says_where_the_instance_is_offered():
    from solver.data.catalog import load_catalog

    with pytest.raises(InputError, match=r"regions: no instance is left .*p6-b300\.48xlarge is offered in us-west-2"):
        load_catalog("aws").filter(regions=["us-east-1"], instances=["p6-b300.48xlarge"])


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ("max_instances: {g7e.2xlarg: 0}", r"limits\.max_instances\.g7e\.2xlarg: unknown instance type .*did you mean"),
        ("max_instances_per_region: {us-east1: 0}", r"limits\.max_instances_per_region\.us-east1: unknown region"),
        ("max_instances_per_family: {G7E: 0}", r"limits\.max_instances_per_family\.G7E: unknown instance family"),
        ("min_instances: {g5.xlargee: 1}", r"limits\.min_instances\.g5\.xlargee: unknown instance type"),
        ("min_instances: {p5.48xlarge: 1}", r"limits\.min_instances\.p5\.48xlarge: this instance type is not among"),
    ],
)
def test_quota_keys_are_checked(limits, match):
    from solver.data.scenario import check_references

    text = ISSUE_EXAMPLE.replace(
        "limits: {budget_usd_per_hour: 200, max_price_usd_per_hour: 3, max_instances: {p5.48xlarge: 2}}",
        "limits: {" + limits + "}",
    )
    with pytest.raises(InputError, match=match):
        check_references(parse_scenario(text))
