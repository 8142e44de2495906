"""The papers' comparisons: the experiment runner (a tiny smoke run) and every experiment's configs."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.language import plan_model
from pipeline.training.experiment import epoch_curves, known_experiments, load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "python -m pipeline experiment degradation"
TINY = "input: [3, 8, 8]\nvars: {classes: 10}\nnodes:\n  stem: {block: conv, out: 4}\n  pool: global_pool\n" \
       "  fc: {block: linear, out: classes}\n"


def test_every_experiment_is_a_comparison_of_nets_that_build():
    names = known_experiments(ROOT / "experiments")
    assert {"degradation", "bn_placement", "preactivation", "optimizers", "aux_heads"} <= set(names)
    for name in names:
        path, spec = load_experiment(str(ROOT / "experiments" / f"{name}.yaml"))
        assert len(spec["runs"]) >= 2 and spec.get("title")
        for run, options in spec["runs"].items():
            arch = ROOT / options.get("model.arch", "architectures/resnet20_cifar.yaml")
            plan = plan_model(arch, (1, 8, 8), **options.get("model.vars", {}))  # the digits' shape
            assert plan.out_shape == (10,), (name, run)
            assert set(options.get("model.aux_weights", {})) <= set(plan.aux), (name, run)


def test_bn_placement_variants_differ_only_where_the_norm_sits():
    arch = ROOT / "experiments/nets/resnet_bn_placement.yaml"
    before = plan_model(arch, (1, 8, 8), depth=20)
    after = plan_model(arch, (1, 8, 8), depth=20, branch_norm="none", after_add="post_bn")
    # one BN per unit either way; before the addition the two projection shortcuts have their own
    assert before.params - after.params == 2 * (32 + 64)


def test_experiment_smoke_run_writes_plot_and_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    (tmp_path / "tiny.yaml").write_text(TINY)
    spec = {"title": "tiny", "runs": {"sgd": {"model.arch": str(tmp_path / "tiny.yaml")},
                                      "adagrad": {"model.arch": str(tmp_path / "tiny.yaml"),
                                                  "model.optimizer.name": "adagrad", "model.vars": {"classes": 10}}}}
    (tmp_path / "tiny_exp.yaml").write_text(yaml.safe_dump(spec))
    rc = main(["experiment", str(tmp_path / "tiny_exp.yaml"), "--out", str(tmp_path / "runs"),
               "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "runs" / "tiny_exp.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "runs" / "tiny_exp.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| sgd |", "| adagrad |"))]
    assert len(rows) == 2 and all("| 2 |" in r for r in rows), table  # two epochs each
    curves = epoch_curves(tmp_path / "runs" / "adagrad")
    assert len(curves["train_err"]) == 2 and all(0 <= e <= 100 for e in curves["train_err"] + curves["val_err"])


def test_readme_experiment_command_is_known(monkeypatch):
    """The README's command (minutes of training) is run in full only for docs/experiments; here its
    experiment must exist and its table be committed with the command that made it."""
    monkeypatch.chdir(ROOT)
    name = shlex.split(EXPERIMENT)[4]
    load_experiment(name)
    assert f"python -m pipeline experiment {name}" in (ROOT / "docs/experiments" / f"{name}.md").read_text()


@pytest.mark.parametrize("args, words", [
    (["nosuch"], ["experiment 'nosuch'", "known experiments:", "degradation"]),
    (["degradation", "--runs", "plain-21"], ["no run 'plain-21'", "plain-20, plain-56"]),
])
def test_experiment_mistakes_exit_2_with_one_line(args, words, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = main(["experiment", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err


def test_confusion_png_is_a_matplotlib_heat_map_of_the_rows(tmp_path):
    import torch
    from PIL import Image

    from pipeline.evaluation.reports import write_confusion_png

    names = ["cat", "dog", "bird"]
    write_confusion_png(torch.eye(3, dtype=torch.long) * 5, names, tmp_path / "diag.png")
    write_confusion_png(torch.ones(3, 3, dtype=torch.long), names, tmp_path / "flat.png")
    with Image.open(tmp_path / "diag.png") as diag, Image.open(tmp_path / "flat.png") as flat:
        assert diag.format == "PNG" and diag.size == flat.size and min(diag.size) > 300
        assert "matplotlib" in diag.info.get("Software", "")
        # the diagonal matrix has darker (saturated) cells and paler ones; the flat one is all one shade
        dark = lambda im: sum(1 for r, g, b, *_ in im.convert("RGB").getdata() if b > 80 and r < 40)  # noqa: E731
        assert dark(diag) > 1000 and dark(flat) < dark(diag) / 10
