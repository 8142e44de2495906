"""Training through the CLI and the LightningModule: the default run, resume, evaluation, losses, errors."""
from __future__ import annotations

import csv
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from datamodules import SyntheticDataModule
from pipeline.language import AuxOutput, TrainOutput
from pipeline.training import ClassifierModule, SchedulerConfig, TrainingDiverged, classification_loss
from pipeline.training.optim import lr_factor

from conftest import Result, readme_args, run_cli

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    """A real ``python -m pipeline`` process: only for what this process cannot show (its whole stderr)."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=ROOT)


def readme(command: str, root: Path, *extra: str) -> Result:
    """Run a command exactly as the README shows it (in this process), with its run folder moved to ``root``."""
    return run_cli(*readme_args(command, root), "--trainer.default_root_dir", str(root),
                   "--trainer.enable_progress_bar", "false", *extra)


def metrics(root: Path) -> list[dict]:
    files = sorted(root.glob("version_*/metrics.csv"))
    assert files, f"no metrics.csv under {root}"
    rows = []
    for f in files:
        rows += list(csv.DictReader(f.open()))
    return rows


def column(rows: list[dict], name: str) -> list[float]:
    return [float(r[name]) for r in rows if r.get(name)]


@pytest.fixture
def default_run(digits_run):
    """The README's main job, run in full once per session (tests/conftest.py)."""
    return digits_run


@pytest.mark.slow
def test_default_run_reaches_97_percent_and_writes_logs_and_checkpoints(default_run):
    rows = metrics(default_run)
    assert max(column(rows, "val/acc")) >= 0.97
    losses = column(rows, "train/loss")
    assert losses[-1] < losses[0] / 2, "the training loss did not fall"
    for name in ("train/loss_main", "train/loss_aux", "val/loss", "val/acc5"):
        assert column(rows, name), f"{name} missing from metrics.csv"
    run = default_run / "version_0"  # one run folder: its logs, config and checkpoints together
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-epoch*.ckpt"))
    assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents*"))
    assert [p.name for p in default_run.iterdir()] == ["version_0"]


@pytest.mark.slow
def test_resume_with_ckpt_path_last_continues_from_the_saved_step(default_run, tmp_path):
    default_run = Path(shutil.copytree(default_run, tmp_path / "digits"))  # the shared run stays as it was
    last = default_run / "version_0" / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    rows_before = metrics(default_run)
    epochs = before["epoch"] + 1  # saved at the end of epoch index `epoch`
    steps_per_epoch = before["global_step"] // epochs
    proc = readme("python -m pipeline fit --config lightning_config.yaml --ckpt_path last", default_run,
                  "--trainer.max_epochs", str(epochs + 1))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Restored all states from the checkpoint" in proc.stdout + proc.stderr
    after = torch.load(last, weights_only=True)
    # exactly one more epoch: it continued from the saved step rather than starting over
    assert after["epoch"] == before["epoch"] + 1
    assert after["global_step"] == before["global_step"] + steps_per_epoch
    # in the same run folder, whose metrics.csv kept the epochs before the resume
    assert sorted(p.name for p in default_run.iterdir()) == ["version_0"]
    rows = metrics(default_run)
    assert [{k: r.get(k, "") for k in rows_before[0]} for r in rows[:len(rows_before)]] == rows_before
    assert max(column(rows, "epoch")) == before["epoch"] + 1


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    "python -m pipeline validate --config lightning_config.yaml --ckpt_path last",
    "python -m pipeline test --config lightning_config.yaml --ckpt_path runs/digits/version_0/checkpoints/last.ckpt",
])
def test_validate_and_test_on_a_checkpoint(default_run, command, tmp_path):
    proc = readme(command, default_run, "--eval.report_dir", str(tmp_path))  # reports aside: the run is shared
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in default_run.iterdir()) == ["version_0"]  # evaluation made no run folder
    split = "val" if " validate " in command else "test"
    line = next(l for l in proc.stdout.splitlines() if f"{split}/acc " in l or l.strip().startswith(f"{split}/acc "))
    assert float(line.split()[-1]) >= 0.97


