"""The README's set-up commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(setup)
    assert len(blocks) == 2
    run_cmd, test_cmd = blocks
    assert "infersave plan" in run_cmd
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    # CI runs the README's test command after its own fresh venv
    test_part = test_cmd.split("&& ", 2)[-1]
    assert test_part in ci


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## In Python\n\n```python\n(.*?)```", readme, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["result"].status == "optimal"
    assert len(namespace["frame"]) == 3


def test_readme_diagnosis_matches_the_command(capsys):
    import pytest

    from solver.apps.cli import main

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- diagnosis:begin.*?```text\n(.*?)```", readme, flags=re.S).group(1)
    command, *expected = block.strip().splitlines()
    args = command.removeprefix("$ infersave ").split()
    with pytest.raises(SystemExit) as exc:
        main([args[0], str(ROOT / args[1])])
    assert exc.value.code == 3
    assert capsys.readouterr().err.strip().splitlines() == expected
