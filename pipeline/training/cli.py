"""`python -m pipeline fit|validate|test|predict`: LightningCLI with this project's defaults.

What it adds to LightningCLI: the data's classes and input shape flow into the model; each `fit`
run's CSV and TensorBoard logs, config and checkpoints in its own ``version_N`` folder under
``trainer.default_root_dir``, ``--ckpt_path last`` meaning the newest run's (runs.py); checkpoints written
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
from lightning.pytorch.callbacks import ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO, TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ..checkpoints import allow_checkpoint_globals, load_file, save_atomic
from ..errors import ArchError
from ..evaluation import EvalConfig, EvaluationData, EvaluationReport, PredictionWriter
from ..memory import check_memory
from ..user_errors import UsageError
from .datafit import adaptation_line, checkpoint_input, declared_input, drop_leaked, follow_net
from .distributed import SyncBatchNormPlugin
from .ensemble import EnsembleConfig, prepare
from .fault import FaultTolerance, Preempted
from .module import ClassifierModule, TrainingDiverged
from .preflight import check_config_files, check_parsed, read_lightning_checkpoint
from .runs import RunLogger, resolve, version_of
from .threads import CpuThreads
from .throughput import Throughput


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints through pipeline/checkpoints.py: saved atomically (a crash or kill during a save
    leaves the previous ``last.ckpt`` intact, never half a file), always loaded with weights_only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict[str, Any]:
        return load_file(path, map_location=map_location or "cpu")  # weights_only=True whatever was asked


EVALUATING = ("validate", "test", "predict")


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def with_throughput(subcommand: str | None, callbacks: list) -> list:
    """fit logs samples/s (and MFU on GPUs) from the plan's MACs, unless a throughput monitor is configured."""
    if subcommand == "fit" and not any(isinstance(c, ThroughputMonitor) for c in callbacks):
        return [*callbacks, Throughput()]
    return callbacks


