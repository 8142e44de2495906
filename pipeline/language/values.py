"""Variables, the safe arithmetic evaluator, and typing of argument values.

A value in a file is interpreted by the type of the place that finally consumes it, in the
scope where it was written:

* in a numeric place (``out: 16*k``, ``stride: 2 if i == 0 else 1``) a string is an arithmetic
  expression over variables;
* in any place, ``$name`` is the value of a variable (``block: $unit``, ``act: $act``);
* everything else is taken literally, so ``act: relu`` is the word "relu".

Variables are bound lazily (a binding is the raw value plus the scope it was written in), which
is what lets a composite block pass ``out: 2*w`` down to a parameter and have ``w`` looked up in
the caller's scope. Expressions are parsed with :mod:`ast` and walked over a short allow-list of
node types; nothing is ever executed.
"""
from __future__ import annotations

import ast
import difflib
import math
import operator
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from ..blocks.base import make_divisible
from ..errors import ArchError, Loc

_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR_REF = re.compile(r"^\$\{(.*)\}$", re.S)
MAX_EXPR_CHARS = 300
MAX_MAGNITUDE = 10**15  # larger numbers are never a sensible width, depth or kernel
MAX_ROUND_DIGITS = 64  # round(x, n): 10**n is computed, so |n| must stay small
MAX_LIST_ITEMS = 100_000  # values in one evaluated list, nested lists included


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


def close_matches(word: str, options) -> str:
    """' (did you mean 'x'?)' or a list of the options, for error messages ('' when there are none)."""
    options = sorted(str(o) for o in options)
    near = difflib.get_close_matches(str(word), options, n=3, cutoff=0.6)
    if near:
        return " (did you mean " + " or ".join(f"'{n}'" for n in near) + "?)"
    return f"; known: {', '.join(options)}" if 0 < len(options) <= 40 else ""


def _undefined(name: str, scope: "Scope") -> str:
    names = scope.names()
    if not names:
        return f"undefined variable '{name}' (no variables are defined here; declare it under 'vars:')"
    return f"undefined variable '{name}'{close_matches(name, names)}"


def show_number(value: int | float) -> str:
    """A number for a message; one too long to print (Python refuses > 4300 digits) by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"{'-' if value < 0 else ''}a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


def check_number(value: Any) -> str | None:
    """Why ``value`` (a number) is unusable, or None: infinite, not a number, or beyond MAX_MAGNITUDE."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if abs(value) > MAX_MAGNITUDE:
        return f"{show_number(value)} is out of range (the magnitude must be at most 10**15)"
    return None


def _list_items(value: Any) -> int:
    """Number of values in a (nested) list, counting up to just past MAX_LIST_ITEMS."""
    count, stack = 0, [value]
    while stack and count <= MAX_LIST_ITEMS:
        item = stack.pop()
        count += 1
        if isinstance(item, list):
            stack.extend(item)
    return count


def _round(value: int | float, ndigits: int | None = None) -> int | float:
    if ndigits is not None and not isinstance(ndigits, bool) and isinstance(ndigits, int) \
            and abs(ndigits) > MAX_ROUND_DIGITS:
        raise ValueError(f"the number of digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}, "
                         f"got {show_number(ndigits)}")
    return round(value, ndigits)


# ---------------------------------------------------------------------------------------------
# arithmetic


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_FUNCS = {"min": min, "max": max, "round": _round, "int": int, "abs": abs, "float": float,
          "make_divisible": make_divisible}


