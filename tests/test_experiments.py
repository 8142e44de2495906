"""The papers' comparisons: the experiment runner (a tiny smoke run) and every experiment's configs."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.language import plan_model
from pipeline.sweep.experiment import epoch_curves, known_experiments, load_experiment

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


def test_experiment_is_a_grid_study_over_runs_and_seeds(tmp_path, monkeypatch, capsys):
    """The README's command, cut to one run x two seeds of two short epochs, on the sweep's engine: every
    (run, seed) trained once, the curves averaged over seeds; run again, nothing trains twice."""
    import optuna

    monkeypatch.chdir(ROOT)
    command = "python -m pipeline experiment optimizers --seeds 3 --workers 2 --trainer.max_epochs 12"
    args = [*shlex.split(command)[3:], "--out", str(tmp_path / "runs"), "--runs", "adagrad", "--seeds", "2",
            "--workers", "1", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1"]
    rc = main(args)
    assert rc == 0, capsys.readouterr().err[-2000:]

    def trials():
        return optuna.load_study(study_name="optimizers", storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}"
                                 ).get_trials()
    points = sorted((t.params["variant"], t.params["seed_everything"], t.state.name) for t in trials())
    assert points == [("adagrad", 0, "COMPLETE"), ("adagrad", 1, "COMPLETE")], [t.user_attrs for t in trials()]
    assert (tmp_path / "runs" / "optimizers.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "runs" / "optimizers.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| adagrad |"))
    assert row.split(" | ")[2:4] == ["2", "2"], row  # seeds, epochs
    for t in trials():
        curves = epoch_curves(Path(t.user_attrs["folder"]))
        assert len(curves["train_err"]) == 2 and all(0 <= e <= 100 for e in curves["train_err"] + curves["val_err"])
    assert main(args) == 0 and len(trials()) == 2  # complete: nothing trains again


def test_a_claim_is_shown_only_when_every_seed_agrees():
    from pipeline.sweep.experiment import claim_lines, table

    def run(*final_errors):
        return {seed: ({"train_err": [90.0, e], "val_err": [90.0, e], "train_loss": [2.0, 1.0]}, 10.0, 2_500_000)
                for seed, e in enumerate(final_errors)}
    results = {"resnet": run(10, 12, 11), "plain": run(30, 11, 40), "deeper": run(50, 60, 70)}
    claims = [{"better": "resnet", "worse": "plain", "metric": "train_err"},
              {"better": "resnet", "worse": "deeper", "metric": "val_err"}]
    lines = claim_lines(claims, results)
    assert lines[0] == "- **not shown**: resnet ends with a lower training error than plain (2 of 3 seeds)"
    assert lines[1] == "- **shown**: resnet ends with a lower validation error than deeper (3 of 3 seeds)"
    text = table("t", "cmd", results, claims, "t.png")
    assert "| resnet | 2.50M | 3 | 2 | 11.00% (10.00-12.00) |" in text


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
