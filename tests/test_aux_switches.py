"""Auxiliary heads switched and re-weighted without editing the file: --model.aux_weights, aux: 0."""
from __future__ import annotations

import shlex
from pathlib import Path

import lightning as L
import pytest
import torch

from datamodules import SyntheticDataModule
from pipeline.cli import main
from pipeline.language import TrainOutput, build_model
from pipeline.training import ClassifierModule

ROOT = Path(__file__).resolve().parents[1]
AUX_OFF = "python -m pipeline fit --config lightning_config.yaml --model.aux_weights '{aux: 0.0}'"
TWO_HEADS = """\
input: [3, 8, 8]
vars: {classes: 4, w2: 0.3}
nodes:
  stem: {block: conv, out: 8}
  aux1: {block: global_pool, aux: 0.3}
  body: {block: conv, out: 8}
  side: {block: conv, out: 4, from: body}
  aux2: {block: global_pool, aux: w2}
  pool: {block: global_pool, from: body}
  fc:   {block: linear, out: classes}
"""


@pytest.fixture
def two_heads(tmp_path) -> str:
    path = tmp_path / "two_heads.yaml"
    path.write_text(TWO_HEADS)
    return str(path)


def calls(net, names):
    counts = {n: 0 for n in names}
    for n in names:
        getattr(net, n).register_forward_hook(lambda *a, n=n: counts.__setitem__(n, counts[n] + 1))
    return counts


def test_weight_zero_skips_the_head_in_training_and_freezes_only_its_weights(two_heads):
    model = ClassifierModule(two_heads, num_classes=4, aux_weights={"aux2": 0.0, "aux1": 0.5})
    net = model.net.train()
    counts = calls(net, ["aux1", "side", "aux2", "fc"])
    out = net(torch.randn(2, 3, 8, 8))
    assert isinstance(out, TrainOutput) and set(out.aux) == {"aux1"} and out.aux["aux1"].weight == 0.5
    assert counts == {"aux1": 1, "side": 0, "aux2": 0, "fc": 1}
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {"side.conv.weight", "side.norm.weight", "side.norm.bias"}  # aux2's branch only
    assert "side.conv.weight" in net.state_dict()  # kept in checkpoints: the file's net is unchanged
    assert model.hparams.aux_weights == {"aux2": 0.0, "aux1": 0.5}


def test_all_heads_off_trains_like_a_net_without_heads(two_heads):
    model = ClassifierModule(two_heads, num_classes=4, aux_weights={"aux1": 0.0, "aux2": 0.0})
    before = model.net.side.conv.weight.detach().clone()
    assert isinstance(model.net.train()(torch.randn(2, 3, 8, 8)), torch.Tensor)
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0)
    trainer.fit(model, SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=16, batch_size=8))
    assert torch.equal(before, model.net.side.conv.weight)
    assert all(p.requires_grad for n, p in model.net.named_parameters() if n.startswith(("stem", "body", "fc")))


def test_aux_zero_in_the_file_or_a_variable_switches_the_head_off(two_heads):
    net = build_model(two_heads, w2=0).train()
    out = net(torch.randn(2, 3, 8, 8))
    assert set(out.aux) == {"aux1"} and net.aux_weights == {"aux1": 0.3, "aux2": 0.0}
    net.set_aux_weights({"aux2": 0.2})  # back on: computed again
    assert set(net(torch.randn(2, 3, 8, 8)).aux) == {"aux1", "aux2"}


def test_a_head_switched_off_and_on_again_trains_again(two_heads):
    # the file's weight 0 switches aux2 off; --model.aux_weights switches it on again
    text = Path(two_heads).read_text().replace("w2: 0.3", "w2: 0")
    Path(two_heads).write_text(text)
    model = ClassifierModule(two_heads, num_classes=4, aux_weights={"aux2": 0.5})
    assert all(p.requires_grad for p in model.net.parameters())
    before = model.net.side.conv.weight.detach().clone()
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0)
    trainer.fit(model, SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=16, batch_size=8))
    assert not torch.equal(before, model.net.side.conv.weight)  # the head's own branch trained


def test_switching_a_head_back_on_keeps_what_the_user_froze(two_heads):
    model = ClassifierModule(two_heads, num_classes=4, aux_weights={"aux2": 0.0}, freeze_until="side")
    net = model.net
    net.set_aux_weights({"aux2": 0.4})
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in net.named_parameters() if n.startswith(("stem", "body", "side"))}
    net.set_aux_weights({"aux2": 0.0})
    net.set_aux_weights({"aux1": 0.0})
    assert not any(p.requires_grad for n, p in net.named_parameters() if n.startswith(("stem", "side")))
    net.set_aux_weights({"aux1": 0.3, "aux2": 0.3})
    assert {n for n, p in net.named_parameters() if not p.requires_grad} == frozen


def test_the_optimizer_holds_a_switched_off_heads_weights(two_heads):
    """Checkpoints resume under other aux weights: the optimizer's groups do not depend on them."""
    def optimizer_sizes(weights):
        model = ClassifierModule(two_heads, num_classes=4, aux_weights=weights)
        model.trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False)
        optimizer = model.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        return [len(g["params"]) for g in optimizer.param_groups]

    assert optimizer_sizes({"aux2": 0.0}) == optimizer_sizes({"aux2": 0.3})


def test_readme_aux_switch_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = main([*shlex.split(AUX_OFF)[3:], "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path),
               "--trainer.enable_progress_bar", "false"])
    assert rc == 0, capsys.readouterr().err[-2000:]


@pytest.mark.parametrize("value, words", [
    ("{aux3: 0.0}", ["no auxiliary head 'aux3'", "its heads: aux", "architectures/digits_aux.yaml"]),
    ("{aux: -1.0}", ["loss weight must be >= 0, got -1.0"]),
])
def test_aux_weight_mistakes_exit_2_with_one_line(value, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = main(["fit", "--config", "lightning_config.yaml", "--trainer.fast_dev_run", "1",
               "--trainer.default_root_dir", str(tmp_path), "--model.aux_weights", value])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("model.aux_weights: ") and all(w in err for w in words), err
