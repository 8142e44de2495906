"""`python -m pipeline summary`: table, JSON, graph, overrides and error exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline import plan_model

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "architectures" / "lenet5.yaml")


def test_table_lists_every_node_with_shape_params_and_totals(capsys):
    assert main(["summary", LENET]) == 0
    out = capsys.readouterr().out
    plan = plan_model(LENET)
    for node in plan.nodes:
        line = next(l for l in out.splitlines() if l.startswith(node.name + " "))
        assert "x".join(map(str, node.out_shape)) in line and f"{node.params:,}" in line
    assert "parameters: 61,706" in out


def test_json_has_params_macs_and_nodes(capsys):
    assert main(["summary", LENET, "--json", "--var", "classes=3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == plan_model(LENET, classes=3).params
    assert data["macs"] > 0 and [n["name"] for n in data["nodes"]][0] == "c1"
    assert data["output"] == [3] and data["vars"] == {"classes": 3}


def test_input_override(capsys):
    assert main(["summary", LENET, "--json", "--input", "1,36,36"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"][0]["output"] == [6, 32, 32]


def test_graph_as_dot_marks_aux_heads_and_merges(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["summary", str(ROOT / "architectures" / "googlenet.yaml"), "--graph", str(out)]) == 0
    dot = out.read_text()
    assert dot.startswith("digraph") and '"aux1"' in dot and "aux loss x0.3" in dot
    assert '"4a" -> "aux1"' in dot and '"4a" -> "4b"' in dot


def test_graph_svg_falls_back_to_dot_text_without_graphviz(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert main(["summary", LENET, "--graph", str(tmp_path / "g.svg")]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert "Graphviz" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["summary", LENET, "--var", "nope=1"], "cannot override variable 'nope'"),
    (["summary", LENET, "--input", "a,b"], "--input expects"),
    (["summary", "missing.yaml"], "architecture file not found"),
    (["summary"], "the following arguments are required"),
])
def test_user_mistakes_exit_2_with_one_line(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


def test_exit_status_and_a_located_line_without_traceback(tmp_path):
    """(tests/test_malformed.py runs the same contract in a real process)"""
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [3, 8, 8]\nnodes:\n  a: {block: covn, out: 4}\n")
    proc = run_cli("summary", str(bad))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith(f"{bad}:3:14: node 'a': unknown block 'covn' (did you mean 'conv'")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_input_override_with_a_size_left_out_is_an_error_not_another_net(tmp_path):
    for command in ("summary", "export"):
        extra = ["--format", "onnx", "-o", str(tmp_path / "n.onnx")] if command == "export" else []
        result = run_cli(command, str(ROOT / "architectures" / "resnet20_cifar.yaml"), "--input", "3,64", *extra)
        err = result.stderr.strip()
        assert result.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "--input 3,64 has 2 sizes" in err and "resnet20_cifar.yaml's input [3, 32, 32]" in err
        assert "give all 3 (C,H,W)" in err
    # the file's input written through a variable; the library (a datamodule's shape) may change the rank
    spec = tmp_path / "v.yaml"
    spec.write_text("name: v\nvars: {shape: [3, 8, 8]}\ninput: shape\nnodes:\n  a: {block: conv, out: 4}\n")
    assert run_cli("summary", str(spec), "--input", "3,16,16").returncode == 0
    assert "--input 3,16 has 2 sizes" in run_cli("summary", str(spec), "--input", "3,16").stderr
    assert plan_model(LENET, (1, 256)).out_shape == (10,)


@pytest.mark.parametrize("command", [["blocks"], ["summary", "--help"]])
def test_output_into_a_closed_pipe_stops_quietly(command):
    # `python -m pipeline blocks | head -3`: the reader is gone before the output is written; buffered
    # output (no PYTHONUNBUFFERED) so that --help's exit path meets the closed pipe at the final flush
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err


def test_a_closed_stdout_is_not_an_error():
    # started with stdout closed (`>&-`, as some schedulers do): the table goes nowhere, exit 0
    import subprocess
    import sys

    proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -m pipeline summary '{LENET}' >&-"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("arch", sorted(p.name for p in (ROOT / "architectures").glob("*.yaml")))
def test_every_zoo_file_summarises_with_every_pass_at_batch_1(arch, capsys):
    """Planning, receptive field and the memory estimate (training mode, batch 1: Inception-v3's aux head
    has batch norm at 1x1) for every file in architectures/: a new file is covered by being there."""
    assert main(["summary", str(ROOT / "architectures" / arch), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] > 0 and data["macs"] > 0 and data["batch"] == 1
    assert data["train_memory_bytes"] > 0 and set(data["train_memory"]) >= {"weights", "saved_activations"}
