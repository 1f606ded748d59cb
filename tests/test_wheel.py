"""A built wheel works outside the checkout: it holds every package and data file, installs, and plans.

The wheel is built from a copy of the source tree (so no stale ``build/`` of the checkout leaks in) with the
current environment's setuptools (``--no-build-isolation``: no network), installed with ``--no-deps`` into a
fresh virtual environment in a temporary folder outside the repository, and run from another temporary folder.
The new environment sees the current one's dependencies through a ``.pth`` file that lists the current
site-packages folders; those come after its own site-packages on ``sys.path``, so the wheel's ``solver`` is the
one imported (asserted), never the checkout or an editable install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import time
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOTS = ("solver", "formulations", "instances")
SUBPACKAGES = ("solver/data", "solver/performance", "solver/planning", "solver/backends", "solver/apps")
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache", ".hypothesis"
)
TIMEOUT_S = 300


class Installed(NamedTuple):
    """The built wheel, the source copy it was built from, and the fresh environment it is installed in."""

    wheel: Path
    source: Path
    venv: Path
    python: Path
    cwd: Path
    env: dict[str, str]

    def bin(self, name: str) -> Path:
        """Return the path of the environment's script ``name``."""
        return _script(self.venv, name)


def _script(env_dir: Path, name: str) -> Path:
    """Return the path of script ``name`` of the virtual environment ``env_dir``."""
    return env_dir / (f"Scripts/{name}.exe" if os.name == "nt" else f"bin/{name}")


def _missing_build_requirements() -> list[str]:
    """Return the ``[build-system] requires`` entries this environment does not satisfy."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    missing = []
    for text in requires:
        req = Requirement(text)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not req.specifier.contains(version, prereleases=True):
            missing.append(f"{text} (have {version})")
    return missing


def _shipped_files(source: Path) -> set[str]:
    """Return every file under the package roots of ``source`` (wheel-style paths), caches excluded."""
    files = set()
    for top in PACKAGE_ROOTS:
        for path in (source / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(source).as_posix())
    return files


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``args``; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from a copy of the tree, install it into a fresh venv; return the paths."""
    missing = _missing_build_requirements()
    assert not missing, f"cannot build a wheel here, missing build requirements {missing}: pip install -e '.[dev]'"
    work = tmp_path_factory.mktemp("wheel")
    assert not work.resolve().is_relative_to(ROOT), "the temporary folder must be outside the repository"
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        work,
        env,
    )
    (wheel,) = dist.glob("infersave-*.whl")
    built_s = time.perf_counter() - start

    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt").create(env_dir)
    python = _script(env_dir, "python")
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-compile", "-q", str(wheel)], work, clean)
    # Only now make the dependencies visible (before, the new pip would have seen the checkout's install).
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    target = Path(_run([str(python), "-c", purelib], work, clean).stdout.strip())
    ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:  # dependencies installed with pip --user live there
        ours.append(site.getusersitepackages())
    (target / "zz_outer_site_packages.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(ours)), encoding="utf-8")
    print(f"wheel built in {built_s:.1f} s, installed in {time.perf_counter() - start - built_s:.1f} s")
    run_dir = work / "elsewhere"
    run_dir.mkdir()
    return Installed(wheel, source, env_dir, python, run_dir, clean)


def test_wheel_holds_every_package_and_data_file(built: Installed):
    with zipfile.ZipFile(built.wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    expected = _shipped_files(built.source)
    for sub in SUBPACKAGES:
        assert f"{sub}/__init__.py" in expected, f"{sub} is not a package in the source tree"
    assert "formulations/README.md" in expected
    data = {n for n in expected if n.startswith("instances/") and n.rsplit(".", 1)[-1] in ("csv", "yaml", "md", "json")}
    assert any(n.count("/") >= 2 for n in data), "no nested data file under instances/ to check"
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {len(missing)} file(s) of the packages: {missing[:10]}"
    assert "infersave = solver.apps.cli:main" in scripts


def test_installed_wheel_is_what_runs(built: Installed):
    code = "import formulations, instances, solver, solver.apps.cli; print(solver.__file__); print(instances.__file__)"
    out = _run([str(built.python), "-c", code], built.cwd, built.env).stdout.split()
    venv_dir = built.venv.resolve()
    for path in out:
        assert Path(path).resolve().is_relative_to(venv_dir), f"imported {path}, not the wheel in {venv_dir}"


def test_installed_cli_helps_and_plans_the_default_scenario(built: Installed):
    exe = built.bin("infersave")
    assert exe.is_file(), f"the wheel installed no infersave script in {exe.parent}"
    helped = _run([str(exe), "--help"], built.cwd, built.env)
    assert re.search(r"\bplan\b", helped.stdout), helped.stdout[-2000:]
    planned = _run([str(exe), "plan"], built.cwd, built.env)
    assert re.search(r"\(optimal\b", planned.stdout), planned.stdout[-2000:]
    answer = json.loads(_run([str(exe), "plan", "--json"], built.cwd, built.env).stdout)
    assert answer["status"] == "optimal" and answer["cost_usd_per_hour"] > 0 and answer["fleet"], answer


def test_dev_extra_carries_the_build_requirements():
    # CI's fresh venv gets only the dev extra; without the build requirements there this test could not build.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dev = {Requirement(r).name for r in project["project"]["optional-dependencies"]["dev"]}
    build = {Requirement(r).name for r in project["build-system"]["requires"]}
    assert build <= dev, f"add {sorted(build - dev)} to the dev extra"
