"""Fault tolerance for `fit`: preemption signals, mid-epoch checkpoints and bit-exact resume.

Lightning restores weights, optimizer, schedule and loop progress from a checkpoint, and the training
loader (datamodules/sampling.py) can continue an interrupted epoch where it stopped. The rest is
here: the loader's position and the random number generators (dropout, Mixup) travel in every
checkpoint, ``last.ckpt`` can be written every N steps, and SIGTERM/SIGUSR1 end the run at the next
batch boundary with a checkpoint.
"""
from __future__ import annotations

import logging
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..checkpoints import load_file

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss, weights, buffers or optimizer state became NaN or infinite. Raised before such a state
    is written; the message says which checkpoint is the last finite one, or that there is none."""


def nonfinite(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in ``tree`` (nested dicts and lists) holding NaN or inf."""
    if isinstance(tree, torch.Tensor):
        if (tree.is_floating_point() or tree.is_complex()) and not bool(torch.isfinite(tree).all()):
            return [prefix or "tensor"]
        return []
    found: list[str] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for key, value in items:
        found += nonfinite(value, f"{prefix}.{key}" if prefix else str(key))
    return found


def refuse_nonfinite(checkpoint: dict[str, Any], trainer: L.Trainer) -> None:
    """Called before every save (``on_save_checkpoint``): weights, buffers (EMA included) and
    optimizer state must be finite, or nothing is written and training stops."""
    bad = nonfinite(checkpoint.get("state_dict", {})) + \
        nonfinite(checkpoint.get("optimizer_states", []), "optimizer_states")
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise TrainingDiverged(f"non-finite values (NaN or inf) in {names} at step {checkpoint.get('global_step')} "
                               f"(epoch {checkpoint.get('epoch')}): that checkpoint was not written; "
                               f"{last_finite_message(trainer)}")


def _checkpoints_of_this_run(trainer: L.Trainer) -> set[str]:
    """The checkpoints this run wrote (or resumed from), as the callbacks that wrote them know them."""
    paths = {str(trainer.ckpt_path)} if trainer.ckpt_path else set()
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint):
            paths |= {callback.last_model_path, callback.best_model_path, *callback.best_k_models}
        elif isinstance(callback, FaultTolerance) and callback._saved_step >= 0:
            paths.add(str(callback.last_path(trainer)))
    return {p for p in paths if p and Path(p).is_file()}


def last_finite_checkpoint(trainer: L.Trainer) -> tuple[Path, int] | None:
    """The newest (by step) checkpoint of this run whose tensors are all finite, read back from disk."""
    found: tuple[Path, int] | None = None
    for path in sorted(_checkpoints_of_this_run(trainer)):
        try:
            state = load_file(path, mmap=True)
            step = int(state["global_step"])
        except Exception:  # unreadable or not a Lightning checkpoint: not one to resume from
            continue
        if (found is None or step > found[1]) and not nonfinite({"state_dict": state.get("state_dict", {}),
                                                                  "optimizer_states": state.get("optimizer_states", [])}):
            found = (Path(path), step)
    return found


def last_finite_message(trainer: L.Trainer) -> str:
    found = last_finite_checkpoint(trainer)
    if found is None:
        return "no checkpoint with finite values was written by this run: nothing to resume from (start again " \
               "with a lower learning rate)"
    path, step = found
    return f"the last finite checkpoint is {path} (step {step}): resume from it with --ckpt_path {path} and a " \
           "lower learning rate"


class Preempted(SystemExit):
    """The run stopped on a signal after saving ``last.ckpt``; exit status 0 (resume with ``--ckpt_path last``)."""

    def __init__(self, message: str):
        super().__init__(0)
        self.message = message


