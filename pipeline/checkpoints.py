"""Checkpoint and weights files: the one place that reads and writes them.

Reading is always ``torch.load(weights_only=True)``: a checkpoint is untrusted input, so it may
hold tensors and plain containers but never code. Writing goes through a temporary file in the
target folder, fsync and rename, so a crash or kill leaves the previous file whole, never half
of one. This module sits at the bottom of the package (it imports only torch and errors), so
blocks, evaluation, training and the CLI can all use it.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import ArchError
from .user_errors import load_failure as _reason  # never torch's advice to set weights_only=False

ErrorType = Callable[[str], Exception]
SLACK = 1 << 20  # zip headers and the like


def declared_bytes(path: Path) -> int:
    """The bytes a zip-format PyTorch file says its records hold once read (0 for other files)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0  # not a zip (or unreadable): torch.load says what it is


def allow_checkpoint_globals() -> None:
    """Allow the non-tensor types that Lightning checkpoints contain (its ``AttributeDict``) for
    weights_only loading. Imported lazily: model tools that never read a Lightning checkpoint
    should not pay for importing Lightning."""
    try:
        from lightning.fabric.utilities.data import AttributeDict
    except ImportError:  # without Lightning there are no Lightning checkpoints to read
        return
    torch.serialization.add_safe_globals([AttributeDict])


def load_file(path: str | Path, what: str = "checkpoint", error: ErrorType = ArchError, map_location: Any = "cpu",
              mmap: bool = False) -> Any:
    """The object stored in ``path``, unpickled safely; a missing or unreadable file raises
    ``error("<what> not found: PATH")`` or ``error("PATH: not a readable <what> (reason)")``.
    With ``mmap``, tensors stay on disk until touched (to look at a checkpoint's header cheaply)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    inflated = declared_bytes(path)
    if inflated > path.stat().st_size + SLACK:
        # torch.save stores its records uncompressed: what a file declares it cannot hold is a zip
        # bomb (a few MB that inflate to GBs), refused before a byte of it is inflated
        raise error(f"{path}: not a readable {what} (its records declare {inflated:,} bytes in a file of "
                    f"{path.stat().st_size:,}: compressed, which torch.save never writes)")
    allow_checkpoint_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise error(f"{path}: not a readable {what} ({_reason(err)})") from None


def read_checkpoint(path: str | Path, error: ErrorType = ArchError) -> dict:
    """A Lightning checkpoint (a dict), read safely."""
    checkpoint = load_file(path, "checkpoint", error)
    if not isinstance(checkpoint, dict):
        raise error(f"{path}: not a checkpoint (a mapping of names to values)")
    return checkpoint


def read_state_dict(path: str | Path, what: str = "weights file", error: ErrorType = ArchError,
                    prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict from a plain state-dict file or a Lightning checkpoint (its ``state_dict``).

    With ``prefix`` (e.g. ``net.``), only a Lightning checkpoint's keys under it are kept, without it.
    """
    state = load_file(path, what, error)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a Lightning checkpoint
        state = state["state_dict"]
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise error(f"{path}: expected a state dict (a mapping of names to tensors)")
    return state


def class_names_in(checkpoint: dict) -> list[str] | None:
    """The class names a datamodule stored in a checkpoint (under its class name), if any."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("class_names"), list) and value["class_names"]:
            return [str(n) for n in value["class_names"]]
    return None


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``: a reader
    never sees half a file, and a crash leaves the previous one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own (process and a random part), created with the usual permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`, flushed to disk before the rename."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write)


__all__ = ["allow_checkpoint_globals", "atomic_write", "class_names_in", "load_file", "read_checkpoint",
           "read_state_dict", "save_atomic"]