class _Evaluator:
    def __init__(self, text: str, scope: Scope, loc: Loc | None, stack: tuple, what: str):
        self.text, self.scope, self.loc, self.stack, self.what = text, scope, loc, stack, what

    def fail(self, message: str) -> ArchError:
        return ArchError(f"{self.what}: in expression '{self.text}': {message}", self.loc)

    def run(self) -> Any:
        if len(self.text) > MAX_EXPR_CHARS:
            raise self.fail(f"longer than {MAX_EXPR_CHARS} characters")
        try:
            tree = ast.parse(self.text.replace("$", "").strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise self.fail("not a valid arithmetic expression") from None
        try:
            return self.visit(tree.body)
        except RecursionError:
            raise self.fail("nested too deeply") from None

    def check(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
                raise self.fail(f"result {show_number(value)} is out of range (the magnitude must be at most 10**15)")
        elif isinstance(value, complex):  # (-8) ** 0.5
            raise self.fail("the result is not a real number")
        elif isinstance(value, list) and _list_items(value) > MAX_LIST_ITEMS:
            raise self.fail(f"a list of more than {MAX_LIST_ITEMS} values")
        return value

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return self.check(node.value)
        if isinstance(node, ast.Name):
            value = self.name(node.id)
            return value if isinstance(value, list) else self.check(value)  # lists were checked when built
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.number(node.left), self.number(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > MAX_MAGNITUDE):
                raise self.fail("exponent out of range")
            try:
                return self.check(_BINOPS[type(node.op)](left, right))
            except ZeroDivisionError:
                raise self.fail("division by zero") from None
            except (OverflowError, ValueError):  # float overflow; int ** huge: too many digits to build
                raise self.fail("result out of range") from None
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self.check(_UNARY[type(node.op)](self.number(node.operand)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            func = _FUNCS.get(node.func.id)
            if func is None:
                raise self.fail(f"unknown function '{node.func.id}'; allowed: {', '.join(_FUNCS)}")
            args = [self.visit(a) for a in node.args]
            if len(args) == 1 and isinstance(args[0], list) and func in (min, max):
                args = args[0]
            if not args or not all(isinstance(a, (int, float)) for a in args):
                raise self.fail(f"{node.func.id}() needs numbers")
            try:
                return self.check(func(*args))
            except ZeroDivisionError:
                raise self.fail(f"{node.func.id}(): division by zero") from None
            except (TypeError, ValueError, OverflowError) as err:
                raise self.fail(f"{node.func.id}(): {err}") from None
        if isinstance(node, ast.Subscript):
            seq, index = self.visit(node.value), self.visit(node.slice)
            if not isinstance(seq, list):
                raise self.fail("only a list can be indexed")
            if not isinstance(index, int) or isinstance(index, bool):
                raise self.fail("a list index must be an integer")
            if not -len(seq) <= index < len(seq):
                raise self.fail(f"index {index} is out of range for a list of {len(seq)}")
            return seq[index]
        if isinstance(node, (ast.List, ast.Tuple)):
            return self.check([self.visit(e) for e in node.elts])
        if isinstance(node, ast.IfExp):  # `2 if i == 0 else 1`: the first block of a stage differs
            return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left = self.number(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.number(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        raise self.fail(f"'{ast.unparse(node)}' is not allowed (only numbers, variables, + - * / // % **, "
                        "comparisons, 'a if cond else b', parentheses, list indexing and min/max/round/int/abs/make_divisible)")

    def number(self, node: ast.AST) -> int | float:
        value = self.visit(node)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"'{ast.unparse(node)}' is not a number")
        return value

    def name(self, name: str) -> Any:
        binding = self.scope.lookup(name)
        if binding is None:
            raise self.fail(_undefined(name, self.scope))
        key = (name, id(binding))
        if key in self.stack:
            raise self.fail(_cycle(self.stack, key))
        return _resolve_binding(binding, Any, binding.loc, f"variable '{name}'", self.stack + (key,), True)


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
    if isinstance(raw, str):
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
        if full:
            raw, numeric = full.group(1), True
    origin = get_origin(tp)
    if tp is Any:
        if isinstance(raw, str) and numeric:
            return _Evaluator(raw, scope, loc, _guard(stack, raw, loc, what), what).run()
        if isinstance(raw, list):
            value = [resolve(v, Any, scope, _item_loc(raw, i, loc), what, stack, numeric) for i, v in enumerate(raw)]
            if _list_items(value) > MAX_LIST_ITEMS:
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
        if isinstance(raw, str):  # e.g. "widths" in a numeric context, or "[k, 2*k]"
            raw = _Evaluator(raw, scope, loc, _guard(stack, raw, loc, what), what).run()
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
        if isinstance(raw, str):
            value = _Evaluator(raw, scope, loc, _guard(stack, raw, loc, what), what).run()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = f"{raw.strip()} = {describe(value)}" if value is not raw else describe(raw)
            raise ArchError(f"{what}: expected {_type_name(tp)}, got {shown}", loc)
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
        if isinstance(raw, bool):
            return raw
        raise ArchError(f"{what}: expected true or false, got {describe(raw)}", loc)
    if tp is str:
        if isinstance(raw, str):
            return raw.strip()
        raise ArchError(f"{what}: expected a string, got {describe(raw)}", loc)
    if tp is dict or origin is dict:
        if isinstance(raw, dict):
            return raw
        raise ArchError(f"{what}: expected a mapping, got {describe(raw)}", loc)
    raise TypeError(f"unsupported parameter type {tp!r}")  # a bug in a block, not a user mistake


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
