import pytest

from solver.errors import InputError
from solver.scenario import parse_scenario
from solver.sweep import parse_over, set_path, sweep_points

BASE = """
catalog: aws
regions: [us-east-1]
instances: [g5.xlarge, g6.xlarge]
workloads:
  - name: chat
    model: llama-3.1-8b
    input_tokens: 512
    output_tokens: 128
    rate_rps: 2
    slo: {tpot_ms: 100}
"""


def test_parse_over_reads_yaml_scalars_and_flow_lists():
    assert parse_over("workloads.0.slo.tpot_ms=50,100,200") == ("workloads.0.slo.tpot_ms", [50, 100, 200])
    assert parse_over("markets=[on_demand],[on_demand,spot]") == ("markets", [["on_demand"], ["on_demand", "spot"]])
    assert parse_over("engine=vllm,tgi")[1] == ["vllm", "tgi"]
    for bad in ("nofield", "=1,2", "x=1,,2"):
        with pytest.raises(InputError):
            parse_over(bad)


def test_set_path_copies_and_reports_bad_paths():
    data = {"workloads": [{"slo": {}}]}
    out = set_path(data, "workloads.0.slo.tpot_ms", 50)
    assert out["workloads"][0]["slo"]["tpot_ms"] == 50
    assert data == {"workloads": [{"slo": {}}]}  # input untouched
    with pytest.raises(InputError, match=r"workloads\.3: no list item"):
        set_path(data, "workloads.3.rate_rps", 1)


def test_grid_points_are_validated_with_the_path_in_errors():
    sc = parse_scenario(BASE)
    points = sweep_points(sc, {"workloads.0.slo.tpot_ms": [50, 100], "markets": [["on_demand"], ["spot"]]})
    assert len(points) == 4
    assert points[0][1].workloads[0].slo.tpot_ms == 50
    assert points[3][1].markets == ["spot"]
    with pytest.raises(InputError, match=r"workloads\.0\.slo\.tpot_ms"):
        sweep_points(sc, {"workloads.0.slo.tpot_ms": [-5]})
    with pytest.raises(InputError, match="unknown field"):
        sweep_points(sc, {"workloads.0.slo.tpot": [5]})
