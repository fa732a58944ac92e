"""The pure built-in tools: ``calculator`` and ``current_time``.

The calculator parses arithmetic with its own tokenizer and recursive-descent
parser and evaluates the tree itself; no Python code is ever compiled or
evaluated, so names, attributes, strings, subscripts and calls other than the
listed functions are syntax errors. Operators and precedence follow Python:
``**`` binds tighter than unary minus and is right-associative
(``-2**2 == -4``, ``2**3**2 == 512``). Integers stay exact; ``round`` rounds
half away from zero on the decimal value (``round(2.675, 2) == 2.68``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from agenthq.tools.registry import Tool, ToolContext, ToolError

MAX_EXPRESSION_CHARS = 500
MAX_NESTING = 50
MAX_INTEGER_BITS = 1024  # about 1.8e308, the float range: bigger results are refused
MAX_ARGUMENTS = 100

Number = int | float


# --- tokenizer ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/%(),])"
    r")"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    text: str
    position: int


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        if expression[position:].isspace():
            break
        match = _TOKEN.match(expression, position)
        if match is None or match.lastgroup is None:
            start = position + len(expression[position:]) - len(expression[position:].lstrip())
            char = expression[start]
            hint = " (use ** for powers)" if char == "^" else ""
            raise ToolError(f"syntax error: unexpected character {char!r} at position {start + 1}{hint}")
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(_Token("end", "", len(expression)))
    return tokens


# --- functions and constants --------------------------------------------------------


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise ToolError("sqrt of a negative number is not a real number")
    if isinstance(x, int):
        root = math.isqrt(x)
        if root * root == x:
            return root
    return math.sqrt(x)


def _log(x: Number, base: Number | None = None) -> float:
    if x <= 0:
        raise ToolError("log is only defined for positive numbers")
    if base is None:
        return math.log(x)
    if base <= 0 or base == 1:
        raise ToolError("log base must be positive and not 1")
    return math.log(x) / math.log(base)


def _round(x: Number, ndigits: Number = 0) -> Number:
    if isinstance(ndigits, float) and ndigits.is_integer():
        ndigits = int(ndigits)
    if not isinstance(ndigits, int) or not -308 <= ndigits <= 15:
        raise ToolError("round: digits must be a whole number between -308 and 15")
    with localcontext(prec=400):
        rounded = Decimal(repr(x)).quantize(Decimal(1).scaleb(-ndigits), rounding=ROUND_HALF_UP)
    return int(rounded) if ndigits <= 0 else float(rounded)


def _floor(x: Number) -> int:
    return math.floor(x)


def _ceil(x: Number) -> int:
    return math.ceil(x)


@dataclass(frozen=True)
class _Function:
    call: Callable[..., Number]
    min_args: int
    max_args: int


_FUNCTIONS: dict[str, _Function] = {
    "sqrt": _Function(_sqrt, 1, 1),
    "abs": _Function(abs, 1, 1),
    "round": _Function(_round, 1, 2),
    "min": _Function(min, 1, MAX_ARGUMENTS),
    "max": _Function(max, 1, MAX_ARGUMENTS),
    "floor": _Function(_floor, 1, 1),
    "ceil": _Function(_ceil, 1, 1),
    "log": _Function(_log, 1, 2),
    "exp": _Function(math.exp, 1, 1),
    "sin": _Function(math.sin, 1, 1),
    "cos": _Function(math.cos, 1, 1),
    "tan": _Function(math.tan, 1, 1),
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


# --- parser + evaluator --------------------------------------------------------------


class _Parser:
    """Recursive descent over the grammar::

        expression := term (("+" | "-") term)*
        term       := unary (("*" | "/" | "//" | "%") unary)*
        unary      := ("+" | "-") unary | power
        power      := primary ("**" unary)?
        primary    := NUMBER | CONSTANT | FUNCTION "(" expression ("," expression)* ")" | "(" expression ")"

    Each rule computes its value directly; there is no intermediate tree.
    """

    def __init__(self, expression: str) -> None:
        self.tokens = _tokenize(expression)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        if self.current.text != text or self.current.kind != "op":
            self.fail(f"expected {text!r}")
        self.advance()

    def fail(self, problem: str) -> None:
        token = self.current
        found = "end of expression" if token.kind == "end" else repr(token.text)
        raise ToolError(f"syntax error: {problem}, found {found} at position {token.position + 1}")

    def parse(self) -> Number:
        if self.current.kind == "end":
            raise ToolError("syntax error: the expression is empty")
        value = self.expression()
        if self.current.kind != "end":
            self.fail("unexpected token")
        return value

    def expression(self) -> Number:
        value = self.term()
        while self.current.kind == "op" and self.current.text in ("+", "-"):
            operator = self.advance().text
            right = self.term()
            value = _checked(value + right if operator == "+" else value - right)
        return value

    def term(self) -> Number:
        value = self.unary()
        while self.current.kind == "op" and self.current.text in ("*", "/", "//", "%"):
            operator = self.advance().text
            value = _binary(operator, value, self.unary())
        return value

    def unary(self) -> Number:
        if self.current.kind == "op" and self.current.text in ("+", "-"):
            operator = self.advance().text
            with self.nested():
                value = self.unary()
            return -value if operator == "-" else value
        return self.power()

    def power(self) -> Number:
        base = self.primary()
        if self.current.kind == "op" and self.current.text == "**":
            self.advance()
            with self.nested():
                exponent = self.unary()
            return _power(base, exponent)
        return base

    def primary(self) -> Number:
        token = self.current
        if token.kind == "number":
            self.advance()
            return _number(token.text)
        if token.kind == "op" and token.text == "(":
            self.advance()
            with self.nested():
                value = self.expression()
            self.expect(")")
            return value
        if token.kind == "name":
            self.advance()
            if token.text in _FUNCTIONS:
                return self.call(token.text)
            if token.text in _CONSTANTS:
                return _CONSTANTS[token.text]
            raise ToolError(
                f"syntax error: unknown name {token.text!r} at position {token.position + 1}; "
                f"functions: {', '.join(_FUNCTIONS)}; constants: {', '.join(_CONSTANTS)}"
            )
        self.fail("expected a number, a function or '('")
        raise AssertionError  # unreachable: fail() raises

    def call(self, name: str) -> Number:
        function = _FUNCTIONS[name]
        self.expect("(")
        arguments: list[Number] = []
        with self.nested():
            if not (self.current.kind == "op" and self.current.text == ")"):
                arguments.append(self.expression())
                while self.current.kind == "op" and self.current.text == ",":
                    self.advance()
                    arguments.append(self.expression())
        self.expect(")")
        if not function.min_args <= len(arguments) <= function.max_args:
            wanted = (
                str(function.min_args)
                if function.min_args == function.max_args
                else f"{function.min_args} to {function.max_args}"
            )
            raise ToolError(f"{name}() takes {wanted} argument(s), {len(arguments)} given")
        try:
            return _checked(function.call(*arguments))
        except OverflowError:
            raise ToolError(f"{name}(): result is too large") from None
        except ValueError as exc:
            raise ToolError(f"{name}(): {exc}") from None

    def nested(self) -> _Nesting:
        return _Nesting(self)


class _Nesting:
    def __init__(self, parser: _Parser) -> None:
        self.parser = parser

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_NESTING:
            raise ToolError(f"the expression is nested more than {MAX_NESTING} levels deep")

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1


def _number(text: str) -> Number:
    if re.fullmatch(r"\d+", text):
        if len(text) > 309:
            raise ToolError("a number in the expression is too large")
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ToolError("a number in the expression is too large")
    return value


def _checked(value: Number) -> Number:
    if isinstance(value, int):
        if value.bit_length() > MAX_INTEGER_BITS:
            raise ToolError("result is too large")
        return value
    if math.isnan(value):
        raise ToolError("result is not a number")
    if math.isinf(value):
        raise ToolError("result is too large")
    return value


def _binary(operator: str, left: Number, right: Number) -> Number:
    if operator == "*":
        return _checked(left * right)
    if right == 0:
        raise ToolError("division by zero")
    try:
        if operator == "/":
            if isinstance(left, int) and isinstance(right, int) and left % right == 0:
                return _checked(left // right)
            return _checked(left / right)
        if operator == "//":
            return _checked(left // right)
        return _checked(left % right)
    except OverflowError:
        raise ToolError("result is too large") from None


def _power(base: Number, exponent: Number) -> Number:
    if base == 0 and exponent < 0:
        raise ToolError("division by zero")
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise ToolError("a negative number to a fractional power is not a real number")
    try:
        if abs(base) not in (0, 1) and exponent > 0:
            # Estimate the size before computing: refuses 9**9**9 without trying it.
            if exponent * math.log2(abs(base)) > MAX_INTEGER_BITS:
                raise ToolError("result is too large")
        if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
            return _checked(base**exponent)
        return _checked(math.pow(base, exponent))
    except OverflowError:
        raise ToolError("result is too large") from None


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; :class:`ToolError` if it is not one."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        return _Parser(expression).parse()
    except OverflowError:  # e.g. a huge integer meeting a float
        raise ToolError("result is too large") from None
    except ZeroDivisionError:
        raise ToolError("division by zero") from None


def format_number(value: Number) -> str:
    """A number as a person would write it: ``5`` not ``5.0``, ``0.3`` not ``0.30000000000000004``."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


