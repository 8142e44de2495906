"""The data follows the net: what the CLI does between parsing and instantiating the datamodule.

* A datamodule whose size arguments (``image_size``, ``channels``, ``input_shape``) are left unset
  (``None``) gets the architecture's declared input (the file's ``input`` with ``--model.vars``).
* Choosing a datamodule with ``--data CLASS`` on top of a config whose ``data:`` names another class
  starts that class from its own defaults: jsonargparse would carry over every ``init_args`` value
  whose name the new class also accepts (the digits config's ``image_size: 16`` into a folder).
* When the data's shape differs from the declared one, the net is planned at the data's shape (as
  before) and one line says so.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..errors import ArchError


def declared_input(arch: str, arch_vars: dict[str, Any] | None) -> tuple[str, tuple[int, ...]]:
    """The architecture's name and declared input shape with the file's variables overridden by
    ``arch_vars`` (``--model.vars``); raises the file's located ArchError."""
    from ..language import plan_model

    plan = plan_model(arch, None, **dict(arch_vars or {}))
    return plan.name, tuple(plan.in_shape)


def checkpoint_input(ckpt_path: str | None) -> tuple[int, ...] | None:
    """The input shape a checkpoint was trained at (validate/test/predict evaluate at it), if readable."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return None
    from ..checkpoints import load_file

    try:  # memory-mapped: only the header is read
        hparams = load_file(ckpt_path, mmap=True).get("hyper_parameters", {})
    except Exception:  # noqa: BLE001  an unreadable checkpoint is reported where Lightning loads it
        return None
    shape = hparams.get("input_shape") if isinstance(hparams, dict) else None
    return tuple(int(d) for d in shape) if shape else None


def _data_class(class_path: str):
    from jsonargparse._util import import_object  # noqa: PLC0415  (the same resolution jsonargparse uses)

    try:
        return import_object(class_path)
    except Exception:  # noqa: BLE001  an unknown class is jsonargparse's to report
        return None


def follow_net(data: Any, declared: tuple[int, ...]) -> None:
    """Fill the unset size arguments of the data's ``init_args`` (a jsonargparse Namespace) in place."""
    cls = _data_class(data.class_path) if data is not None and data.get("class_path") else None
    if cls is None or data.get("init_args") is None:
        return
    params = inspect.signature(cls.__init__).parameters
    init_args = data.init_args
    if "input_shape" in params and init_args.get("input_shape") is None:
        init_args["input_shape"] = list(declared)
    if "channels" in params and init_args.get("channels") is None:
        init_args["channels"] = declared[0]
    if "image_size" in params and init_args.get("image_size") is None:
        if len(declared) != 3 or declared[1] != declared[2]:
            shape = "x".join(map(str, declared))
            raise ArchError(f"--data.image_size: the architecture declares input {shape}, not a square image; "
                            "give --data.image_size")
        init_args["image_size"] = declared[-1]


def _short(class_path: str | None) -> str:
    return str(class_path or "").rsplit(".", 1)[-1]


def _config_files(args: Sequence[str]) -> list[str]:
    files, it = [], iter(args)
    for arg in it:
        if arg == "--config":
            files.append(next(it, ""))
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _given_on_command_line(args: Sequence[str]) -> set[str]:
    """``init_args`` names set with ``--data.NAME`` / ``--data.init_args.NAME``."""
    names = set()
    for arg in args:
        if arg.startswith("--data."):
            name = arg[len("--data."):].split("=", 1)[0]
            names.add(name[len("init_args."):] if name.startswith("init_args.") else name)
    return names


def drop_leaked(args: Sequence[str], data: Any) -> list[str]:
    """Reset to the chosen class's defaults the ``init_args`` that only a config file naming another
    data class set (and the command line did not); returns their names."""
    cls = _data_class(data.class_path) if data is not None and data.get("class_path") else None
    if cls is None or data.get("init_args") is None:
        return []
    chosen = _short(data.class_path)
    leaked, kept = set(), set()
    for file in _config_files(args):
        try:
            config = yaml.safe_load(Path(file).read_text())
        except (OSError, yaml.YAMLError):
            continue  # jsonargparse reports unreadable configs
        section = (config or {}).get("data") if isinstance(config, dict) else None
        if not isinstance(section, dict) or not isinstance(section.get("init_args"), dict):
            continue
        (kept if _short(section.get("class_path")) == chosen else leaked).update(section["init_args"])
    leaked -= kept | _given_on_command_line(args)
    params = inspect.signature(cls.__init__).parameters
    reset = []
    for name in sorted(leaked):
        if name in params and params[name].default is not inspect.Parameter.empty and name in data.init_args:
            data.init_args[name] = params[name].default
            reset.append(name)
    return reset


def adaptation_line(name: str, declared: tuple[int, ...], actual: Sequence[int], subcommand: str | None = "fit"
                    ) -> str | None:
    """"lenet5 declared 1x32x32, trained at 1x28x28", or None when the shapes agree."""
    actual = tuple(int(d) for d in actual)
    if actual == tuple(declared):
        return None
    verb = "trained" if subcommand in ("fit", None) else "run"
    return f"{name} declared {'x'.join(map(str, declared))}, {verb} at {'x'.join(map(str, actual))}"
