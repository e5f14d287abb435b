"""Password hashing (argon2id) and the sign-in throttle.

The throttle counts failed sign-ins per account (the address typed, whether or not it exists, so a 429
says nothing about accounts) and per client address, in the database, so every process and node sees the
same count. Past the limit within the window a sign-in is refused with 429 and Retry-After before the
password is even checked.
"""
from __future__ import annotations

import math
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from app.errors import RateLimited
from app.extensions import db
from app.models import LoginFailure, utcnow

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the account does not exist, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("magnet: no such account")
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always does the full argon2 work, account or not."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def _settings():
    return current_app.extensions["magnet.config"].auth


def check_throttle(email: str, ip: str | None) -> None:
    """429 with Retry-After when the account or the address has failed too often in the window."""
    settings = _settings()
    for scope, subject, limit in (("account", email, settings.login_max_failures_account),
                                  ("ip", ip, settings.login_max_failures_ip)):
        if not subject:
            continue
        since = utcnow() - timedelta(seconds=settings.login_window_seconds)
        count, oldest = db.session.execute(
            db.select(db.func.count(), db.func.min(LoginFailure.created_at)).where(
                LoginFailure.scope == scope, LoginFailure.subject == subject, LoginFailure.created_at > since)
        ).one()
        if count >= limit:
            from app.models.base import UtcDateTime

            oldest = UtcDateTime().process_result_value(oldest, None)
            retry = max(1, math.ceil((oldest - since).total_seconds()))
            error = RateLimited("Too many failed sign-ins; try again later.", code="too_many_attempts",
                                details={"retry_after_seconds": retry})
            error.retry_after = retry
            raise error


def record_failure(email: str, ip: str | None) -> None:
    db.session.add(LoginFailure(scope="account", subject=email))
    if ip:
        db.session.add(LoginFailure(scope="ip", subject=ip))
    _forget_old()
    db.session.commit()


def clear_account_failures(email: str) -> None:
    """A successful sign-in forgets the account's failures (not the address's: an attacker who owns one
    account must not reset the per-address count with it)."""
    db.session.execute(db.delete(LoginFailure).where(LoginFailure.scope == "account",
                                                     LoginFailure.subject == email))


def _forget_old() -> None:
    # Rows past the window count for nothing; trimming them here keeps the table small without a job.
    cutoff = utcnow() - timedelta(seconds=_settings().login_window_seconds)
    db.session.execute(db.delete(LoginFailure).where(LoginFailure.created_at <= cutoff))