def test_a_second_run_keeps_the_first_runs_checkpoints_and_last_means_the_newest(tmp_path):
    quick = ("--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar",
             "false", "--trainer.default_root_dir", str(tmp_path))
    assert run_cli("fit", "--config", "lightning_config.yaml", *quick).returncode == 0
    first = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    saved = first.read_bytes()
    second = run_cli("fit", "--config", "lightning_config.yaml", "--seed_everything", "1", *quick)
    assert second.returncode == 0, second.stderr[-2000:]
    assert first.read_bytes() == saved  # not overwritten
    # Lightning's model summary runs the module's example input: real FLOPs and sizes, not "0 Total Flops"
    flops = next(line for line in (second.stdout + second.stderr).splitlines() if line.endswith("Total Flops"))
    assert not flops.startswith("0 ") and "[1, 1, 16, 16]" in second.stdout + second.stderr, flops
    # how a run ends: one line with its folder and the checkpoint to test
    assert second.stdout.strip().splitlines()[-1].startswith("fit done: ")
    assert f"run folder {tmp_path / 'version_1'}; test it: --ckpt_path {tmp_path / 'version_1' / 'checkpoints'}" \
        in second.stdout
    again = run_cli("fit", "--config", "lightning_config.yaml", "--seed_everything", "1", "--ckpt_path", "last", *quick)
    assert again.returncode == 0 and "this run is finished" in again.stderr
    newest = tmp_path / "version_1" / "checkpoints" / "last.ckpt"
    assert newest.is_file() and (tmp_path / "version_1" / "config.yaml").is_file()
    reports = tmp_path / "reports"
    proc = run_cli("test", "--config", "lightning_config.yaml", "--ckpt_path", "last", *quick)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    assert json.loads((reports / "test.json").read_text())["checkpoints"] == [str(newest)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports", "version_0", "version_1"]  # no folder for test


def test_evaluating_last_without_a_run_is_one_line(tmp_path):
    proc = run_cli("test", "--config", "lightning_config.yaml", "--ckpt_path", "last",
                   "--trainer.default_root_dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        f"error: --ckpt_path last: no run under {tmp_path} has a checkpoints/last.ckpt yet; train one with fit, " \
        "or give a checkpoint file"
    assert not list(tmp_path.iterdir())


def test_fast_dev_run(tmp_path):
    proc = run_cli("fit", "--config", "lightning_config.yaml", "--trainer.fast_dev_run", "true",
                   "--trainer.default_root_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_overrides_reach_the_model(tmp_path):
    proc = readme("python -m pipeline fit --config lightning_config.yaml --trainer.max_epochs 3 --model.optimizer.lr 0.05",
                  tmp_path, "--print_config")
    assert proc.returncode == 0, proc.stderr
    assert "max_epochs: 3" in proc.stdout and "lr: 0.05" in proc.stdout


@pytest.mark.slow
def test_readme_transfer_learning_command(default_run, tmp_path):
    command = "python -m pipeline fit --config lightning_config.yaml --model.init_from runs/digits/version_0/checkpoints/last.ckpt --model.freeze_until pool1 --model.pretrained_lr_scale 0.1"  # noqa: E501
    proc = run_cli(*readme_args(command, default_run), "--trainer.max_epochs", "1",
                   "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert max(column(metrics(tmp_path), "val/acc")) >= 0.95  # starts from the trained weights


def test_print_config_round_trips(tmp_path):
    first = run_cli(*shlex.split("python -m pipeline fit --config lightning_config.yaml --print_config")[3:],
                    "--model.optimizer.lr", "0.02")
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "resolved.yaml"
    saved.write_text(first.stdout)
    second = run_cli("fit", "--config", str(saved), "--print_config")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout and "lr: 0.02" in first.stdout


@pytest.mark.parametrize("args, words", [
    (["--trainer.max_epochz", "3"], "unrecognized arguments: --trainer.max_epochz"),
    (["--trainer.max_epochs", "three"], "trainer.max_epochs"),
    (["--model.arch", "architectures/nope.yaml"], "architecture file not found: architectures/nope.yaml"),
])
def test_user_mistakes_exit_2_with_one_line(args, words):
    proc = run_cli("fit", "--config", "lightning_config.yaml", *args)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_architecture_mistake_reports_its_location(tmp_path):
    """In a real process: the located message is the whole of stderr (no warning, log line or traceback)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [1, 16, 16]\nvars: {classes: 10}\nnodes:\n  a: {block: conv, out: 8}\n"
                   "  b: {block: add, from: [a, input]}\n")
    proc = cli("fit", "--config", "lightning_config.yaml", "--model.arch", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{bad}:5:6: node 'b': block 'add' needs equal channels, got 8 and 1"


def test_aux_loss_is_main_plus_weighted_aux_by_hand():
    torch.manual_seed(0)
    logits, aux1, aux2 = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    target = torch.tensor([0, 3, 1, 4])
    out = TrainOutput(logits, {"aux1": AuxOutput(0.3, aux1), "aux2": AuxOutput(0.5, aux2)})
    total, parts = classification_loss(out, target)

    def ce(z):  # cross-entropy written out
        return (-(z.log_softmax(1))[torch.arange(4), target]).mean()

    assert torch.allclose(total, ce(logits) + 0.3 * ce(aux1) + 0.5 * ce(aux2))
    assert set(parts) == {"main", "aux1", "aux2"} and torch.allclose(parts["aux2"], ce(aux2))


def test_soft_targets_from_mixup_work_with_aux_heads():
    out = TrainOutput(torch.randn(2, 3), {"aux": AuxOutput(0.3, torch.randn(2, 3))})
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    total, _ = classification_loss(out, soft)
    expected = F.cross_entropy(out.logits, soft) + 0.3 * F.cross_entropy(out.aux["aux"].logits, soft)
    assert torch.allclose(total, expected)


@pytest.mark.parametrize("name, t, expected", [
    ("cosine", 0, 0.1), ("cosine", 10, 1.0), ("cosine", 60, 0.5), ("cosine", 110, 0.0),
    ("step", 45, 0.1), ("multistep", 95, 0.001), ("onecycle", 33, 1.0),
])
def test_schedules_with_warmup(name, t, expected):
    cfg = SchedulerConfig(name=name, warmup=10 if name == "cosine" else 0, step_size=30)
    assert lr_factor(cfg, t, 110) == pytest.approx(expected, abs=1e-3)


def tiny_arch(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text("input: [3, 8, 8]\nvars: {classes: 4}\nnodes:\n  stem: {block: conv, out: 8}\n"
                    "  body: {block: conv, out: 8}\n  pool: global_pool\n  fc: {block: linear, out: classes}\n")
    return str(path)


class PoisonAtStep5(L.Callback):
    """Makes the classifier's weights NaN before step 5: that step's loss is the first that is not finite."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 5:
            with torch.no_grad():
                module.net.fc.fc.weight.fill_(float("nan"))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=64, batch_size=8)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_last=True)
    trainer = L.Trainer(max_epochs=3, callbacks=[PoisonAtStep5(), ckpt], logger=False, enable_progress_bar=False)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 5"):
        trainer.fit(model, data)
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_transfer_learning_new_classes_freeze_and_lower_lr(tmp_path):
    arch = tiny_arch(tmp_path)
    source = ClassifierModule(arch, num_classes=4)
    weights = tmp_path / "w.pt"
    torch.save(source.net.state_dict(), weights)
    model = ClassifierModule(arch, num_classes=7, init_from=str(weights), freeze_until="stem",
                             pretrained_lr_scale=0.1)
    assert torch.equal(model.net.body.conv.weight, source.net.body.conv.weight)  # pretrained part loaded
    assert model.net.fc.fc.out_features == 7  # new classifier, left at its initialisation
    assert not any(p.requires_grad for p in model.net.stem.parameters())
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, limit_train_batches=1,
                        limit_val_batches=0, enable_checkpointing=False, default_root_dir=tmp_path)
    data = SyntheticDataModule(num_classes=7, input_shape=(3, 8, 8), train_size=16, batch_size=8)
    trainer.fit(model, data)
    lrs = sorted({g["initial_lr"] for g in trainer.optimizers[0].param_groups})  # before the schedule
    assert len(lrs) == 2 and lrs[0] == pytest.approx(lrs[1] * 0.1)
    assert torch.equal(model.net.stem.conv.weight, source.net.stem.conv.weight)  # frozen: unchanged


def test_ema_weights_are_used_for_evaluation(tmp_path):
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4, ema_decay=0.5)
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=32, batch_size=8)
    L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False).fit(model, data)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(model(x), model.ema.module(x))
    assert not torch.allclose(model(x), model.net(x))


