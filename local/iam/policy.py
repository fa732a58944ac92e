"""IAM policy evaluation: does a policy set allow one action on one resource?

A small evaluator of identity-based (and role trust) policies, written from
AWS's IAM reference because no maintained PyPI package evaluates conditions
against a request (policyuniverse and iam-ape expand and analyse policies;
moto's access control knows only ``StringEquals`` and passes every other
operator). What it implements, as the IAM User Guide describes it:

- Effect: an explicit ``Deny`` wins; otherwise an ``Allow`` allows; otherwise
  the request is implicitly denied.
- ``Action`` / ``NotAction`` (case-insensitive, ``*`` and ``?`` wildcards),
  ``Resource`` / ``NotResource`` (matched per ARN component, like ArnLike),
  ``Principal`` for trust policies (``*``, an account, an account's root, an
  exact ARN).
- Conditions: every operator block must hold (AND), every key in a block must
  hold (AND), any of a key's values may match (OR). Operators: the String,
  Numeric, Bool, Null and Arn families, each with ``IfExists``; the set
  operators ``ForAllValues:`` (true when the key is absent or empty) and
  ``ForAnyValue:`` (false when absent). A key missing from the request makes
  a positive operator false and a negated one true.
- Policy variables (``${aws:PrincipalTag/workspace_id}``, ``${*}``, defaults
  ``${key, 'default'}``) in Resource and in String/Arn condition values, for
  policies of Version 2012-10-17. A variable with no value makes the element
  it is in match nothing. Context key names are case-insensitive.

Anything it does not know (an unknown operator, Date, IP, Binary) makes the
condition false: the local cloud may refuse what AWS allows, never the
reverse.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

ContextValue = str | Sequence[str]


class Effect(str, Enum):
    allow = "Allow"
    deny = "Deny"


@dataclass(frozen=True)
class Request:
    """One authorization question: may the principal do ``action`` on ``resource``?"""

    action: str  # service:Action
    resource: str  # an ARN, or "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: str | None = None  # the caller's ARN; only trust policies look at it


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    statement: Mapping[str, Any] | None = None  # the statement that decided (allow or deny)

    @property
    def verdict(self) -> str:
        return "allow" if self.allowed else ("explicit deny" if self.explicit_deny else "implicit deny")


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """Evaluate identity-based policies (policy documents) for one request."""
    allow: Mapping[str, Any] | None = None
    context = _normalized(request.context)
    for policy in policies:
        variables = policy.get("Version") == "2012-10-17"
        for statement in _as_list(policy.get("Statement", [])):
            if not _applies(statement, request, context, variables):
                continue
            if statement.get("Effect") == Effect.deny.value:
                return Decision(allowed=False, explicit_deny=True, statement=statement)
            if statement.get("Effect") == Effect.allow.value and allow is None:
                allow = statement
    return Decision(allowed=allow is not None, statement=allow)


def _applies(statement: Mapping[str, Any], request: Request, context: Mapping[str, ContextValue],
             variables: bool) -> bool:
    if "Action" in statement:
        if not any(_wildcard_match(p, request.action, ignore_case=True) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_wildcard_match(p, request.action, ignore_case=True) for p in _as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Principal" in statement or "NotPrincipal" in statement:
        if not _principal_matches(statement, request.principal):
            return False
    if "Resource" in statement:
        if not any(_resource_matches(p, request.resource, context, variables) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_resource_matches(p, request.resource, context, variables)
               for p in _as_list(statement["NotResource"])):
            return False
    # (a trust policy statement has neither: it is about the role it is attached to)
    return conditions_hold(statement.get("Condition", {}), context, variables)


# --------------------------------------------------------------------------- principals


def _principal_matches(statement: Mapping[str, Any], principal: str | None) -> bool:
    if "NotPrincipal" in statement:
        return principal is not None and not _principal_in(statement["NotPrincipal"], principal)
    return principal is not None and _principal_in(statement["Principal"], principal)


def _principal_in(element: Any, principal: str) -> bool:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    account = principal.split(":")[4] if principal.count(":") >= 5 else ""
    for value in _as_list(element.get("AWS", [])):
        if value in ("*", principal, account, f"arn:aws:iam::{account}:root"):
            return True
    return principal in _as_list(element.get("Service", []))  # a service principal: scheduler.amazonaws.com


# --------------------------------------------------------------------------- matching


def _wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard_regex([(pattern, True)], ignore_case).fullmatch(value) is not None


def _wildcard_regex(parts: Sequence[tuple[str, bool]], ignore_case: bool = False) -> re.Pattern[str]:
    """``parts`` are (text, is_pattern): ``*`` and ``?`` are wildcards only in pattern text
    (text a policy variable produced is literal). Compiled once per pattern: every AWS call is checked."""
    return _compiled(tuple(parts), ignore_case)


@functools.lru_cache(maxsize=4096)
def _compiled(parts: tuple[tuple[str, bool], ...], ignore_case: bool) -> re.Pattern[str]:
    regex = []
    for text, is_pattern in parts:
        if not is_pattern:
            regex.append(re.escape(text))
            continue
        for char in text:
            regex.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(regex), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _resource_matches(pattern: str, resource: str, context: Mapping[str, ContextValue], variables: bool) -> bool:
    parts = _substitute(pattern, context, variables)
    if parts is None:
        return False
    return _arn_like(parts, resource)


def _arn_like(pattern: Sequence[tuple[str, bool]], value: str) -> bool:
    """ArnLike: each of the six colon-separated components matched on its own."""
    text = "".join(t for t, _ in pattern)
    if text == "*" and pattern[0][1]:
        return True
    pattern_components = _split_components(pattern)
    value_components = value.split(":", 5)
    if len(pattern_components) != 6 or len(value_components) != 6:
        return _wildcard_regex(pattern).fullmatch(value) is not None
    return all(_wildcard_regex(p).fullmatch(v) is not None for p, v in zip(pattern_components, value_components, strict=True))


def _split_components(pattern: Sequence[tuple[str, bool]]) -> list[list[tuple[str, bool]]]:
    """The pattern's six ARN components (the last one keeps any further colons)."""
    components: list[list[tuple[str, bool]]] = [[]]
    for text, is_pattern in pattern:
        for char in text:
            if char == ":" and len(components) < 6:
                components.append([])
            else:
                components[-1].append((char, is_pattern))
    return components


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _substitute(text: str, context: Mapping[str, ContextValue], variables: bool) -> list[tuple[str, bool]] | None:
    """The text as (piece, is_pattern) parts with policy variables replaced;
    None when a variable has no value (the element then matches nothing)."""
    if not variables or "${" not in text:
        return [(text, True)]
    parts: list[tuple[str, bool]] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        parts.append((text[position:match.start()], True))
        name, _, default = match.group(1).partition(",")
        name = name.strip()
        if name in _SPECIAL:
            parts.append((_SPECIAL[name], False))
        else:
            value = context.get(name.lower())
            if isinstance(value, str):
                parts.append((value, False))
            elif default.strip().startswith("'") and default.strip().endswith("'"):
                parts.append((default.strip()[1:-1], False))
            else:
                return None  # missing (or multivalued) key: no value to put here
        position = match.end()
    parts.append((text[position:], True))
    return [p for p in parts if p[0]] or [("", True)]


