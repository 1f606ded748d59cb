"""`infersave export`: SkyServe YAML loaded by SkyPilot's own loader, k8s manifests, never overwriting files.

SkyPilot is not a dependency of infersave. The SkyPilot test runs SkyPilot's ``sky.Task.from_yaml`` in a
subprocess: with this interpreter when ``import sky`` works (``pip install -e ".[export-test]"``), or with the
interpreter named by ``INFERSAVE_SKYPILOT_PYTHON`` (a separate venv: ``python -m venv .venv-sky &&
.venv-sky/bin/pip install skypilot``, which is how CI installs it, so SkyPilot's pins never touch the test
venv). It runs offline: SkyPilot reads its AWS catalog from ``$HOME/.sky/catalogs/v8/aws/vms.csv``, and the
shipped catalog is that file, so ``HOME`` points at a folder holding it. It skips, saying why, only when neither
interpreter can import ``sky``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import run

from solver.apps.export import deployment_rows, export_plan
from solver.data.resources import data_path
from solver.data.scenario import load_scenario
from solver.planning.planner import plan
from solver.specs import SolveOptions

SCENARIOS = ["default.yaml", "mixed_spot.yaml", "llama70b_tp.yaml"]

LOADER = r"""
import json, sys
import sky
out = []
for path in sys.argv[1:]:
    task = sky.Task.from_yaml(path)
    (res,) = list(task.resources)
    out.append({
        "name": task.name,
        "accelerators": res.accelerators,
        "instance_type": res.instance_type,
        "use_spot": res.use_spot,
        "region": res.region,
        "cloud": str(res.cloud),
        "replicas": task.service.min_replicas,
        "run": task.run,
    })
print(json.dumps(out))
"""


def _skypilot_python() -> str | None:
    """An interpreter that can import SkyPilot, or None."""
    candidates = [sys.executable, os.environ.get("INFERSAVE_SKYPILOT_PYTHON", "")]
    for exe in candidates:
        if exe and (Path(exe).is_file() or shutil.which(exe)):
            probe = subprocess.run([exe, "-c", "import sky"], capture_output=True, timeout=120)
            if probe.returncode == 0:
                return exe
    return None


@pytest.fixture(scope="module")
def plans():
    out = {}
    for name in SCENARIOS:
        sc = load_scenario(data_path("scenarios", name))
        out[name] = (sc, plan(sc, SolveOptions(backend="ortools")))
    return out


def test_skypilot_files_load_with_skypilots_own_loader(plans, tmp_path):
    exe = _skypilot_python()
    if exe is None:
        pytest.skip(
            "SkyPilot cannot be imported here: pip install -e '.[export-test]', or point INFERSAVE_SKYPILOT_PYTHON "
            "at a venv with `pip install skypilot`"
        )
    exported = []  # (fleet row, deployment, path) of every scenario, loaded in one SkyPilot process
    for name in SCENARIOS:
        scenario, result = plans[name]
        paths = export_plan(result, scenario, "skypilot", tmp_path / name)
        exported += zip(result.fleet, deployment_rows(result, scenario), paths, strict=True)
    assert any(row.replicas > 1 for row, _, _ in exported)  # --data-parallel-size is exercised
    home = tmp_path / "home"
    catalog_dir = home / ".sky" / "catalogs" / "v8" / "aws"
    catalog_dir.mkdir(parents=True)
    shutil.copy(data_path("catalogs", "aws.csv"), catalog_dir / "vms.csv")
    env = {**os.environ, "HOME": str(home)}
    files = [str(p) for _, _, p in exported]
    proc = subprocess.run(
        [exe, "-c", LOADER, *files], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(loaded) == len(exported)
    for got, (row, dep, _) in zip(loaded, exported, strict=True):
        assert got["instance_type"] == row.instance_type and got["region"] == row.region
        assert got["use_spot"] == (row.market == "spot") and got["cloud"] == "AWS"
        assert got["accelerators"] == {row.gpu: dep.gpus_per_instance}
        assert got["replicas"] == row.count
        for flag, value in (
            ("--tensor-parallel-size", row.tp),
            ("--max-num-seqs", row.batch_size),
            ("--max-model-len", dep.max_model_len),
            ("--gpu-memory-utilization", 0.9),
        ):
            assert f"{flag} {value}" in got["run"]
        assert "--dtype" in got["run"]
        if row.replicas > 1:
            assert f"--data-parallel-size {row.replicas}" in got["run"]


def test_k8s_manifests_carry_the_plan(plans, tmp_path):
    scenario, result = plans["mixed_spot.yaml"]
    paths = export_plan(result, scenario, "k8s", tmp_path)
    assert len(paths) == len(result.fleet)
    for path, row, dep in zip(paths, result.fleet, deployment_rows(result, scenario), strict=True):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert [d["kind"] for d in docs] == ["Deployment", "Service"]
        spec = docs[0]["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert spec["replicas"] == row.count
        assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == row.instance_type
        assert pod["nodeSelector"]["eks.amazonaws.com/capacityType"] == (
            "SPOT" if row.market == "spot" else "ON_DEMAND"
        )
        assert container["resources"]["limits"]["nvidia.com/gpu"] == dep.gpus_per_instance
        args = container["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == str(row.tp)
        assert args[args.index("--max-num-seqs") + 1] == str(row.batch_size)
        assert docs[1]["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_export_refuses_existing_files_without_force(plans, tmp_path, capsys):
    _, result = plans["default.yaml"]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(result.to_dict()))
    out = tmp_path / "deploy"
    code, stdout, _ = run(["export", str(plan_file), "--to", "skypilot", "--out", str(out)], capsys)
    assert code == 0 and stdout.count("wrote ") == len(result.fleet)
    first = sorted(out.iterdir())[0]
    first.write_text("mine\n")
    code, _, err = run(["export", str(plan_file), "--to", "skypilot", "--out", str(out)], capsys)
    assert code == 2 and "--force" in err and first.read_text() == "mine\n"
    code, _, _ = run(["export", str(plan_file), "--to", "skypilot", "--out", str(out), "--force"], capsys)
    assert code == 0 and first.read_text() != "mine\n"
    code, _, err = run(["export", str(plan_file), "--to", "helm", "--out", str(out)], capsys)
    assert code == 2 and "skypilot" in err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"fleet": [{**result.to_dict()["fleet"][0], "workload": "nope"}]}))
    code, _, err = run(["export", str(other), "--to", "k8s", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "nope" in err