class PipelineCLI(LightningCLI):
    """LightningCLI through its public extension points: arguments and links, a check of the parsed
    config, the hooks around instantiation and the Trainer's instantiation (defaults, evaluation)."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.input_shape", apply_on="instantiate")
        # validate/test/predict: test-time crops, ensembles, reports (pipeline/evaluation); the
        # evaluator is made with these settings
        parser.add_class_arguments(EvalConfig, "eval")
        parser.link_arguments("eval", "model.evaluation", apply_on="instantiate")
        parser.add_class_arguments(EnsembleConfig, "ensemble")
        # preemption signals, mid-epoch last.ckpt, generator states: --fault_tolerance.every_n_steps N
        parser.add_lightning_class_args(FaultTolerance, "fault_tolerance")
        parser.add_argument("--memory_check", type=bool, default=True,
                            help="refuse, before any allocation, a run whose tensors cannot fit in the memory "
                                 "available (a lower bound from the plan: input and node outputs of a batch)")

    @staticmethod
    def root(config) -> Path:
        """``trainer.default_root_dir``: where the run folders are."""
        return Path((config.get("trainer") or {}).get("default_root_dir") or os.getcwd())

    def section(self, config, key: str | None = None) -> Any:
        """The running subcommand's part of a parsed (or instantiated) config, or one key of it."""
        part = config[self.subcommand] if self.subcommand else config
        return part if key is None else part.get(key)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        self.args = list(args) if isinstance(args, (list, tuple)) else sys.argv[1:]  # what the user typed (datafit)
        # output folders and --ckpt_path, before Lightning reads the checkpoint and before any work
        if self.config.get("subcommand"):
            config = self.config[self.config.subcommand]
            # --ckpt_path last|best: the newest run's checkpoint (each run has its own folder, runs.py)
            config["ckpt_path"] = resolve(config.get("ckpt_path"), self.root(config),
                                          required=self.config.subcommand in EVALUATING)
            check_parsed(self.config.subcommand, config)

    def before_instantiate_classes(self) -> None:
        config = self.section(self.config)
        if self.subcommand not in EVALUATING and config.ensemble.checkpoints:
            raise ArchError("--ensemble.checkpoints is for validate, test and predict")
        if "weights_only" in config:
            config["weights_only"] = True  # a checkpoint is untrusted input: never unpickle code
        # the data follows the net: no leaked settings, unset sizes from the file (datafit.py)
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
        self.check_memory()

    def check_memory(self) -> None:
        """Before the data is read or a tensor made (pipeline/memory.py): on this machine's memory for a CPU
        run; a GPU's free memory is asked by each process once it runs (cuda is not started here)."""
        batch = getattr(self.datamodule, "batch_size", None)
        plan = getattr(self.model, "plan", None)
        if not self.section(self.config, "memory_check") or not isinstance(batch, int) or plan is None:
            return
        device = self.trainer.strategy.root_device
        if device.type == "cpu":
            check_memory(plan, batch, device, str(self.trainer.precision), self.subcommand == "fit",
                         str(self.model.hparams.get("arch", "the net")))

    def instantiate_trainer(self, **kwargs: Any):
        """LightningCLI's own step, once data and model exist, with this project's defaults: validate/
        test/predict first settle what they evaluate, so that a mistake there is the only line on
        stderr (the Trainer prints its device lines when it is made); then callbacks, plugins and
        each fit run's own loggers and checkpoint folder."""
        trainer = self.section(self.config_init, "trainer")
        root = Path(trainer.get("default_root_dir") or os.getcwd())
        callbacks = _as_list(trainer.get("callbacks"))
        defaults: dict[str, Any] = {"plugins": self.plugins(trainer)}
        if self.subcommand in EVALUATING:
            callbacks.append(self.prepare_evaluation(root))
        if self.subcommand != "fit":
            # evaluation writes its report (reports/), lr-find its plot: no run folder, no config.yaml
            self.save_config_callback = None
            if trainer.get("logger") is None:
                defaults["logger"] = False
        elif trainer.get("logger") in (None, True) and not trainer.get("fast_dev_run"):
            defaults["logger"] = self.run_loggers(root, self.section(self.config, "ckpt_path"))
        callbacks = with_throughput(self.subcommand, callbacks)
        if not any(isinstance(c, CpuThreads) for c in callbacks):
            callbacks.append(CpuThreads())  # threads from the CPUs this process may use (threads.py)
        if self.section(self.config, "memory_check"):
            callbacks.append(GpuMemoryCheck(self.subcommand == "fit"))  # CPU runs: checked before (check_memory)
        run = Path(defaults["logger"][0].log_dir) if defaults.get("logger") else root
        if self.subcommand in EVALUATING and self.section(self.config, "ckpt_path"):
            run = Path(self.section(self.config, "ckpt_path")).parent.parent  # the evaluated run's (nothing is saved)
        for callback in callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(run / "checkpoints")  # this run's own: no run overwrites another's
        defaults["callbacks"] = callbacks
        try:
            return super().instantiate_trainer(**defaults, **kwargs)
        except (MisconfigurationException, ValueError) as err:
            # the Trainer checks accelerator, devices, strategy and precision as it is made: a user's
            # option, not a bug (Lightning's own words, on one line)
            raise UsageError(f"trainer options: {' '.join(str(err).split())}{trainer_hint(err)}") from None

    @staticmethod
    def run_loggers(root: Path, ckpt_path: str | None) -> list:
        """CSV and TensorBoard logs in a new ``version_N`` folder, or, when resuming a run of this root,
        in that run's folder from the checkpoint's step on. Every DDP rank finds the same version: they
        all look before any rank starts training (which is when rank zero makes the folder)."""
        version = version_of(ckpt_path, root)
        step = read_lightning_checkpoint(ckpt_path, "--ckpt_path").get("global_step") if version is not None else None
        csv = RunLogger(root, name="", version=version, resume_step=step)
        tensorboard = TensorBoardLogger(root, name="", version=csv.version, default_hp_metric=False,
                                        **({"purge_step": step} if step is not None else {}))
        return [csv, tensorboard]

    def before_fit(self) -> None:
        """Resuming a run that has already reached its end says so (Lightning would stop in silence)."""
        path = self.section(self.config, "ckpt_path")
        if not self.trainer.is_global_zero or not path or not Path(str(path)).is_file():
            return
        checkpoint = read_lightning_checkpoint(path, "--ckpt_path")
        epochs = (checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
                  .get("current", {}).get("processed", 0))
        steps, max_epochs, max_steps = checkpoint["global_step"], self.trainer.max_epochs, self.trainer.max_steps
        if (max_epochs not in (None, -1) and epochs >= max_epochs) or (max_steps not in (None, -1) and
                                                                        steps >= max_steps):
            print(f"{path}: this run is finished ({epochs} epochs, {steps} steps, of max_epochs {max_epochs}); "
                  "raise --trainer.max_epochs (or max_steps) to train it longer", file=sys.stderr)

    def after_fit(self) -> None:
        """One line that says how the run ended: its best score, its folder, the checkpoint to test."""
        trainer = self.trainer
        # log_dir is broadcast from rank zero: every rank asks, or DDP waits (gloo) or hangs (nccl)
        folder = trainer.log_dir if trainer.loggers and not trainer.fast_dev_run else None
        if trainer.is_global_zero and not trainer.interrupted:
            print(ending_line(trainer, folder), flush=True)

    @staticmethod
    def plugins(trainer) -> list:
        """The configured plugins, with atomic, weights-only checkpoint I/O unless one is given, and
        SyncBatchNorm that runs on CPUs too (Lightning's runs on GPUs only)."""
        plugins = _as_list(trainer.get("plugins"))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        if trainer.get("sync_batchnorm"):
            plugins.append(SyncBatchNormPlugin())
        return plugins

    def prepare_evaluation(self, root: Path) -> Callback:
        """Make the module that evaluates the configured one or an ensemble of checkpoints, tell the
        data what the crops need, and return the report writer (reports in root/reports unless
        eval.report_dir says otherwise)."""
        config = self.section(self.config_init)
        if not isinstance(self.datamodule, EvaluationData):
            raise ArchError(f"data: {type(self.datamodule).__name__} does not offer what evaluation needs "
                            "(num_classes, input_shape, class_names, eval_resize, predict_names)")
        self.model = prepare(self.model, self.datamodule, config.ensemble, config.get("ckpt_path"),
                             check_classes=self.subcommand != "predict")
        evaluation = config.eval
        reports = Path(evaluation.report_dir) if evaluation.report_dir else root / "reports"
        if self.subcommand == "predict":
            return PredictionWriter(reports, evaluation.top_k)
        return EvaluationReport(reports)


