"""Variables and typing of argument values.

A value in a file is interpreted by the type of the place that finally consumes it, in the
scope where it was written:

* in a numeric place (``out: 16*k``, ``stride: 2 if i == 0 else 1``) a string is an arithmetic
  expression over variables;
* in any place, ``$name`` is the value of a variable (``block: $unit``, ``act: $act``);
* everything else is taken literally, so ``act: relu`` is the word "relu".

Variables are bound lazily (a binding is the raw value plus the scope it was written in), which
is what lets a composite block pass ``out: 2*w`` down to a parameter and have ``w`` looked up in
the caller's scope. Expressions are evaluated by ``expr``, which reads variables through here.
"""
from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, get_args, get_origin

from ..errors import ArchError, Loc, close_matches
from .expr import (BOOLEANS, MAX_LIST_ITEMS, Evaluator, Text, UnknownVariable, check_number, list_items, show_number,
                   word)

_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPR_REF = re.compile(r"^\$\{(.*)\}$", re.S)


@dataclass(frozen=True)
class Binding:
    """A variable's raw YAML value, the scope it must be evaluated in, and where it was written."""

    raw: Any
    scope: "Scope"
    loc: Loc | None
    # values already resolved, by (type, numeric): a variable read many times is evaluated once
    cache: dict = field(default_factory=dict, compare=False, repr=False)


class Scope:
    """Names visible at one place in a file: its own bindings, then its parent's."""

    def __init__(self, bindings: dict[str, Binding] | None = None, parent: "Scope | None" = None):
        self.bindings = dict(bindings or {})
        self.parent = parent

    def child(self, values: dict[str, Any], loc: Loc | None = None) -> "Scope":
        scope = Scope(parent=self)
        for name, value in values.items():
            scope.bindings[name] = value if isinstance(value, Binding) else Binding(value, scope, loc)
        return scope

    def lookup(self, name: str) -> Binding | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.bindings:
                return scope.bindings[name]
            scope = scope.parent
        return None

    def names(self) -> list[str]:
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            out += [n for n in scope.bindings if n not in out]
            scope = scope.parent
        return out


INPUT_NAMES = ("in_channels", "in_shape")  # bound in every scope: the model's or a composite's input


def _undefined(name: str, scope: "Scope") -> str:
    names = scope.names()
    if all(n in INPUT_NAMES for n in names):  # the input's names alone: no variable was declared
        near = close_matches(name, names)
        return (f"undefined variable '{name}'{near if near.startswith(' (') else ''} (no variables are defined here; "
                "declare it under 'vars:')")
    return f"undefined variable '{name}'{close_matches(name, names)}"


def _near(name: str, scope: "Scope") -> str:
    """' (did you mean 'width'?)' when ``name`` is close to a variable, else ''."""
    near = close_matches(name, scope.names())
    return near if near.startswith(" (") else ""


class _Reader:
    """How an expression written in ``scope`` reads a variable; ``stack`` holds the variables being
    resolved, to catch a cycle."""

    def __init__(self, scope: Scope, stack: tuple):
        self.scope, self.stack = scope, stack

    def __call__(self, name: str) -> Any:
        binding = self.scope.lookup(name)
        if binding is None:
            raise UnknownVariable(_undefined(name, self.scope))
        key = (name, id(binding))
        if key in self.stack:
            raise UnknownVariable(_cycle(self.stack, key))
        return _resolve_binding(binding, Any, binding.loc, f"variable '{name}'", self.stack + (key,), True)

    def missing(self, name: str) -> str | None:
        """Why ``name`` cannot be read here (checked before evaluating), or None."""
        return None if self.scope.lookup(name) is not None else _undefined(name, self.scope)


def _variables(scope: Scope, stack: tuple) -> Callable[[str], Any]:
    return _Reader(scope, stack)


def _resolve_binding(binding: Binding, tp: Any, loc: Loc | None, what: str, stack: tuple, numeric: bool) -> Any:
    """A variable's value, resolved once per (type, context) however often it is read."""
    try:
        key = (tp, numeric)
        hash(key)
    except TypeError:  # an unhashable type hint: no caching
        return resolve(binding.raw, tp, binding.scope, loc, what, stack, numeric)
    if key not in binding.cache:
        binding.cache[key] = resolve(binding.raw, tp, binding.scope, loc, what, stack, numeric)
    return binding.cache[key]


# ---------------------------------------------------------------------------------------------
# typed resolution


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _plural(args[0]) if args else "values"
        if origin is tuple and Ellipsis not in get_args(tp):
            return f"a list of {len(args)} {inner}"
        return f"a list of {inner}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _plural(tp: Any) -> str:
    """'integers' for int: the items of a list, for messages."""
    names = {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}
    return names.get(tp) or f"values of type {_type_name(tp)}"


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return show_number(value)
    if isinstance(value, (list, dict)):
        return type(value).__name__ if len(str(value)) > 40 else f"{value!r}"
    return repr(value)


