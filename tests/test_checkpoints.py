"""pipeline/checkpoints.py: the one reader and writer of checkpoint and weights files."""
from __future__ import annotations

import pickle

import pytest
import torch

from pipeline.checkpoints import atomic_write, class_names_in, load_file, read_checkpoint, read_state_dict, save_atomic
from pipeline.errors import ArchError, BlockError


class Payload:
    def __reduce__(self):  # unpickling would run code: weights_only must refuse it
        return (print, ("pwned",))


def test_save_atomic_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "w.pt"
    save_atomic({"w": torch.arange(3)}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["w.pt"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "report.json"
    atomic_write(path, lambda tmp: tmp.write_text("old"))

    def half(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_missing_unreadable_and_code_carrying_files_are_one_line_errors(tmp_path):
    with pytest.raises(ArchError, match="checkpoint not found: .*nope.ckpt"):
        read_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArchError, match="junk.ckpt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.ckpt")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(BlockError, match="evil.pt: not a readable timm weights"):
        load_file(evil, "timm weights", BlockError)
    torch.save({"w": torch.ones(1), "n": 3}, tmp_path / "mixed.pt")
    with pytest.raises(ArchError, match="expected a state dict"):
        read_state_dict(tmp_path / "mixed.pt")


def test_lightning_checkpoints_give_the_nets_weights_and_class_names(tmp_path):
    checkpoint = {"state_dict": {"net.fc.weight": torch.ones(2), "evaluator.x": torch.zeros(1)},
                  "DigitsDataModule": {"class_names": ["zero", "one"]}, "hyper_parameters": {"arch": "a.yaml"}}
    save_atomic(checkpoint, tmp_path / "last.ckpt")
    assert list(read_state_dict(tmp_path / "last.ckpt", prefix="net.")) == ["fc.weight"]
    assert class_names_in(read_checkpoint(tmp_path / "last.ckpt")) == ["zero", "one"]
    assert class_names_in({"state_dict": {}}) is None
