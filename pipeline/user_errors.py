"""The one place where a user's mistake becomes one line on stderr and exit status 2.

Every subcommand (the model tools and LightningCLI's fit/validate/test/predict) runs under
:func:`report`. An exception that is the user's to fix anywhere in the chain (a bad architecture
file, bad data, a bad option, a file or folder they named that cannot be read or written) is
printed as its one line; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable

from .errors import ArchError


class UsageError(Exception):
    """A bad command line or option value: printed as ``error: <message>``, exit status 2."""


def _data_error() -> type | None:
    # the data side's error type, only if that package was imported (the model tools never do)
    module = sys.modules.get("datamodules.errors")
    return getattr(module, "DataError", None)


def _argument_error() -> type | None:
    module = sys.modules.get("jsonargparse")
    return getattr(module, "ArgumentError", None)


def user_message(err: BaseException | None) -> str | None:
    """The one-line message for a user's mistake anywhere in ``err``'s chain, else None."""
    data_error, argument_error = _data_error(), _argument_error()
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ArchError) or (data_error and isinstance(err, data_error)):
            return str(err)  # one line (verify's list of bad files: one line per file)
        if isinstance(err, UsageError):
            return f"error: {err}"
        if argument_error and isinstance(err, argument_error):
            return "error: " + " ".join(str(err).split())  # jsonargparse's message can span lines
        if isinstance(err, OSError) and err.filename is not None:
            # a file or folder the user named cannot be read or written (permissions, a file where a
            # folder should be, a full disk): not a bug of this program
            return f"error: {err.filename}: {err.strerror or type(err).__name__}"
        err = err.__cause__ or err.__context__
    return None


def load_failure(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` could not read a file, in words for this tool's users.

    torch's own message advises re-running with ``weights_only=False``; that would run whatever code
    the file carries, so it must never reach a user: a refused file is described, never excused.
    """
    text = str(err)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return (f"refused: it asks to build the Python object {found.group(1)}; files are read as tensors and "
                    "plain values only, never as code")
        return "not tensors and plain values"
    if "zip archive" in text or "central directory" in text or isinstance(err, EOFError):
        return "truncated or corrupt: not a complete PyTorch file"
    line = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def report(command: Callable[[], int]) -> int:
    """Run ``command``; a user's mistake becomes its one line on stderr and exit status 2."""
    try:
        return command()
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise  # a bug: keep the traceback
        print(message, file=sys.stderr)
        return 2


def writable_file(path: str | Path, option: str) -> Path:
    """Check, before any work, that ``path`` can be created or replaced; returns it."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, expected a file name")
    writable_folder(path.parent, option, of=path)
    return path


def writable_folder(path: str | Path, option: str, of: Path | None = None) -> Path:
    """Check, before any work, that folder ``path`` exists or can be created, and can be written."""
    path = Path(path)
    shown = of if of is not None else path
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: nothing can be created through it
            raise UsageError(f"{option} {shown}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {shown}: folder {existing} is not writable")
    return path