def resolve(raw: Any, tp: Any, scope: Scope, loc: Loc | None, what: str, stack: tuple = (),
            numeric: bool = False) -> Any:
    """Turn a raw YAML value into a value of type ``tp`` (a type hint), evaluating as needed.

    ``numeric`` marks an expression context, where bare strings are themselves expressions.
    """
    if len(stack) > 50:
        raise ArchError(f"{what}: variables nested too deeply", loc)
    if isinstance(raw, str) and not isinstance(raw, Text):  # Text: a value computed already, not source
        ref = _REF.match(raw.strip())
        if ref:
            name = ref.group(1)
            binding = scope.lookup(name)
            if binding is None:
                raise ArchError(f"{what}: {_undefined(name, scope)}", loc)
            key = (name, id(binding))
            if key in stack:
                raise ArchError(f"{what}: {_cycle(stack, key)}", loc)
            return _resolve_binding(binding, tp, binding.loc or loc, what, stack + (key,), numeric)
        full = _EXPR_REF.match(raw.strip())
        if full:  # `${...}`: an expression in any place, its value then checked like a written one
            value = Evaluator(full.group(1), loc, what, _variables(scope, _guard(stack, raw, loc, what))).run()
            return plain_text(value) if tp is Any and not numeric else resolve(value, tp, scope, loc, what, stack)
    origin = get_origin(tp)
    if tp is Any:
        if isinstance(raw, str) and numeric and not isinstance(raw, Text):
            if _WORD.match(raw.strip()) and scope.lookup(raw.strip()) is None and raw.strip() not in BOOLEANS:
                # a variable whose value is a word (`vars: {act: relu}`, read in `"${act if deep else 'gelu'}"`)
                return word(raw.strip(), _near(raw.strip(), scope))
            return Evaluator(raw, loc, what, _variables(scope, _guard(stack, raw, loc, what))).run()
        if isinstance(raw, list):
            value = [resolve(v, Any, scope, _item_loc(raw, i, loc), what, stack, numeric) for i, v in enumerate(raw)]
            if list_items(value) > MAX_LIST_ITEMS:
                raise ArchError(f"{what}: a list of more than {MAX_LIST_ITEMS} values", loc)
            return value
        return raw
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if raw is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return resolve(raw, option, scope, loc, what, stack, numeric)
            except ArchError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ArchError(f"{what}: expected {_type_name(tp)}, got {describe(raw)}", loc)
    if origin is Literal:
        choices = get_args(tp)
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in choices:
            raise ArchError(f"{what}: expected {_type_name(tp)}, got {describe(raw)}"
                            f"{close_matches(value, choices) if isinstance(value, str) else ''}", loc)
        return value
    if origin in (list, tuple):
        args = get_args(tp)
        if isinstance(raw, str) and not isinstance(raw, Text):  # e.g. "widths" in a numeric context, or "[k, 2*k]"
            raw = Evaluator(raw, loc, what, _variables(scope, _guard(stack, raw, loc, what))).run()
        if not isinstance(raw, list):
            raise ArchError(f"{what}: expected {_type_name(tp)}, got {describe(raw)}", loc)
        fixed = origin is tuple and Ellipsis not in args
        if fixed and len(raw) != len(args):
            raise ArchError(f"{what}: expected {_type_name(tp)}, got {len(raw)} values", loc)
        item_types = args if fixed else [args[0] if args else Any] * len(raw)
        items = [resolve(v, t, scope, _item_loc(raw, i, loc), f"{what}[{i}]", stack, numeric)
                 for i, (v, t) in enumerate(zip(raw, item_types))]
        return tuple(items) if origin is tuple else items
    if tp in (int, float):
        value = raw
        if isinstance(raw, str) and not isinstance(raw, Text):
            value = Evaluator(raw, loc, what, _variables(scope, _guard(stack, raw, loc, what))).run()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = f"{raw.strip()} = {describe(value)}" if value is not raw else describe(raw)
            # a word close to a variable's name: most likely a misspelt variable
            raise ArchError(f"{what}: expected {_type_name(tp)}, got {shown}{getattr(value, 'hint', '')}", loc)
        problem = check_number(value)
        if problem:
            raise ArchError(f"{what}: {problem}", loc)
        if tp is int:
            if isinstance(value, float):
                if not value.is_integer():
                    shown = f"{raw} = {value:g}" if isinstance(raw, str) else f"{value:g}"
                    raise ArchError(f"{what}: expected an integer, got {shown}", loc)
                value = int(value)
            return value
        return float(value)
    if tp is bool:
        value = raw
        if isinstance(raw, str) and not isinstance(raw, Text):  # a condition: `bias: "norm == 'none'"`
            value = Evaluator(raw, loc, what, _variables(scope, _guard(stack, raw, loc, what))).run()
        if isinstance(value, bool):
            return value
        shown = f"{raw.strip()} = {describe(value)}" if value is not raw else describe(raw)
        raise ArchError(f"{what}: expected true or false, got {shown}{getattr(value, 'hint', '')}", loc)
    if tp is str:
        if isinstance(raw, str):
            return raw.strip()
        raise ArchError(f"{what}: expected a string, got {describe(raw)}", loc)
    if tp is dict or origin is dict:
        if isinstance(raw, dict):
            return raw
        raise ArchError(f"{what}: expected a mapping, got {describe(raw)}", loc)
    raise TypeError(f"unsupported parameter type {tp!r}")  # a bug in a block, not a user mistake


def plain_text(value: Any) -> Any:
    """An evaluated value with its strings plain ``str`` again, for a place of any type."""
    if isinstance(value, list):
        return [plain_text(v) for v in value]
    return str(value) if isinstance(value, Text) else value


def _cycle(stack: tuple, key: tuple) -> str:
    names = [n for n, _ in stack[stack.index(key):]] + [key[0]]
    return "variables refer to each other in a cycle: " + " -> ".join(names)


def _item_loc(raw: Any, index: int, default: Loc | None) -> Loc | None:
    return raw.loc_of(index) if hasattr(raw, "loc_of") else default


def _guard(stack: tuple, raw: Any, loc: Loc | None, what: str) -> tuple:
    if len(stack) > 50:
        raise ArchError(f"{what}: variables nested too deeply", loc)
    return stack


def type_hints(func: Any) -> dict[str, Any]:
    return typing.get_type_hints(func)
