"""Passwords: argon2id at OWASP's recommended cost, and a sane-password policy.

Passwords are never logged or stored: only the argon2id hash is kept.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

from agenthq.errors import InvalidRequest

MIN_LENGTH = 12
MAX_LENGTH = 128

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1

# The words behind most breached passwords; a password that is one of these
# plus digits and punctuation is refused.
_COMMON_WORDS = frozenset(
    """password passw0rd p@ssword qwerty qwertyuiop asdfgh asdfghjkl zxcvbnm letmein welcome iloveyou admin
    administrator monkey dragon football baseball master shadow sunshine princess superman batman trustno
    abc abcdef abcdefg abcdefgh qazwsx changeme default secret login starwars whatever freedom hello
    computer internet summer winter spring autumn agenthq""".split()
)
_SEQUENCES = ("0123456789012345678901234567890", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
              "qwertyuiopasdfghjklzxcvbnm")


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                          parallelism=ARGON2_PARALLELISM)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return bool(_hasher().check_needs_rehash(password_hash))


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so timing reveals nothing."""
    return hash_password("not a real password, only for timing")


def check_password_policy(password: str, *, email: str = "", other_words: tuple[str, ...] = ()) -> None:
    """Raise InvalidRequest (field ``password``) unless the password is acceptable."""
    problem = _policy_problem(password, email, other_words)
    if problem:
        raise InvalidRequest("The password is too weak.", details=[{"field": "password", "message": problem}])


def _policy_problem(password: str, email: str, other_words: tuple[str, ...]) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if len(set(lowered)) < 5:
        return "uses too few different characters"
    if any(lowered in seq for seq in _SEQUENCES):
        return "is a keyboard or alphabet sequence"
    if re.fullmatch(r"(.{1,4})\1+.{0,3}", lowered):
        return "is a repeated pattern"
    # A common word, perhaps in leetspeak, wrapped in digits and punctuation.
    core = re.sub(r"^[^a-z@$]+|[^a-z]+$", "", lowered)
    core = core.translate(str.maketrans("@0135$", "aoiess"))
    core = re.sub(r"[^a-z]", "", core)
    if core in _COMMON_WORDS or any(core == w * 2 for w in _COMMON_WORDS):
        return "is a commonly breached password"
    local_part = email.split("@", 1)[0].lower()
    for word in (local_part, *[w.lower() for w in other_words]):
        if len(word) >= 4 and word in lowered:
            return "must not contain your e-mail address or workspace name"
    return None