# --------------------------------------------------------------------------- conditions


def conditions_hold(condition: Mapping[str, Any], context: Mapping[str, ContextValue], variables: bool) -> bool:
    """Every operator block holds, and in each block every key holds."""
    context = _normalized(context)
    for operator, block in condition.items():
        for key, policy_values in block.items():
            if not _condition_holds(operator, key, _as_list(policy_values), context, variables):
                return False
    return True


def _condition_holds(operator: str, key: str, policy_values: list[Any], context: Mapping[str, ContextValue],
                     variables: bool) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    present = key.lower() in context
    raw = context.get(key.lower())
    request_values = [raw] if isinstance(raw, str) else list(raw or [])

    if base == "Null":
        if qualifier or if_exists:
            return False
        wanted = {str(v).lower() for v in policy_values}
        is_null = not present or not request_values
        return ("true" in wanted and is_null) or ("false" in wanted and not is_null)

    test = _OPERATORS.get(base)
    if test is None:
        return False  # an operator this evaluator does not know: never more lenient than AWS
    negated = base in _NEGATED

    def one(value: str) -> bool:
        matched = any(test(_policy_value(p, base, context, variables), value) for p in policy_values)
        return not matched if negated else matched

    if qualifier == "ForAllValues":
        return all(one(v) for v in request_values)  # true when the key is absent or empty
    if qualifier == "ForAnyValue":
        return any(one(v) for v in request_values)  # false when the key is absent
    if qualifier:
        return False
    if not present:
        return True if if_exists else negated
    if len(request_values) != 1:
        return False  # a multivalued key needs a set operator
    return one(request_values[0])


def _policy_value(value: Any, base: str, context: Mapping[str, ContextValue],
                  variables: bool) -> list[tuple[str, bool]] | None:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if base.startswith(("String", "Arn")):
        return _substitute(text, context, variables)
    return [(text, False)]


def _plain(parts: list[tuple[str, bool]] | None) -> str | None:
    return None if parts is None else "".join(t for t, _ in parts)


def _string_equals(parts: list[tuple[str, bool]] | None, value: str) -> bool:
    return parts is not None and _plain(parts) == value


def _string_equals_ignore_case(parts: list[tuple[str, bool]] | None, value: str) -> bool:
    return parts is not None and _plain(parts).lower() == value.lower()  # type: ignore[union-attr]


def _string_like(parts: list[tuple[str, bool]] | None, value: str) -> bool:
    return parts is not None and _wildcard_regex(parts).fullmatch(value) is not None


def _arn_matches(parts: list[tuple[str, bool]] | None, value: str) -> bool:
    return parts is not None and _arn_like(parts, value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Any) -> Any:
    def test(parts: list[tuple[str, bool]] | None, value: str) -> bool:
        expected, actual = _number(_plain(parts) or ""), _number(value)
        return expected is not None and actual is not None and compare(actual, expected)

    return test


def _bool(parts: list[tuple[str, bool]] | None, value: str) -> bool:
    return parts is not None and (_plain(parts) or "").lower() == value.lower()


_OPERATORS = {
    "StringEquals": _string_equals,
    "StringNotEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringNotEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "StringNotLike": _string_like,
    "ArnEquals": _arn_matches,
    "ArnLike": _arn_matches,
    "ArnNotEquals": _arn_matches,
    "ArnNotLike": _arn_matches,
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericNotEquals": _numeric(lambda a, b: a == b),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
    "Bool": _bool,
}
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
            "NumericNotEquals"}


# --------------------------------------------------------------------------- helpers


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _normalized(context: Mapping[str, ContextValue]) -> dict[str, ContextValue]:
    return {key.lower(): value for key, value in context.items()}
