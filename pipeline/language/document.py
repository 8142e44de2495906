"""Reading an architecture document: the file (or mapping), following ``extends:`` and merging the
derived file over its base."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ArchError, Loc
from .loader import LocDict, load_yaml_file, load_yaml_text
from .values import close_matches, describe

TOP_KEYS = ("name", "description", "extends", "input", "vars", "defaults", "blocks", "nodes", "output", "init",
            "norm_momentum")
MAX_EXTENDS = 16


def _check_keys(mapping: LocDict, allowed, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ArchError(f"{what}: unknown key '{key}'{close_matches(key, allowed)}", mapping.key_loc(key))


def load_document(source: str | Path | Mapping, chain: tuple[str, ...] = ()) -> LocDict:
    """Load an architecture (file path or mapping), following ``extends:`` and merging."""
    if isinstance(source, Mapping):
        text = yaml.safe_dump(_plain(source), sort_keys=False)
        doc, base, file = load_yaml_text(text, "<mapping>"), Path.cwd(), "<mapping>"
    else:
        path = Path(source)
        doc, base, file = load_yaml_file(path), path.parent, str(path)
        chain = chain + (str(path.resolve()),)
    if not isinstance(doc, dict):
        raise ArchError(f"an architecture file must be a mapping with 'input' and 'nodes', got {describe(doc)}",
                        getattr(doc, "loc", None) or Loc(file, 1, 1))
    _check_keys(doc, TOP_KEYS, "architecture")
    if "extends" not in doc:
        return doc
    parent_ref = doc["extends"]
    if not isinstance(parent_ref, str):
        raise ArchError("'extends' must be a file path", doc.loc_of("extends"))
    parent_path = (base / parent_ref)
    if str(parent_path.resolve()) in chain:
        raise ArchError(f"'extends' forms a cycle: {parent_ref} is already being loaded", doc.loc_of("extends"))
    if len(chain) >= MAX_EXTENDS:
        raise ArchError(f"'extends' is nested more than {MAX_EXTENDS} deep", doc.loc_of("extends"))
    if not parent_path.is_file():
        raise ArchError(f"'extends' file not found: {parent_path}", doc.loc_of("extends"))
    parent = load_document(parent_path, chain)
    return _merge(parent, doc)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merge(parent: LocDict, child: LocDict) -> LocDict:
    """Child keys win; ``vars``, ``blocks`` and ``defaults`` merge by name (defaults per block)."""
    merged = _copy(parent)
    for key, value in child.items():
        if key == "extends":
            continue
        if key in ("vars", "blocks", "defaults") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            inner = _copy(merged[key])
            for name, item in value.items():
                if key == "defaults" and isinstance(item, dict) and isinstance(inner.get(name), dict):
                    item = _update(_copy(inner[name]), item)
                _set(inner, name, item, value)
            value = inner
        _set(merged, key, value, child)
    return merged


def _copy(d: LocDict) -> LocDict:
    out = LocDict(d)
    out.loc, out.key_locs, out.value_locs = d.loc, dict(d.key_locs), dict(d.value_locs)
    return out


def _update(target: LocDict, source: LocDict) -> LocDict:
    for key, value in source.items():
        _set(target, key, value, source)
    return target


def _set(target: LocDict, key, value, source: LocDict) -> None:
    target[key] = value
    target.key_locs[key], target.value_locs[key] = source.key_loc(key), source.loc_of(key)
