"""Password hashing for dashboard users: argon2id through argon2-cffi's defaults."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.errors import InputError

MIN_PASSWORD_CHARS = 10
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong
# password and the response time does not tell which names exist.
_DUMMY_HASH = _HASHER.hash("not-a-real-password-of-anyone")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}"
        )
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing user (None) is checked against a dummy hash."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