def calculator(input: dict[str, Any], ctx: ToolContext) -> str:
    """Tool handler: evaluate ``input["expression"]``."""
    return format_number(evaluate(input["expression"]))


# --- current_time ----------------------------------------------------------------------

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def _parse_offset(text: str) -> timezone:
    if text in ("Z", "UTC", "+00:00", "-00:00"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is None:
        raise ToolError("timezone must be a fixed UTC offset like '+02:00' or '-05:30', or 'UTC'")
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59 or (hours == 14 and minutes):
        raise ToolError("timezone offset must be between -14:00 and +14:00")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


def _format_offset(zone: timezone, at: datetime) -> str:
    if zone is UTC:
        return "UTC"
    minutes = int(zone.utcoffset(at).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def current_time(input: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Tool handler: the current time in UTC (and in ``input["timezone"]`` if given)."""
    zone = _parse_offset(input.get("timezone", "UTC"))
    now = ctx.clock.now().astimezone(UTC).replace(microsecond=0)
    local = now.astimezone(zone)
    return {
        "utc": now.isoformat().replace("+00:00", "Z"),
        "local": local.isoformat().replace("+00:00", "Z"),
        "timezone": _format_offset(zone, now),
        "unix": int(now.timestamp()),
        "weekday": local.strftime("%A"),
    }


# --- definitions ----------------------------------------------------------------------------


def pure_tools() -> list[Tool]:
    """Fresh definitions of the pure built-in tools."""
    function_list = ", ".join(_FUNCTIONS)
    return [
        Tool(
            name="calculator",
            description=(
                "Evaluate an arithmetic expression exactly and return the result. Supports numbers "
                "(including decimals and scientific notation such as 1.5e3), + - * / // % ** "
                f"(power), unary minus, parentheses, the functions {function_list} "
                "(log(x) is natural; log(x, base) for other bases; trigonometry uses radians), and "
                "the constants pi and e. Use it for any calculation instead of doing arithmetic in your head."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "description": "The expression, e.g. '(1200 * 0.15) / 12' or 'sqrt(2) ** 2'.",
                        "minLength": 1,
                        "maxLength": MAX_EXPRESSION_CHARS,
                    }
                },
                "required": ["expression"],
                "additionalProperties": False,
            },
            handler=calculator,
            timeout_seconds=2,
            max_result_chars=1_000,
        ),
        Tool(
            name="current_time",
            description=(
                "Get the current date and time: ISO 8601 in UTC and in an optional fixed UTC offset, "
                "Unix seconds, and the weekday. Use it whenever the answer depends on today's date or time."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "description": "A fixed UTC offset like '+02:00' or '-05:30'; defaults to UTC.",
                        "maxLength": 6,
                    }
                },
                "additionalProperties": False,
            },
            handler=current_time,
            timeout_seconds=2,
            max_result_chars=1_000,
        ),
    ]
