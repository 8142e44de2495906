"""The README is the manual: every command it shows is run here or by the test named for it."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    commands = []
    for line in README.splitlines():
        line = line.strip().lstrip("$ ")
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("python -m pipeline"):
                commands.append(part)
    return commands


def test_readme_shows_commands():
    commands = readme_commands()
    assert any(c.startswith("python -m pipeline fit --config lightning_config.yaml") for c in commands)
    assert any(c.startswith("python -m pipeline summary") for c in commands)


def test_readme_install_and_test_commands_match_ci():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]" && python -m pytest' in README
    assert 'pip install -e ".[dev]" && python -m pytest' in ci


SUMMARIES = [c for c in readme_commands() if c.split()[3] == "summary"]


@pytest.mark.parametrize("command", SUMMARIES)
def test_readme_summary_commands_run(command, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[3:]
    args = [str(tmp_path / Path(a).name) if a.endswith((".svg", ".png", ".dot")) else a for a in args]
    assert main(args) == 0
    assert "parameters" in capsys.readouterr().out or "--json" in args


def test_every_other_readme_command_is_run_by_a_test():
    """Training, import and export commands are slow; the tests that run them quote them verbatim."""
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_readme.py")
    missing = [c for c in readme_commands() if c.split()[3] != "summary" and f'"{c}"' not in sources]
    assert not missing, "README commands no test runs:\n" + "\n".join(missing)


def test_readme_summary_sample_is_what_summary_prints(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    start = README.index("    python -m pipeline summary architectures/lenet5.yaml\n")
    block, started = [], False
    for line in README[start:].splitlines()[1:]:
        if line.startswith("    "):
            started = True
            block.append(line[4:])
        elif started and line.strip():
            break
    assert main(["summary", "architectures/lenet5.yaml"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = [line for line in block if line.strip() and line != "..."]
    assert len(shown) >= 8
    for line in shown:  # a line cut short with "...)" matches the start of the printed one
        assert any(p == line or (line.endswith("...)") and p.startswith(line[:-4])) for p in printed), line