def test_help_texts_come_from_the_docstrings():
    proc = run_cli("fit", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m pipeline [options] fit ")  # the command a user types
    text = " ".join(proc.stdout.split())
    assert "architecture file (e.g. ``architectures/resnet18.yaml``)" in text
    assert "--model.optimizer.lr" in text and "base learning rate" in text
    assert "--model.scheduler.name" in text


@pytest.mark.slow
def test_predict_on_a_checkpoint(default_run, tmp_path):
    proc = run_cli("predict", "--config", "lightning_config.yaml", "--ckpt_path",
                   str(default_run / "version_0" / "checkpoints" / "last.ckpt"), "--trainer.default_root_dir", str(tmp_path),
                   "--trainer.enable_progress_bar", "false")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    proc = run_cli("fit", "--config", "lightning_config.yaml", "--trainer.fast_dev_run", "true", "--trainer.precision",
                   "bf16-mixed", "--trainer.gradient_clip_val", "1.0", "--trainer.default_root_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_python_api_with_the_same_input_shape_on_model_and_data(tmp_path):
    """Lightning merges the module's and the datamodule's hparams for the loggers and refuses values that
    differ; a tuple on both sides (the natural way to write a shape in Python) must not count as different."""
    shape = (3, 8, 8)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4, input_shape=shape)
    data = SyntheticDataModule(num_classes=4, input_shape=shape, train_size=16, batch_size=8)
    trainer = L.Trainer(max_epochs=1, logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_progress_bar=False,
                        enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, data)
    assert trainer.global_step == 2
    assert "input_shape" in (tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text()


def test_vars_and_compile_keep_their_config_names_in_the_hyper_parameters(tmp_path):
    """model.vars and model.compile are what users write (configs, sweeps, checkpoints' hyper-parameters), though
    the code calls them arch_vars and compile_net inside (the public names shadow builtins)."""
    model = ClassifierModule(tiny_arch(tmp_path), vars={"classes": 3})
    assert model.hparams["vars"] == {"classes": 3} and model.hparams["compile"] is False and model.num_classes == 3
    assert ClassifierModule(tiny_arch(tmp_path), num_classes=4).hparams["vars"] == {}  # plain values, not None

def test_channels_last_keeps_the_numbers_and_the_layout(tmp_path):
    torch.manual_seed(0)
    plain = ClassifierModule(str(ROOT / "architectures" / "resnet20_cifar.yaml"), num_classes=10)
    nhwc = ClassifierModule(str(ROOT / "architectures" / "resnet20_cifar.yaml"), num_classes=10, channels_last=True)
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), nhwc.eval()
    assert torch.allclose(plain(x), nhwc(x), atol=1e-4)
    data = SyntheticDataModule(num_classes=10, input_shape=(3, 32, 32), train_size=16, val_size=8, batch_size=8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(nhwc, data)
    assert trainer.global_step == 2 and nhwc.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_compile_option_trains_and_keeps_checkpoint_keys(tmp_path):
    """--model.compile: the net runs compiled (fullgraph) in both modes; state-dict keys are those of the eager net."""
    eager = ClassifierModule(tiny_arch(tmp_path), num_classes=4)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4, compile=True)
    assert list(model.state_dict()) == list(eager.state_dict())
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=16, val_size=8, batch_size=8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(model, data)
    assert trainer.global_step == 2
    eager.load_state_dict(model.state_dict())
    model.eval(), eager.eval()
    x = torch.randn(3, 3, 8, 8)
    assert torch.allclose(model(x), eager(x), atol=1e-5)
    assert model.net._compiled_call_impl is not None  # the compiled path, not a silent fallback


def test_a_loss_that_grows_by_orders_of_magnitude_is_warned_about(tmp_path):
    """Adam at a learning rate of 1e6 trains to finite garbage: said once, the run goes on."""
    arch = tmp_path / "net.yaml"
    arch.write_text("input: [3, 8, 8]\nvars: {classes: 4}\nnodes:\n  c: {block: conv, out: 8}\n  p: global_pool\n"
                    "  fc: {block: linear, out: classes}\n")
    model = ClassifierModule(str(arch), num_classes=4, optimizer={"name": "adam", "lr": 1e6},
                             scheduler={"name": "none"})
    trainer = L.Trainer(max_steps=14, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"the training loss grew from .* \(first step\) .* learning rate \(1e\+06\) is probably too high"):
        trainer.fit(model, SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=64, batch_size=4))
    assert trainer.global_step == 14  # it went on


