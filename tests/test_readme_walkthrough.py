"""The README's walkthrough runs as written: every ``$ infersave ...`` line's output is the README's.

Each ```text block after a ``<!-- walkthrough ... -->`` marker is a sequence of ``$ COMMAND`` lines, each followed
by its output. The blocks run in order in one scratch folder that links to ``instances/``, with stdout 100 columns
wide: ``$ infersave ARGS`` runs the CLI in-process (``> FILE`` writes its stdout to FILE and shows nothing) and
``$ cat FILE`` shows a file. Solve times and gaps differ from run to run and are compared as ``solved in X s``,
``explained in X s`` and ``gap X``.

Regenerate the README's blocks after a change that moves an output: ``python tests/test_readme_walkthrough.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"(<!-- walkthrough[^>]*-->\n```text\n)(.*?)(```)", re.S)
WIDTH = 100


def _volatile(text: str) -> str:
    text = re.sub(r"solved in [0-9.,]+ s", "solved in X s", text)
    text = re.sub(r"explained in [0-9.,]+ s", "explained in X s", text)
    return re.sub(r"gap [^;]+;", "gap X;", text)


def _steps(block: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(cmd, "\n".join(lines).rstrip()) for cmd, lines in steps]


def _run(command: str) -> str:
    from rich.console import Console

    from solver.apps import cli

    args = shlex.split(command)
    if args[0] == "cat":
        return Path(args[1]).read_text(encoding="utf-8").rstrip()
    assert args[0] == "infersave", command
    target = None
    if ">" in args:
        i = args.index(">")
        args, target = args[:i], args[i + 1]
    buf = io.StringIO()
    saved = cli.out
    cli.out = Console(file=buf, width=WIDTH, color_system=None, soft_wrap=False)
    try:
        with contextlib.redirect_stdout(buf):  # typer.echo (JSON) writes to sys.stdout
            try:
                cli.main(args[1:])
            except SystemExit as exc:
                assert exc.code in (0, None), f"{command}: exit {exc.code}"
    finally:
        cli.out = saved
    text = buf.getvalue()
    if target is not None:
        Path(target).write_text(text, encoding="utf-8")
        return ""
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip()


def walkthrough(readme: str) -> list[tuple[str, str, str]]:
    """Run every walkthrough step in a scratch folder; return (command, README output, actual output)."""
    out = []
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(ROOT / "instances", Path(tmp) / "instances")
        os.chdir(tmp)
        try:
            for match in MARKER.finditer(readme):
                for command, expected in _steps(match.group(2)):
                    out.append((command, expected, _run(command)))
        finally:
            os.chdir(here)
    return out


def test_readme_walkthrough_outputs_are_the_commands_outputs():
    readme = README.read_text(encoding="utf-8")
    steps = walkthrough(readme)
    commands = [c for c, _, _ in steps]
    assert any(c.startswith("infersave plan") for c in commands)
    assert any("export" in c and "--to skypilot" in c for c in commands)
    assert any("models --config" in c for c in commands) and any("onprem/scenario.yaml" in c for c in commands)
    for command, expected, actual in steps:
        assert _volatile(actual) == _volatile(expected), f"README output of `{command}` differs:\n{actual}"


def _regenerate() -> None:
    readme = README.read_text(encoding="utf-8")
    results = iter(walkthrough(readme))

    def fill(match: re.Match[str]) -> str:
        lines = []
        for command, _ in _steps(match.group(2)):
            _, _, actual = next(results)
            lines.append(f"$ {command}")
            if actual:
                lines.append(actual)
        return match.group(1) + "\n".join(lines) + "\n" + match.group(3)

    README.write_text(MARKER.sub(fill, readme), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _regenerate()
