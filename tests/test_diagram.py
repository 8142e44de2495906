"""`summary --graph`: hierarchical diagrams (pipeline/diagram.py) and their DOT text."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import plan_model
from pipeline.cli import main
from pipeline.diagram import to_dot

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "architectures"
DOT = shutil.which("dot")

_ID = r'"(?:[^"\\]|\\.)*"'
_VALUE = rf'(?:{_ID}|\w+)'
_ATTRS = rf'(?: \[\w+={_VALUE}(?:, \w+={_VALUE})*\])?'
STATEMENTS = [
    re.compile(rf"^{_ID}{_ATTRS};$"),  # node
    re.compile(rf"^{_ID} -> {_ID}{_ATTRS};$"),  # edge
    re.compile(r"^(?:node|edge) \[.*\];$"),  # defaults
    re.compile(r"^subgraph cluster_\d+ \{$"),
    re.compile(r"^\}$"),
    re.compile(rf"^(?:\w+=(?:{_ID}|\w+); ?)+$"),  # graph attributes
]


def check_dot(text: str) -> None:
    """DOT as this module writes it: every line one known statement, braces balanced.
    Where Graphviz is installed, `dot` itself parses and lays it out too."""
    lines = text.strip().splitlines()
    assert re.match(rf"^digraph {_ID} \{{$", lines[0]) and lines[-1] == "}"
    depth = 0
    for line in lines[1:-1]:
        line = line.strip()
        assert any(p.match(line) for p in STATEMENTS), f"not a DOT statement: {line}"
        depth += line.endswith("{") - (line == "}")
        assert depth >= 0
    assert depth == 0
    if DOT:
        proc = subprocess.run([DOT, "-Tsvg"], input=text.encode(), capture_output=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(b"<?xml"), proc.stderr.decode()


def test_checker_rejects_broken_dot():
    good = to_dot(plan_model(ZOO / "lenet5.yaml"))
    check_dot(good)
    for broken in (good.replace(" -> ", " - ", 1), good[:-3] + "\n", good.replace('"c1"', '"c1', 1)):
        with pytest.raises(AssertionError):
            check_dot(broken)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(ZOO.glob("*.yaml")), ids=lambda p: p.name)
def test_every_zoo_file_renders(path):
    check_dot(to_dot(plan_model(path)))


def test_repeats_collapse_aux_heads_are_marked_and_shapes_label_edges():
    dot = to_dot(plan_model(ZOO / "digits_aux.yaml"))
    check_dot(dot)
    assert re.search(r'"aux" \[label="aux\\nhead.*aux loss x0.3", fillcolor="#fdebd0", style="rounded,filled,dashed"',
                     dot)
    assert re.search(r'"pool1" -> "aux" \[label=" 32x8x8", style=dashed\]', dot)
    assert '"conv1" -> "conv2" [label=" 32x16x16"]' in dot
    assert '"fc" -> "output" [label=" 10"]' in dot
    rep = to_dot(plan_model({"input": [3, 16, 16], "nodes": {"s": {"block": "conv", "out": 4, "repeat": 3}}}))
    assert "conv x3" in rep and rep.count("subgraph") == 0


def test_merges_are_round_nodes_with_every_input():
    spec = {"input": [3, 8, 8], "nodes": {"a": {"block": "conv", "out": 4}, "b": {"block": "conv", "out": 4},
                                          "sum": {"block": "add", "from": ["a", "b"]}}}
    dot = to_dot(plan_model(spec))
    check_dot(dot)
    assert re.search(r'"sum" \[label="add\\nsum", shape="ellipse"', dot)
    assert '"a" -> "sum"' in dot and '"b" -> "sum"' in dot


def test_expand_opens_a_composite_and_shows_its_first_copy():
    plan = plan_model(ZOO / "tutorial_squeezenet_cifar.yaml")
    closed, opened = to_dot(plan), to_dot(plan, expand=["fire4"])
    check_dot(opened)
    assert "subgraph" not in closed and '"fire4" [label="fire4\\nfire x2' in closed
    assert 'label="fire4: fire  x2 (first copy shown)"' in opened
    assert '"pool3" -> "fire4.0.squeeze" [label=" 128x16x16"]' in opened  # into the cluster
    assert '"fire4.0.cat" -> "pool5"' in opened  # and out of it
    assert opened.count("subgraph") == 1


def test_expand_by_block_type_draws_a_built_in_blocks_wiring():
    spec = {"input": [8, 16, 16], "nodes": {"inc": {"block": "inception", "b1": 4, "b2": [2, 4], "b3": [2, 4],
                                                    "b4": 4},
                                            "res": {"block": "basic", "out": 16, "stride": 2}}}
    dot = to_dot(plan_model(spec), expand=["inception", "basic"])
    check_dot(dot)
    for branch in ("branch1", "branch2", "branch3", "branch4"):
        assert f'"input" -> "inc.{branch}"' in dot and f'"inc.{branch}" -> "inc.cat"' in dot
    # the residual join: both paths visibly meet
    assert '"inc.cat" -> "res.shortcut"' in dot and '"inc.cat" -> "res.conv1"' in dot
    # (se and dropout unset: identities, not drawn, so the branch goes straight from conv2 to the join)
    assert '"res.conv2" -> "res.add"' in dot and '"res.shortcut" -> "res.add"' in dot and dot.count('-> "res.add"') == 2
    assert to_dot(plan_model(spec), depth=2) == dot


def test_identity_placeholders_are_not_drawn():
    # an unset option of a block (se 0, dropout 0, Wide's dropout moved into conv2) passes its input
    # through: no box, the edge goes straight on; set ones are drawn
    spec = {"input": [8, 8, 8], "nodes": {"res": {"block": "basic", "out": 8},
                                          "set": {"block": "basic", "out": 8, "se": 4, "dropout": 0.2},
                                          "w": {"block": "wide", "out": 8, "dropout": 0.3},
                                          "d": {"block": "dropout", "p": 0.0},
                                          "fc": {"block": "conv", "out": 4}}}
    dot = to_dot(plan_model(spec), depth=2)
    check_dot(dot)
    assert "Identity" not in dot and dot.count("Dropout") == 1  # set.drop's
    assert '"res.conv1" -> "res.conv2"' in dot and '"res.conv2" -> "res.add"' in dot
    assert '"set.drop" [label="drop\\nDropout"' in dot and '"set.se" [label="se\\nSqueezeExcitation"' in dot
    assert '"w.conv1" -> "w.conv2"' in dot and '"w.conv2" -> "w.add"' in dot
    # a node of nothing but placeholders stays the user's node, drawn closed
    assert '"d" [label="d\\ndropout"' in dot and '"w.add" -> "d" [label=" 8x8x8"]' in dot
    assert '"d" -> "fc.conv" [label=" 8x8x8"]' in dot


def test_cli_writes_svg_or_falls_back_to_dot(tmp_path, monkeypatch, capsys):
    lenet = str(ZOO / "lenet5.yaml")
    if DOT:
        assert main(["summary", lenet, "--graph", str(tmp_path / "g.svg"), "--depth", "2"]) == 0
        assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["summary", lenet, "--graph", str(tmp_path / "h.png")]) == 0
    assert "Graphviz 'dot' is not installed" in capsys.readouterr().err
    check_dot((tmp_path / "h.dot").read_text())


@pytest.mark.parametrize("args, words", [(["--expand", "nope"], "--expand nope: no node or block type"),
                                          (["--depth", "0"], "--depth must be at least 1")])
def test_bad_graph_options_exit_2(args, words, tmp_path, capsys):
    assert main(["summary", str(ZOO / "lenet5.yaml"), "--graph", str(tmp_path / "g.dot"), *args]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1 and not captured.out