def test_on_an_accelerator_the_loss_is_read_in_batches_and_the_failing_step_still_named(tmp_path, monkeypatch):
    """A host sync per step would stall a GPU running a small net: there the loss checks read the losses
    at Lightning's logging interval (here 4), yet the error names the step whose loss was NaN."""
    import pipeline.training.module as module_file

    monkeypatch.setattr(module_file, "reads_every_step", lambda device: False)  # as on a GPU
    reads = []
    real_check = ClassifierModule._check_losses

    def counting_check(self):
        if self._pending_losses:
            reads.append(len(self._pending_losses))
        return real_check(self)

    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=64, batch_size=8)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4)
    trainer = L.Trainer(max_epochs=3, callbacks=[PoisonAtStep5()], logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, log_every_n_steps=4, num_sanity_val_steps=0)
    monkeypatch.setattr(ClassifierModule, "_check_losses", counting_check)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 5 "):
        trainer.fit(model, data)
    assert reads == [4, 4]  # steps 0-3, then 4-7 (step 5 failed): two reads, not eight
    assert trainer.global_step == 7  # stopped in step 7, the fourth of the second read


def test_step_losses_are_logged_at_the_logging_interval_and_training_accuracy_once_per_epoch(tmp_path, monkeypatch):
    """A self.log costs about half a millisecond; the loggers take a step's values every log_every_n_steps.
    Without a progress bar the losses are logged only then; train/acc is counted on the device and logged
    at each epoch's end, equal to the epoch's accuracy over every training sample."""
    calls = []
    real_log = ClassifierModule.log

    def counting_log(self, name, *args, **kwargs):
        calls.append(name)
        return real_log(self, name, *args, **kwargs)

    monkeypatch.setattr(ClassifierModule, "log", counting_log)
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=96, val_size=16, batch_size=8)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4, input_shape=(3, 8, 8))
    hits: dict[int, list[float]] = {}

    class Record(L.Callback):  # the main head's predictions on every training batch, by epoch
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.target = batch[1]

    record = Record()

    def on_forward(net, inputs, output):
        if net.training:
            logits = output.logits if hasattr(output, "logits") else output
            hits.setdefault(trainer.current_epoch, []).extend((logits.argmax(1) == record.target).float().tolist())

    model.net.register_forward_hook(on_forward)
    trainer = L.Trainer(max_epochs=2, callbacks=[record], logger=L.pytorch.loggers.CSVLogger(tmp_path, name="", version=0),
                        log_every_n_steps=4, enable_progress_bar=False, enable_checkpointing=False,
                        num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(model, data)
    rows = list(csv.DictReader((tmp_path / "version_0" / "metrics.csv").open()))
    loss_steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert loss_steps == [3, 7, 11, 15, 19, 23]  # 24 steps, every 4th, as Lightning writes them
    assert calls.count("train/loss") == len(loss_steps)  # logged when taken, not at every step
    accuracy = [float(r["train/acc"]) for r in rows if r.get("train/acc")]
    assert accuracy == pytest.approx([sum(hits[e]) / len(hits[e]) for e in (0, 1)], abs=1e-6)
    assert calls.count("train/acc") == 2 and len(hits[0]) == 96


def test_every_ddp_rank_logs_the_step_losses_at_the_same_steps(tmp_path):
    """The losses are logged with sync_dist, a collective: Lightning disables the progress bar on ranks
    other than zero, and deciding by the enabled bar had rank zero log (and wait) alone every step."""
    from pipeline.training.module import logs_this_step

    answers = []

    class Ask(L.Callback):  # at step 1, not a logging step: as rank zero, then as the other ranks see it
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 1:
                answers.append(logs_this_step(trainer))
                trainer.progress_bar_callback.disable()
                answers.append(logs_this_step(trainer))

    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=32, batch_size=8)
    model = ClassifierModule(tiny_arch(tmp_path), num_classes=4, input_shape=(3, 8, 8))
    trainer = L.Trainer(max_steps=2, callbacks=[Ask()], logger=False, enable_checkpointing=False,
                        log_every_n_steps=50, limit_val_batches=0, enable_model_summary=False)
    trainer.fit(model, data)
    assert answers == [True, True]
