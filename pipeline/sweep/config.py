"""Fit configs of a sweep's trials: the base config, then the fixed options, the variant's options and
the point's, set as jsonargparse reads dotted options."""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError
from ..language.loader import check_aliases
from .spec import VARIANT, Spec


def set_option(config: dict, name: str, value: Any) -> None:
    """Set dotted option ``name`` in a fit config, as jsonargparse reads it: a key under a
    ``class_path``/``init_args`` mapping (``data.batch_size``) is one of its ``init_args``."""
    node = config
    parts = name.split(".")
    for part in parts[:-1]:
        if isinstance(node, dict) and "class_path" in node and part not in ("class_path", "init_args", "dict_kwargs"):
            node = node.setdefault("init_args", {})
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if "class_path" in node and parts[-1] not in ("class_path", "init_args", "dict_kwargs"):
        node = node.setdefault("init_args", {})
    node[parts[-1]] = copy.deepcopy(value)


def get_option(config: dict, name: str, default: Any = None) -> Any:
    node: Any = config
    for part in name.split("."):
        if isinstance(node, dict) and "class_path" in node and part not in node:
            node = node.get("init_args") or {}
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def base_config(spec: Spec) -> dict:
    text = spec.config.read_text()
    check_aliases(text, str(spec.config))
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ArchError(f"{spec.config}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(config, dict):
        raise ArchError(f"{spec.config}: expected a fit config (a mapping with trainer:, model:, data:)")
    config.pop("ckpt_path", None)
    return config


def trial_config(spec: Spec, params: dict[str, Any], root: Path | None = None) -> dict:
    """The complete fit config of one point of the space: base, then fixed options, then the variant's
    options (``variants:``, chosen by the point's ``variant``), then the point's other options."""
    config = base_config(spec)
    variant = spec.variants.get(params.get(VARIANT), {}) if spec.variants else {}
    rest = {k: v for k, v in params.items() if k != VARIANT}
    for name, value in itertools.chain(spec.fixed.items(), variant.items(), rest.items()):
        set_option(config, name, value)
    if root is not None:
        set_option(config, "trainer.default_root_dir", str(root))
    return config


def first_point(spec: Spec) -> dict[str, Any]:
    return {d.name: d.first() for d in spec.space}