class GpuMemoryCheck(Callback):
    """The check on a GPU, in each process once it has its device: asking the driver for free memory
    before the launch would start CUDA in the launching process."""

    def __init__(self, training: bool) -> None:
        self.training = training

    def setup(self, trainer, pl_module, stage: str) -> None:
        batch, plan = getattr(trainer.datamodule, "batch_size", None), getattr(pl_module, "plan", None)
        device = trainer.strategy.root_device
        if device.type == "cuda" and isinstance(batch, int) and plan is not None:
            check_memory(plan, batch, device, str(trainer.precision), self.training,
                         str(pl_module.hparams.get("arch", "the net")))


def trainer_hint(err: Exception) -> str:
    if ("gpu backend" in str(err) or "CUDA" in str(err)) and not torch.cuda.is_available():
        return " (torch sees no GPU on this machine: --trainer.accelerator cpu, or auto to use one when there is)"
    return ""


def ending_line(trainer, folder: str | None) -> str:
    """``best val/acc 0.9861 (epoch 11); run folder runs/digits/version_0; test it: --ckpt_path ...``"""
    monitored = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor and
                 c.best_model_path and c.best_model_score is not None]
    parts = []
    if monitored:
        best = monitored[0]
        epoch = read_lightning_checkpoint(best.best_model_path, "checkpoint").get("epoch")
        parts.append(f"best {best.monitor} {float(best.best_model_score):.4f} (epoch {epoch})")
    elif "val/acc" in trainer.callback_metrics:
        parts.append(f"last val/acc {float(trainer.callback_metrics['val/acc']):.4f}")
    if folder is not None:
        parts.append(f"run folder {folder}")
    if monitored:
        parts.append(f"test it: --ckpt_path {monitored[0].best_model_path}")
    else:  # the newest checkpoint written (an unmonitored ModelCheckpoint's "best" is its latest)
        saved = [c.last_model_path or c.best_model_path for c in trainer.checkpoint_callbacks
                 if isinstance(c, ModelCheckpoint)]
        if any(saved):
            parts.append(f"test it: --ckpt_path {next(p for p in saved if p)}")
    return "fit done: " + "; ".join(parts or [f"{trainer.global_step} steps"])


class _Unsaid(logging.Filter):
    """Lightning's lines that tell a user of this tool nothing: an advertisement, and, when the LR finder
    saves its temporary checkpoint, "`weights_only` was not set, defaulting to `False`" (about *saving*
    the full state; every load here is weights_only=True, but beside the README's safety claims it
    reads like unsafe loading)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("\U0001f4a1 Tip:") or text.startswith("`weights_only` was not set"))


def quiet_lightning() -> None:
    """What every Lightning command here leaves out of its output."""
    # "Seed set to N" is routine; on an error it would be a second stderr line before the message
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Unsaid) for f in logger.filters):
            logger.addFilter(_Unsaid())
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    # Lightning 2.6 calls a torch._pytree API that torch 2.14 deprecates, once per run: not the user's concern
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def run_lightning(argv: list[str]) -> int:
    """Run a LightningCLI subcommand; returns the process exit status. A user's mistake (a bad option, file
    or value, also when it surfaces through Lightning's or jsonargparse's layers) is left to
    ``pipeline.user_errors.report``, which every command runs under."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    check_config_files(argv)
    allow_checkpoint_globals()
    quiet_lightning()
    try:
        PipelineCLI(ClassifierModule, LightningDataModule, subclass_mode_data=True, args=argv,
                    parser_kwargs={"exit_on_error": False, "prog": "python -m pipeline"}, save_config_kwargs={"overwrite": True},
                    auto_configure_optimizers=False)
    except (Preempted, SIGTERMException):  # a signal: last.ckpt is written (or nothing was trained), as printed
        return 0
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
