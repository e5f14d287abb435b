"""Browser sessions: an opaque random token in the `magnet_session` cookie, stored here only as a hash.

A session expires after `session_ttl_hours` without use (the expiry slides forward as it is used), at
sign-out, when its user's password changes, or at once when its user is deactivated (checked on every
request, not cached).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from app.extensions import db
from app.models import User, UserSession, utcnow

# Sliding the expiry on every request would turn every read into a write; a minute is precise enough.
_SLIDE_RESOLUTION = timedelta(minutes=1)
_KEEP_DEAD = timedelta(days=30)


def token_hash(token: str) -> str:
    # 256 random bits: a fast hash is safe (nothing to guess), unlike for passwords.
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def ttl() -> timedelta:
    return timedelta(hours=current_app.extensions["magnet.config"].auth.session_ttl_hours)


@dataclass
class SignedIn:
    """What a sign-in hands the route: the session, its cookie token (shown to the browser only) and user."""

    session: UserSession
    token: str
    user: User


def start_session(user: User, *, ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    """A new session with a new token (never one the browser brought: no session fixation)."""
    token = new_token()
    now = utcnow()
    session = UserSession(user_id=user.id, token_hash=token_hash(token), csrf_token=secrets.token_urlsafe(32),
                          created_at=now, last_seen_at=now, expires_at=now + ttl(), ip=(ip or "")[:64] or None,
                          user_agent=(user_agent or "")[:300] or None)
    user.last_login_at = now
    db.session.add(session)
    _prune(now)
    db.session.commit()
    return SignedIn(session, token, user)


def lookup(token: str) -> tuple[UserSession, User, bool] | None:
    """The live session of this cookie token and its user, and whether its expiry slid; None when the
    token is unknown, ended or expired, or its user is deactivated."""
    if not token or len(token) > 200:
        return None
    digest = token_hash(token)
    session = db.session.execute(db.select(UserSession).filter_by(token_hash=digest)).scalar_one_or_none()
    if session is None or not hmac.compare_digest(session.token_hash, digest):
        return None
    now = utcnow()
    if session.revoked_at is not None or session.expires_at <= now:
        return None
    user = db.session.get(User, session.user_id)
    if user is None or not user.is_active:
        return None
    slid = now - session.last_seen_at > _SLIDE_RESOLUTION
    if slid:
        session.last_seen_at, session.expires_at = now, now + ttl()
        db.session.commit()
    return session, user, slid


def end_session(session_id: str) -> None:
    session = db.session.get(UserSession, session_id)
    if session is not None and session.revoked_at is None:
        session.revoked_at = utcnow()
        db.session.commit()


def end_user_sessions(user_id: str, *, keep: str | None = None, commit: bool = True) -> int:
    """End every live session of a user (but `keep`); returns how many."""
    query = db.update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep:
        query = query.where(UserSession.id != keep)
    count = db.session.execute(query.values(revoked_at=utcnow())).rowcount
    if commit:
        db.session.commit()
    return count


def _prune(now) -> None:
    """Forget sessions and sign-in links dead for a while (each sign-in does a little housekeeping, so no
    job is needed); the recent ones stay as a trail."""
    from app.models import LoginToken

    cutoff = now - _KEEP_DEAD
    db.session.execute(db.delete(UserSession).where(UserSession.expires_at < cutoff))
    db.session.execute(db.delete(UserSession).where(UserSession.revoked_at < cutoff))
    db.session.execute(db.delete(LoginToken).where(LoginToken.expires_at < cutoff))
