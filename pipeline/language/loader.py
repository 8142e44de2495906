"""Safe YAML loading that remembers where every value came from.

Architecture files are untrusted: only YAML's safe types are constructed (a ``!!python/...``
tag is an error), duplicate keys are an error instead of silently keeping the last, and the
size of the document *after* alias expansion is bounded, so a "billion laughs" file fails at
once instead of exhausting memory when the builder walks it.
"""
from __future__ import annotations

import re

from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError, Loc

# Nodes in the fully alias-expanded document. The largest zoo file has a few thousand.
MAX_EXPANDED_NODES = 200_000
MAX_FILE_BYTES = 1 << 20
MAX_INT_CHARS = 100  # an integer literal longer than this is no width or depth (and int() refuses > 4300 digits)


class LocDict(dict):
    """A mapping from YAML that knows the location of itself, of each key and of each value."""

    loc: Loc
    key_locs: dict
    value_locs: dict

    def loc_of(self, key: Any) -> Loc:
        return self.value_locs.get(key, self.loc)

    def key_loc(self, key: Any) -> Loc:
        return self.key_locs.get(key, self.loc)


class LocList(list):
    """A sequence from YAML that knows the location of itself and of each item."""

    loc: Loc
    item_locs: list

    def loc_of(self, index: int) -> Loc:
        return self.item_locs[index] if 0 <= index < len(self.item_locs) else self.loc


def _loc(file: str, mark: yaml.Mark) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


OCTAL_11 = re.compile(r"[-+]?0[0-7]+")  # octal to YAML 1.1, decimal to YAML 1.2


def portability(node: yaml.ScalarNode) -> str | None:
    """Why a plain scalar means one thing to PyYAML (YAML 1.1) and another to editors (YAML 1.2), else None."""
    text, tag = node.value, node.tag
    if tag == "tag:yaml.org,2002:bool" and text.lower() not in ("true", "false"):
        return f"'{text}' is a boolean to PyYAML (YAML 1.1) but text to editors (YAML 1.2): write true or false"
    digits = text.replace("_", "")
    if tag == "tag:yaml.org,2002:int" and OCTAL_11.fullmatch(digits) and int(digits, 8) != int(digits, 10):
        return (f"'{text}' is the octal number {int(digits, 8)} to PyYAML (YAML 1.1) but {int(digits, 10)} to "
                "editors (YAML 1.2): write the number without a leading 0")
    if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in text:
        return (f"'{text}' is a base-60 number to PyYAML (YAML 1.1) but text to editors (YAML 1.2): write the "
                "number, or quote the text")
    return None


