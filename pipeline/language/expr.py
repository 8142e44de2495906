"""The safe arithmetic evaluator: an expression is parsed with :mod:`ast` and walked over a short
allow-list of node types; nothing is ever executed.

It knows nothing of scopes: a variable's value comes from the ``variable`` function it is given
(``values`` resolves it, lazily and in the scope where it was written), which raises
:class:`UnknownVariable` to have the expression report a name it cannot use.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from ..errors import ArchError, Loc
from ..blocks.base import make_divisible

MAX_EXPR_CHARS = 300
MAX_MAGNITUDE = 10**15  # larger numbers are never a sensible width, depth or kernel
MAX_ROUND_DIGITS = 64  # round(x, n): 10**n is computed, so |n| must stay small
MAX_LIST_ITEMS = 100_000  # values in one evaluated list, nested lists included


class UnknownVariable(Exception):
    """A name an expression cannot use (undefined, or part of a cycle); the message says why."""


class Text(str):
    """A string that is a value (a string literal, or a variable's word), never read again as an
    expression. ``hint`` is set on a word that names no variable (``vars: {act: relu}``) and is close
    to one (' (did you mean 'width'?)'): if it is used as a number after all, the message says so."""

    hint: str = ""


def word(text: str, hint: str) -> Text:
    value = Text(text)
    value.hint = hint
    return value


def _unquoted_dollars(text: str) -> str:
    """``text`` without the ``$`` of ``$name`` references (a ``$`` inside a string literal stays)."""
    out, quote = [], None
    for char in text:
        if quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
        if char != "$" or quote is not None:
            out.append(char)
    return "".join(out)


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


def describe_value(value: Any) -> str:
    """A non-number value, for a message: 'the word 'relu'', 'a list of 3'."""
    if isinstance(value, str):
        return f"the word {str(value)!r}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _word(node: ast.AST, value: str) -> str:
    """"'act' is the word 'relu'", or "'relu' is a word" for a literal."""
    shown = ast.unparse(node)
    return f"{shown} is a word" if repr(str(value)) == shown else f"'{shown}' is {describe_value(value)}"


def list_items(value: Any) -> int:
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
_ORDER = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}  # numbers only
_EQUAL = {ast.Eq: operator.eq, ast.NotEq: operator.ne}  # any two values: `act == 'relu'`
_MEMBER = {ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}  # `act in ['relu', 'gelu']`
_COMPARE = {**_ORDER, **_EQUAL, **_MEMBER}
BOOLEANS = {"true": True, "false": False, "True": True, "False": False}  # YAML's spelling and Python's
_FUNCS = {"min": min, "max": max, "round": _round, "int": int, "abs": abs, "float": float,
          "make_divisible": make_divisible}


SHOWN = 80  # characters of an expression quoted in an error


class Evaluator:
    """Evaluates ``text``; messages start with ``what`` and point at ``loc``."""

    def __init__(self, text: str, loc: Loc | None, what: str, variable: Callable[[str], Any]):
        self.text, self.loc, self.what, self.variable = text, loc, what, variable

    def fail(self, message: str) -> ArchError:
        # an error is one readable line: a long expression is shown by its start (the location says where)
        shown = self.text if len(self.text) <= SHOWN else self.text[:SHOWN] + f"... ({len(self.text)} characters)"
        return ArchError(f"{self.what}: in expression '{shown}': {message}", self.loc)

    def run(self) -> Any:
        if len(self.text) > MAX_EXPR_CHARS:
            raise self.fail(f"longer than {MAX_EXPR_CHARS} characters")
        try:
            tree = ast.parse(_unquoted_dollars(self.text).strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise self.fail("not a valid arithmetic expression") from None
        try:
            self.check_names(tree)
            return self.visit(tree.body)
        except RecursionError:
            raise self.fail("nested too deeply") from None

    def check_names(self, tree: ast.AST) -> None:
        """Every variable named anywhere must exist, also in a branch not taken (`deep and stirde == 1`
        with deep false): a misspelling is one in every configuration."""
        missing = getattr(self.variable, "missing", None)
        if missing is None:
            return
        functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and id(node) not in functions and node.id not in BOOLEANS:
                problem = missing(node.id)
                if problem:
                    raise self.fail(problem)

    def check(self, value: Any) -> Any:
        if isinstance(value, str):
            return value if isinstance(value, Text) else Text(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
                raise self.fail(f"result {show_number(value)} is out of range (the magnitude must be at most 10**15)")
        elif isinstance(value, complex):  # (-8) ** 0.5
            raise self.fail("the result is not a real number")
        elif isinstance(value, list) and list_items(value) > MAX_LIST_ITEMS:
            raise self.fail(f"a list of more than {MAX_LIST_ITEMS} values")
        return value

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool, str):
            return self.check(node.value)  # a string literal: a block type or activation chosen by a condition
        if isinstance(node, ast.Name):
            if node.id in BOOLEANS:  # no variable can be named so: `vars:` keys true/false are booleans in YAML
                return BOOLEANS[node.id]
            try:
                value = self.variable(node.id)
            except UnknownVariable as err:
                raise self.fail(str(err)) from None
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
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self.truth(node.operand)
        if isinstance(node, ast.BoolOp):  # short-circuit: `stride == 1 and in_channels == out`
            for operand in node.values:
                if self.truth(operand) == isinstance(node.op, ast.Or):
                    return isinstance(node.op, ast.Or)
            return not isinstance(node.op, ast.Or)
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
            return self.visit(node.body) if self.truth(node.test) else self.visit(node.orelse)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left_node, left = node.left, self.visit(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.visit(right_node)
                if type(op) in _ORDER:
                    self.numeric(left, left_node), self.numeric(right, right_node)
                elif type(op) in _MEMBER:
                    if not isinstance(right, list):
                        raise self.fail(f"'{ast.unparse(right_node)}' is not a list (in / not in look a value up "
                                        "in a list)")
                    for item in right:
                        self.comparable(left, left_node, item, right_node)
                else:
                    self.comparable(left, left_node, right, right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left_node, left = right_node, right
            return True
        raise self.fail(f"'{ast.unparse(node)}' is not allowed (only numbers, 'strings', true/false, variables, "
                        "+ - * / // % **, comparisons, in, and/or/not, 'a if cond else b', parentheses, list indexing "
                        "and min/max/round/int/abs/make_divisible)")

    def truth(self, node: ast.AST) -> bool:
        """A condition: true/false, or a number (0 is false). A word or a list is refused rather than
        taken as true (`vars: {use_se: ture}` must not switch a branch on)."""
        value = self.visit(node)
        if not isinstance(value, (bool, int, float)):
            raise self.fail(f"'{ast.unparse(node)}' is {describe_value(value)}, not a condition (true or false)")
        return bool(value)

    def comparable(self, left: Any, left_node: ast.AST, right: Any, right_node: ast.AST) -> None:
        """A word compared with a number or true/false is a mistake, not false: `use_se == true` with
        `use_se: ture` must not quietly switch a branch off."""
        if isinstance(left, str) == isinstance(right, str):
            return
        (node, value), other = ((left_node, left), right) if isinstance(left, str) else ((right_node, right), left)
        shown = "true" if other is True else "false" if other is False else describe_value(other) \
            if isinstance(other, list) else show_number(other) if isinstance(other, (int, float)) else repr(other)
        raise self.fail(f"{_word(node, value)}, compared with {shown}: a word equals only a word"
                        f"{getattr(value, 'hint', '')}")

    def number(self, node: ast.AST) -> int | float:
        return self.numeric(self.visit(node), node)

    def numeric(self, value: Any, node: ast.AST) -> int | float:
        """``value`` (of the expression ``node``) if it is a number; else why it had to be one."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = ast.unparse(node)
            if isinstance(value, str):  # a word: a misspelt variable, most likely, when it is close to one
                raise self.fail(f"{_word(node, value)}, not a number{getattr(value, 'hint', '')}")
            raise self.fail(f"'{shown}' is not a number")
        return value
