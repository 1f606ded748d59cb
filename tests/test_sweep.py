import pytest

from solver.apps.sweep import parse_over, set_path, sweep_points
from solver.data.scenario import parse_scenario
from solver.errors import InputError

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


def test_sweep_cli_writes_csv_and_png(tmp_path, capsys):
    import pandas as pd

    from solver.apps.cli import main
    from solver.data.scenario import default_scenario_path

    csv, png = tmp_path / "r.csv", tmp_path / "r.png"
    args = ["sweep", str(default_scenario_path()), "--over", "workloads.0.slo.ttft_ms=100,2000",
            "--out", str(csv), "--plot", str(png), "--processes", "2", "--no-tie-break"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0, capsys.readouterr().err
    frame = pd.read_csv(csv)
    assert list(frame["workloads.0.slo.ttft_ms"]) == [100, 2000]
    assert set(frame["status"]) <= {"optimal", "feasible", "infeasible"}
    solved = frame[frame["status"] == "optimal"]
    assert not solved.empty
    # a tighter TTFT never costs less than a looser one (when both are solved)
    if len(solved) == 2:
        assert solved["cost_usd_per_hour"].iloc[0] >= solved["cost_usd_per_hour"].iloc[1] - 1e-9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
