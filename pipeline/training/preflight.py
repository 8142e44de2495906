"""Checks of a training command before any work: config files, output folders, ``--ckpt_path``.

Each failure is one line naming the option and what was expected (pipeline/user_errors.py prints
it with exit status 2). They run right after parsing, before Lightning reads the checkpoint's
hyper-parameters and before data, model or Trainer exist; a mistake found after minutes of setup
or training would cost the user those minutes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_file
from ..errors import ArchError
from ..user_errors import UsageError, writable_folder

# --ckpt_path values Lightning resolves itself (to files of the run folder)
SPECIAL_CKPT = ("last", "best", "hpc", "registry")
MAX_CONFIG_BYTES = 16 * 2**20


def check_config_files(argv: list[str]) -> None:
    """``--config FILE`` must be a YAML text file (jsonargparse would fail with a UnicodeDecodeError), and
    no config file or option value may be an alias bomb (jsonargparse would expand it in full)."""
    from ..language.loader import check_aliases

    for i, arg in enumerate(argv):
        if "&" in arg and "*" in arg:  # an anchor and an alias: inline YAML such as --model.vars '{...}'
            check_aliases(arg, f"<option {argv[i - 1] if i else arg}>")
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = Path(argv[i + 1])
        elif arg.startswith("--config="):
            path = Path(arg.partition("=")[2])
        else:
            continue
        if path.exists() and not path.is_file():  # a pipe would block, /dev/zero would fill the memory
            raise UsageError(f"--config {path}: not a regular file; expected a YAML config file")
        if not path.is_file():
            continue  # jsonargparse words a missing file (or takes a YAML string)
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UsageError(f"--config {path}: {path.stat().st_size:,} bytes is not a config file (YAML text)")
        data = path.read_bytes()
        try:
            if b"\0" in data:
                raise UnicodeDecodeError("utf-8", data, data.index(b"\0"), data.index(b"\0") + 1, "NUL byte")
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"--config {path}: not a YAML text file (binary content at byte {err.start})") from None
        check_aliases(text, str(path))


def check_parsed(subcommand: str, config: Any) -> None:
    """The parsed command's output folders and ``--ckpt_path``; ``config`` is the subcommand's part."""
    trainer = config.get("trainer") or {}
    if trainer.get("default_root_dir"):
        writable_folder(trainer["default_root_dir"], "--trainer.default_root_dir")
    report_dir = (config.get("eval") or {}).get("report_dir") if hasattr(config.get("eval"), "get") else None
    if report_dir:
        writable_folder(report_dir, "--eval.report_dir")
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and str(ckpt_path).split(":")[0] not in SPECIAL_CKPT:
        checkpoint = read_lightning_checkpoint(ckpt_path, "--ckpt_path")
        model = config.get("model") or {}
        if subcommand == "fit" and model.get("arch"):
            check_same_arch(checkpoint.get("hyper_parameters") or {}, model.get("arch"), model.get("vars"), ckpt_path)


def read_lightning_checkpoint(path: str | Path, option: str) -> dict:
    """A checkpoint written by ``fit`` (read safely and memory-mapped: only its header is touched)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, expected a checkpoint file (.ckpt)")
    if not path.is_file():
        raise UsageError(f"{option} {path}: checkpoint not found")
    checkpoint = load_file(path, "checkpoint", lambda message: UsageError(f"{option} {message}"), mmap=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict) \
            or "global_step" not in checkpoint:
        raise UsageError(f"{option} {path}: not a Lightning checkpoint of this pipeline (a plain state dict? "
                         f"start from its weights with --model.init_from {path})")
    return checkpoint


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes())
    except OSError:
        return False


def check_same_arch(saved: dict, arch: str, variables: dict | None, ckpt_path: str | Path) -> None:
    """Resuming continues the same net: the checkpoint's architecture file and variables must be the
    config's (LightningCLI would otherwise replace the configured net by the checkpoint's)."""
    saved_arch, saved_vars = saved.get("arch"), dict(saved.get("vars") or {})
    if saved_arch is None:
        return  # not a ClassifierModule checkpoint: the weights check on loading decides
    if not _same_file(Path(str(saved_arch)), Path(str(arch))) or saved_vars != dict(variables or {}):
        raise UsageError(f"--ckpt_path {ckpt_path} is a checkpoint of {saved_arch} (vars {saved_vars}), the config's "
                         f"model is {arch} (vars {dict(variables or {})}): resuming needs the same architecture; to "
                         f"start {arch} from that checkpoint's weights, use --model.init_from {ckpt_path}")


def check_same_net(checkpoint: dict, net: torch.nn.Module, arch: str, prefix: str = "net.") -> None:
    """The checkpoint's net has this net's tensors (names and shapes), before Lightning loads it."""
    saved = {k[len(prefix):]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(prefix)}
    own = net.state_dict()
    for name in sorted(set(saved) | set(own)):
        a, b = saved.get(name), own.get(name)
        if a is None or b is None or tuple(a.shape) != tuple(b.shape):
            def shape(t):
                return "missing" if t is None else "x".join(map(str, t.shape)) or "scalar"
            raise ArchError(f"the checkpoint holds another net than {arch} "
                            f"(its {saved_arch(checkpoint)}): '{name}' is {shape(a)} there, {shape(b)} here; "
                            "resume or evaluate with the architecture it was trained with, or start from its weights "
                            "with --model.init_from")


def saved_arch(checkpoint: dict) -> str:
    hp = checkpoint.get("hyper_parameters") or {}
    return f"{hp.get('arch', 'architecture unknown')} (vars {dict(hp.get('vars') or {})})"