def _make_loader(file: str) -> type:
    class Loader(yaml.SafeLoader):
        def construct_object(self, node, deep=False):
            if isinstance(node, yaml.ScalarNode) and node.style is None:  # plain: read by the resolvers
                problem = portability(node)
                if problem:
                    raise ArchError(problem, _loc(file, node.start_mark))
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, TypeError, OverflowError) as err:  # e.g. a date 2024-13-01: say where
                raise ArchError(f"invalid YAML value {node.value!r}: {err}" if isinstance(node, yaml.ScalarNode)
                                else f"invalid YAML value: {err}", _loc(file, node.start_mark)) from None

        def construct_yaml_int(self, node):
            if len(str(node.value)) > MAX_INT_CHARS:
                raise ArchError(f"integer with {len(str(node.value))} characters is out of range",
                                _loc(file, node.start_mark))
            return super().construct_yaml_int(node)

        def construct_mapping(self, node, deep=False):  # noqa: D401 - PyYAML hook
            if not isinstance(node, yaml.MappingNode):
                raise ArchError("expected a mapping", _loc(file, node.start_mark))
            self.flatten_mapping(node)  # resolves `<<:` merge keys
            result = LocDict()
            result.loc = _loc(file, node.start_mark)
            result.key_locs, result.value_locs = {}, {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise ArchError("a mapping key must be a plain value", _loc(file, key_node.start_mark))
                if key in result:
                    first = result.key_locs[key]
                    raise ArchError(
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        _loc(file, key_node.start_mark),
                    )
                result[key] = self.construct_object(value_node, deep=True)
                result.key_locs[key] = _loc(file, key_node.start_mark)
                result.value_locs[key] = _loc(file, value_node.start_mark)
            return result

        def construct_sequence(self, node, deep=False):
            result = LocList(self.construct_object(child, deep=True) for child in node.value)
            result.loc = _loc(file, node.start_mark)
            result.item_locs = [_loc(file, child.start_mark) for child in node.value]
            return result

    Loader.add_constructor("tag:yaml.org,2002:map", lambda ld, n: ld.construct_mapping(n))
    Loader.add_constructor("tag:yaml.org,2002:seq", lambda ld, n: ld.construct_sequence(n))
    Loader.add_constructor("tag:yaml.org,2002:int", lambda ld, n: ld.construct_yaml_int(n))
    return Loader


def _expanded_size(root: yaml.Node, file: str) -> int:
    """Number of nodes the document has once aliases are expanded (iterative, memoized)."""
    memo: dict[int, int] = {}
    visiting: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in memo:
            continue
        if not done and key in visiting:
            raise ArchError("a value contains itself through an alias (recursive YAML)", _loc(file, node.start_mark))
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            memo[key] = min(1 + sum(memo[id(c)] for c in children), 1 << 62)
            continue
        visiting.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def unacceptable_character(err: yaml.reader.ReaderError, text: str, file: str) -> ArchError:
    before = text[: err.position]
    line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    char = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
    return ArchError(f"invalid YAML: unacceptable control character {char}; YAML text allows tab, newline and "
                     "printable characters only", Loc(file, line, col))


def check_aliases(text: str, file: str) -> None:
    """Refuse YAML that any other reader (jsonargparse for configs, options) would expand past the
    limit: only the node graph is built (aliases stay references), so a bomb costs its own size."""
    try:  # the reader checks the characters when it is made
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as err:
        raise unacceptable_character(err, text, file) from None
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return  # not YAML at all: the reader that needs it says what is wrong
    finally:
        loader.dispose()
    if root is not None and _expanded_size(root, file) > MAX_EXPANDED_NODES:
        raise ArchError(f"the document expands to more than {MAX_EXPANDED_NODES} values through aliases "
                        "(is it an alias bomb?)", _loc(file, root.start_mark))


def load_yaml_text(text: str, file: str = "<string>") -> Any:
    """Parse YAML text safely into LocDict/LocList/scalars; errors become ArchError with a location."""
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise ArchError(f"file is larger than {MAX_FILE_BYTES // 1024} KiB", Loc(file, 1, 1))
    try:
        loader = _make_loader(file)(text)
    except yaml.reader.ReaderError as err:  # a control character: say where it is
        raise unacceptable_character(err, text, file) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise ArchError("the file is empty; expected a mapping with 'input' and 'nodes'", Loc(file, 1, 1))
        size = _expanded_size(root, file)
        if size > MAX_EXPANDED_NODES:
            raise ArchError(
                f"the document expands to more than {MAX_EXPANDED_NODES} values through aliases "
                "(is it an alias bomb?)",
                _loc(file, root.start_mark),
            )
        return loader.construct_document(root)
    except ArchError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = problem.replace("could not determine a constructor for the tag", "tag not allowed:")
            problem += " (only plain YAML values are allowed in architecture files)"
        if "'\\t'" in problem:
            problem += " (indent with spaces: YAML does not allow a tab here)"
        if "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
            opened = err.context_mark
            if opened is not None and ("got ':'" in problem or "<stream end>" in problem):
                # a new key (or the end) where an entry should have ended: a comma or the bracket is missing
                bracket = "{" if "'}'" in problem else "["
                problem += (f" (a ',' between entries, or the closing bracket of the '{bracket}' opened at line "
                            f"{opened.line + 1}, column {opened.column + 1}, is missing)")
            else:
                problem += (" (inside {...} or [...], quote a value that contains [ ] { } or a comma, "
                            "e.g. \"depths[0]\")")
        loc = _loc(file, mark) if mark else Loc(file, 1, 1)
        raise ArchError(f"invalid YAML: {problem}", loc) from None
    except yaml.YAMLError as err:
        raise ArchError(f"invalid YAML: {' '.join(str(err).split())}", Loc(file, 1, 1)) from None
    except RecursionError:
        raise ArchError("the document is nested too deeply", Loc(file, 1, 1)) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    path = Path(path)
    # a regular file of bounded size: /dev/zero would be read until memory runs out, a named pipe
    # would block until something writes to it
    if path.exists() and not path.is_dir() and not path.is_file():
        raise ArchError(f"{path}: not a regular file (a device, a pipe or a socket); expected an architecture file")
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise ArchError(f"file is larger than {MAX_FILE_BYTES // 1024} KiB", Loc(str(path), 1, 1))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchError(f"architecture file not found: {path}") from None
    except IsADirectoryError:
        raise ArchError(f"expected an architecture file, got a directory: {path}") from None
    except UnicodeDecodeError as err:
        raise ArchError(f"file is not UTF-8 text ({err.reason} at byte {err.start})", Loc(str(path), 1, 1)) from None
    except OSError as err:
        raise ArchError(f"cannot read architecture file {path}: {err.strerror}") from None
    return load_yaml_text(text, str(path))
