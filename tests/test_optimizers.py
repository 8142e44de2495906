"""Any torch.optim optimizer by name or class path, with its own arguments and the no-decay groups."""
from __future__ import annotations

import shlex
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from datamodules import SyntheticDataModule
from pipeline.cli import main
from pipeline.errors import ArchError
from pipeline.training import ClassifierModule, OptimizerConfig
from pipeline.training.optim import build_optimizer, param_groups, resolve_optimizer

ROOT = Path(__file__).resolve().parents[1]
ADAGRAD = "python -m pipeline fit --config lightning_config.yaml --model.optimizer.name adagrad --model.optimizer.lr 0.05 --model.optimizer.args '{lr_decay: 0.001}'"  # noqa: E501


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("Adam", torch.optim.Adam),
                                       ("ADAGRAD", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop),
                                       ("adamw", torch.optim.AdamW), ("torch.optim.NAdam", torch.optim.NAdam)])
def test_optimizer_by_short_name_or_class_path_keeps_the_no_decay_groups(name, cls):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    cfg = OptimizerConfig(name=name, lr=0.01, weight_decay=1e-3)
    optimizer = build_optimizer(param_groups(list(net.named_parameters()), cfg), cfg)
    assert type(optimizer) is cls
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-3 and [p.ndim for p in decayed["params"]] == [4]
    assert exempt["weight_decay"] == 0.0 and len(exempt["params"]) == 3  # conv bias, BN weight and bias
    assert all(g["lr"] == 0.01 for g in optimizer.param_groups)


def test_shared_settings_go_to_the_optimizers_that_have_them_and_args_to_the_rest():
    cfg = OptimizerConfig(name="rmsprop", momentum=0.5, betas=(0.8, 0.9), args={"alpha": 0.95, "centered": True})
    cls, kwargs = resolve_optimizer(cfg)
    assert cls is torch.optim.RMSprop and kwargs == {"momentum": 0.5, "alpha": 0.95, "centered": True}
    cls, kwargs = resolve_optimizer(OptimizerConfig(name="adam", betas=(0.8, 0.9)))
    assert kwargs == {"betas": (0.8, 0.9)}  # no momentum, nesterov for Adam
    _, kwargs = resolve_optimizer(OptimizerConfig(name="sgd", momentum=0.0, nesterov=True))
    assert kwargs == {"momentum": 0.0, "nesterov": False}  # SGD refuses Nesterov without momentum
    optimizer = build_optimizer([{"params": [nn.Parameter(torch.ones(2))]}],
                                OptimizerConfig(name="adagrad", args={"lr_decay": 0.25,
                                                                      "initial_accumulator_value": 0.1}))
    assert optimizer.defaults["lr_decay"] == 0.25 and optimizer.defaults["initial_accumulator_value"] == 0.1


def test_adagrad_trains_through_the_module_and_is_saved_in_the_hyperparameters(tmp_path):
    arch = tmp_path / "tiny.yaml"
    arch.write_text("input: [3, 8, 8]\nvars: {classes: 4}\nnodes:\n  stem: {block: conv, out: 8}\n"
                    "  pool: global_pool\n  fc: {block: linear, out: classes}\n")
    model = ClassifierModule(str(arch), num_classes=4,
                             optimizer=OptimizerConfig(name="adagrad", lr=0.05, args={"lr_decay": 0.01}))
    before = model.net.stem.conv.weight.detach().clone()
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0)
    trainer.fit(model, SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=16, batch_size=8))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adagrad) and optimizer.defaults["lr_decay"] == 0.01
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[1]["weight_decay"] == 0.0
    assert not torch.equal(before, model.net.stem.conv.weight)
    assert model.hparams.optimizer["name"] == "adagrad" and model.hparams.optimizer["args"] == {"lr_decay": 0.01}


def test_readme_adagrad_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = shlex.split(ADAGRAD)[3:]
    rc = main([*args, "--trainer.fast_dev_run", "2", "--trainer.default_root_dir", str(tmp_path),
               "--trainer.enable_progress_bar", "false"])
    assert rc == 0, capsys.readouterr().err[-2000:]


@pytest.mark.parametrize("args, words", [
    (["--model.optimizer.name", "adamm"], ["unknown optimizer 'adamm'", "did you mean 'adam'", "adagrad", "rmsprop"]),
    (["--model.optimizer.name", "nosuch.Optimizer"], ["cannot import 'nosuch.Optimizer'", "sgd"]),
    (["--model.optimizer.name", "torch.nn.Linear"], ["not a torch.optim.Optimizer"]),
    (["--model.optimizer.name", "adagrad", "--model.optimizer.args", "{momentum: 0.9}"],
     ["Adagrad has no argument 'momentum'", "lr_decay", "initial_accumulator_value"]),
    (["--model.optimizer.args", "{lr: 0.1}"], ["--model.optimizer.lr"]),
    (["--model.optimizer.name", "rprop"], ["Rprop has no weight decay"]),
    (["--model.optimizer.name", "adam", "--model.optimizer.args", "{eps: -1.0}"], ["Adam", "epsilon"]),
])
def test_optimizer_mistakes_exit_2_with_one_line(args, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = main(["fit", "--config", "lightning_config.yaml", "--trainer.fast_dev_run", "1",
               "--trainer.default_root_dir", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "model.optimizer" in err and all(w in err for w in words), err


def test_unknown_optimizer_from_python_is_an_arch_error():
    with pytest.raises(ArchError, match="known: .*adadelta.*sgd"):
        resolve_optimizer(OptimizerConfig(name="sdg"))
