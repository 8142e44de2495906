"""`python -m pipeline fit|validate|test|predict`: LightningCLI with this project's defaults.

What it adds to LightningCLI: the data's classes and input shape flow into the model; CSV and
TensorBoard logs and checkpoints under ``trainer.default_root_dir`` (checkpoints in one
unversioned folder, so ``--ckpt_path last`` finds them after a restart); checkpoints written
atomically; checkpoints always loaded with ``weights_only=True``; for validate/test/predict the
``eval:`` and ``ensemble:`` groups (test-time crops, ensembles, reports; pipeline/evaluation); for
fit, preemption signals, mid-epoch checkpoints and exact resume (``fault_tolerance:``, fault.py) and
``--trainer.sync_batchnorm`` on CPUs as well as GPUs (distributed.py); and a user's mistake ends with
one line on stderr and exit status 2 instead of a traceback.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import ArchError
from ..evaluation import EnsembleConfig, EvalConfig, EvaluationReport, PredictionWriter, prepare
from .datafit import adaptation_line, checkpoint_input, declared_input, drop_leaked, follow_net
from .distributed import SyncBatchNormPlugin
from .fault import FaultTolerance, Preempted
from .module import ClassifierModule, TrainingDiverged


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file in the target folder, fsync, then rename over the old checkpoint:
    a crash or kill during a save leaves the previous ``last.ckpt`` intact, never half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def allow_checkpoint_globals() -> None:
    """Types that Lightning checkpoints contain besides tensors, allowed for weights_only loading."""
    from lightning.fabric.utilities.data import AttributeDict

    torch.serialization.add_safe_globals([AttributeDict])


EVALUATING = ("validate", "test", "predict")


class PipelineCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.input_shape", apply_on="instantiate")
        # validate/test/predict: test-time crops, ensembles, reports (pipeline/evaluation)
        parser.add_class_arguments(EvalConfig, "eval")
        parser.add_class_arguments(EnsembleConfig, "ensemble")
        # preemption signals, mid-epoch last.ckpt, generator states: --fault_tolerance.every_n_steps N
        parser.add_lightning_class_args(FaultTolerance, "fault_tolerance")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
        root = Path(config.get("default_root_dir") or os.getcwd())
        if config.get("logger") in (None, True) and not config.get("fast_dev_run"):
            csv = CSVLogger(root, name="", version=None)
            config["logger"] = [csv, TensorBoardLogger(root, name="", version=csv.version, default_hp_metric=False)]
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(hasattr(p, "save_checkpoint") for p in plugins):
            plugins = plugins + [AtomicCheckpointIO()]
        if config.get("sync_batchnorm"):  # Lightning's SyncBatchNorm runs on GPUs only; ours on CPUs too
            plugins = plugins + [SyncBatchNormPlugin()]
        config["plugins"] = plugins
        if self.subcommand in EVALUATING:
            callbacks.append(self._prepare_evaluation(root))
        for callback in [*callbacks, *(config.get("callbacks") or [])]:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(root / "checkpoints")  # not per version: `--ckpt_path last` must find it
        return super()._instantiate_trainer(config, callbacks)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        self.args = list(args) if isinstance(args, (list, tuple)) else sys.argv[1:]

    def before_instantiate_classes(self) -> None:
        if self.subcommand not in EVALUATING and self._get(self.config, "ensemble").checkpoints:
            raise ArchError("--ensemble.checkpoints is for validate, test and predict")
        # the data follows the net: no leaked settings, unset sizes from the file (datafit.py)
        config = self.config[self.subcommand] if self.subcommand else self.config
        drop_leaked(self.args, config.get("data"))
        model = config.get("model")
        if model is not None and model.get("arch"):
            self.declared = declared_input(model.arch, model.get("vars"))
            trained = checkpoint_input(config.get("ckpt_path")) if self.subcommand in EVALUATING else None
            follow_net(config.get("data"), trained or self.declared[1])  # evaluate at the training shape

    def after_instantiate_classes(self) -> None:
        shape = getattr(self.datamodule, "input_shape", None)
        line = adaptation_line(*self.declared, shape, self.subcommand) if hasattr(self, "declared") and shape else None
        if line and self.trainer.is_global_zero:
            print(line, file=sys.stderr)

    def _prepare_evaluation(self, root: Path) -> Callback:
        """Swap in the module that evaluates (the configured one, or an ensemble of checkpoints), tell
        the data what the crops need, and return the report writer (reports in root/reports unless
        eval.report_dir says otherwise). Runs before the Trainer exists, so that a mistake here is
        the only line on stderr."""
        evaluation = self._get(self.config_init, "eval")
        self.model = prepare(self.model, self.datamodule, evaluation, self._get(self.config_init, "ensemble"),
                             self._get(self.config, "ckpt_path"), check_classes=self.subcommand != "predict")
        reports = Path(evaluation.report_dir) if evaluation.report_dir else root / "reports"
        return PredictionWriter(reports, evaluation.top_k) if self.subcommand == "predict" else EvaluationReport(reports)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            kwargs["weights_only"] = True  # a checkpoint is untrusted input: never unpickle code
        return kwargs


def _user_error(err: BaseException) -> str | None:
    """The one-line message for a user's mistake anywhere in the exception chain, else None."""
    from datamodules import DataError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (ArchError, DataError)):
            return str(err)
        err = err.__cause__ or err.__context__
    return None


def run_lightning(argv: list[str]) -> int:
    """Run a LightningCLI subcommand; returns the process exit status."""
    from jsonargparse import ArgumentError

    allow_checkpoint_globals()
    # "Seed set to N" is routine; on an error it would be a second stderr line before the message
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    try:
        PipelineCLI(ClassifierModule, LightningDataModule, subclass_mode_data=True, args=argv,
                    parser_kwargs={"exit_on_error": False}, save_config_kwargs={"overwrite": True},
                    auto_configure_optimizers=False)
    except ArgumentError as err:
        message = " ".join(str(err).split())  # jsonargparse's message can span lines
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Preempted:  # a signal: last.ckpt is written and the message printed
        return 0
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a user's mistake surfacing through Lightning/jsonargparse layers
        message = _user_error(err)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
    return 0
