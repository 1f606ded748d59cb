"""Write a plan's deployment files: one per fleet row, for the chosen target, never replacing files silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from solver.apps.export import k8s, skypilot
from solver.apps.export.common import Deployment, deployment_rows
from solver.errors import InputError
from solver.planning.plan import Plan
from solver.specs import Scenario
from solver.validation import check_output_path, write_text_atomic

TARGETS: dict[str, Callable[[Deployment], str]] = {"skypilot": skypilot.render, "k8s": k8s.render}
"""Export target name -> function rendering one deployment's file text."""


def export_plan(
    plan: Plan, scenario: Scenario, target: str, out_dir: str | Path, *, force: bool = False, field: str = "plan"
) -> list[Path]:
    """Write one file per fleet row of ``plan`` for ``target`` (``skypilot`` or ``k8s``) into ``out_dir``.

    Every file is checked before any is written: an existing file is replaced only with ``force``.

    Raises
    ------
    InputError
        An unknown target, ``out_dir`` that is a file, an existing file without ``force``, or a plan the
        scenario does not match.
    """
    from solver.errors import UnknownNameError

    if target not in TARGETS:
        raise UnknownNameError("--to", "export target", target, list(TARGETS))
    rows = deployment_rows(plan, scenario, field=field)
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError("--out", f"{str(folder)!r} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--out", f"cannot create {str(folder)!r}: {exc.strerror or exc}") from None
    paths = [check_output_path(folder / f"{d.name}.yaml", "--out", force=force) for d in rows]
    texts = [TARGETS[target](d) for d in rows]
    return [write_text_atomic(p, t) for p, t in zip(paths, texts, strict=True)]