def rng_state() -> dict[str, Any]:
    """Every generator training draws from, as plain values and tensors (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class FaultTolerance(L.Callback):
    """Preemption and exact resume (the CLI adds it to every run; ``--fault_tolerance.*``).

    Args:
        every_n_steps: also write ``last.ckpt`` every N optimizer steps, so that a killed run loses
            at most N steps (0: only the epoch-end checkpoints of ModelCheckpoint).
        signals: on these signals the run finishes its current batch, writes ``last.ckpt`` and exits
            with status 0. Under DDP all ranks stop at the same step, whichever rank got the signal;
            they agree every 10 steps and at each epoch's end (a collective read on the host stalls
            GPUs when done every step). A SIGUSR1 handler that is already installed (Lightning's SLURM
            auto-requeue) is kept.
    """

    def __init__(self, every_n_steps: int = 0, signals: list[str] | None = None):
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.signals = ["SIGTERM", "SIGUSR1"] if signals is None else list(signals)
        self._received: int | None = None
        self._replaced: dict[int, Any] = {}
        self._rng_to_restore: dict[str, Any] | None = None
        self._loader_to_restore: dict[str, Any] | None = None
        self._trainer: L.Trainer | None = None
        self._saved_step = -1

    # -- signals --------------------------------------------------------------------------------
    def _handler(self, signum: int, frame) -> None:
        # only a flag: the checkpoint is written between batches, where the state is consistent
        self._received = signum

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.signals:
            signum = getattr(signal, name)
            current = signal.getsignal(signum)
            if signum != signal.SIGTERM and current not in (signal.SIG_DFL, signal.SIG_IGN, None):
                continue  # someone handles it already: Lightning's SLURM requeue (SIGUSR1)
            # SIGTERM replaces Lightning's handler, which waits for the epoch's end and broadcasts
            # from inside the handler; here the ranks agree at the next batch boundary instead
            self._replaced[signum] = current
            signal.signal(signum, self._handler)

    def _uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._replaced.items():
            if signal.getsignal(signum) == self._handler:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._replaced = {}

    # Under DDP the ranks agree on a signal through a collective whose result the host reads: a device sync.
    # Every step, that stalls GPUs running a small net; every 10 steps it costs nothing, and a preempted job
    # (SLURM warns 30-120 s ahead) stops at most 10 steps later.
    AGREE_EVERY = 10

    def _agrees_now(self, trainer: L.Trainer) -> bool:
        """All ranks reach the same answer at the same batch (so all join the collective or none)."""
        if trainer.world_size == 1:
            return True  # no collective: the flag is read every step for free
        step = trainer.global_step
        return step % self.AGREE_EVERY == 0 or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or \
            bool(self.every_n_steps and step % self.every_n_steps == 0)

    def _agreed_signal(self, trainer: L.Trainer) -> int:
        """The signal any rank received (0: none); every rank calls this at the same batch."""
        received = self._received or 0
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            flag = torch.tensor([received], dtype=torch.int64, device=trainer.strategy.root_device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            received = int(flag.item())
        return received

    # -- checkpoints ----------------------------------------------------------------------------
    @staticmethod
    def last_path(trainer: L.Trainer) -> Path:
        """``last.ckpt`` in the first ModelCheckpoint's folder, where ``--ckpt_path last`` looks."""
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                return Path(callback.dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt"  # the run's folder

    def _save(self, trainer: L.Trainer) -> Path:
        path = self.last_path(trainer)
        # every rank takes part; rank zero writes (atomically, see cli.py). A full checkpoint, said
        # explicitly: Lightning logs "`weights_only` was not set" otherwise, which reads like unsafe loading
        trainer.save_checkpoint(path, weights_only=False)
        self._saved_step = trainer.global_step
        return path

    # -- hooks ----------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._received = None
        self._install()
        loader = trainer.train_dataloader
        if self._loader_to_restore is not None and hasattr(loader, "load_state_dict"):
            # Lightning restores a stateful loader only when it builds the loader after loading the
            # checkpoint; a schedule that asks for estimated_stepping_batches builds it before, and
            # the interrupted epoch would restart. The loader has not started yet: set it here.
            loader.load_state_dict(self._loader_to_restore)
        self._loader_to_restore = None
        if self._rng_to_restore is not None:
            # after the sanity check, before the first batch: the state the saved run was in here
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        accumulating = (batch_idx + 1) % trainer.accumulate_grad_batches != 0
        if accumulating and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # in the middle of gradient accumulation: no consistent state to save
        received = self._agreed_signal(trainer) if self._agrees_now(trainer) else 0
        if received:
            path = self._save(trainer)
            name = signal.Signals(received).name
            message = (f"{name}: stopped at step {trainer.global_step} (epoch {trainer.current_epoch}) and saved "
                       f"{path}; resume with --ckpt_path last")
            if trainer.is_global_zero:
                print(message, file=sys.stderr, flush=True)
            raise Preempted(message)
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 \
                and trainer.global_step != self._saved_step:
            self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.is_global_zero:
            # before on_train_start (the sanity check) Lightning's handler has the signal, and it
            # would end the run silently with status 0: say what that means
            when = "during the sanity check" if trainer.sanity_checking else f"at step {trainer.global_step}"
            if trainer.global_step == 0 and not trainer.ckpt_path:
                message = f"SIGTERM {when}: nothing was trained and no checkpoint was written; run the same " \
                          "command to start again"
            else:
                message = f"SIGTERM {when}, outside a training batch: stopped without writing a checkpoint; " \
                          "resume from the last one with --ckpt_path last"
            print(message, file=sys.stderr, flush=True)
        launcher = trainer.strategy.launcher
        if not isinstance(exception, Preempted) and isinstance(launcher, _SubprocessScriptLauncher):
            # the ranks this process launched (`--trainer.devices N` without torchrun or SLURM) would
            # otherwise wait in their next collective until the process-group timeout
            launcher.kill(signal.SIGKILL)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._uninstall()

    def state_dict(self) -> dict[str, Any]:
        # this rank's generators; with seed_everything all ranks draw alike, so rank zero's state
        # (the one written) is every rank's; no collective here, as saves can happen in signal handlers
        state: dict[str, Any] = {"rng": rng_state()}
        loader = self._trainer.train_dataloader if self._trainer is not None else None
        if hasattr(loader, "state_dict"):
            state["train_loader"] = loader.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng_to_restore = state_dict.get("rng")
        self._loader_to_restore = state_dict.get("train_loader")
