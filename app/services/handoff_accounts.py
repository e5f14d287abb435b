"""Hand-off accounts: outside agents register, sign in, and call /api/v1 with keys of their own.

An account's keys are `api_keys` rows of role `handoff` (so the platform's key machinery hashes, looks up
and revokes them, and the auth hook refuses them on every platform route), linked to the account in
`handoff_keys`. Keys are stored hashed only, so a login cannot show an existing key: each login issues a
NEW key. Older keys stay valid until revoked; past MAX_LIVE_KEYS the oldest live keys are revoked.

Registration is open only with MAGNET_HANDOFF_REGISTRATION=open; otherwise it takes a one-use invitation
token an admin created. Passwords are hashed with argon2id.
"""
from __future__ import annotations

import secrets
import time
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import case, select, update

from app import crypto
from app.auth import generate_key, hash_key, lookup_key
from app.errors import Conflict, Forbidden, RateLimited, Unauthorized
from app.extensions import db
from app.models import HANDOFF_ROLE, ApiKey, HandoffAccount, HandoffInvitation, HandoffKey, utcnow

MAX_LIVE_KEYS = 10
RATE_PER_MINUTE = 100
INVITATION_PREFIX = "magnet_inv_"
_hasher = PasswordHasher()  # argon2id with the library's recommended cost


def _minute() -> int:
    """The current rate-limit window (epoch minute); a function so tests can hold the clock still."""
    return int(time.time() // 60)


def registration_open() -> bool:
    return current_app.extensions["magnet.config"].handoff_registration == "open"


def register(body: dict) -> dict:
    """Create an account and its first key; the key and the webhook secret are shown this once."""
    invitation = _usable_invitation(body.get("invitation"))
    email = body["email"].strip().lower()
    if db.session.execute(select(HandoffAccount.id).where(HandoffAccount.name == body["name"])).first():
        raise Conflict("Agent name already taken", code="name_taken",
                       details={"hint": "Choose another name, or log in if this account is yours."})
    if db.session.execute(select(HandoffAccount.id).where(HandoffAccount.email == email)).first():
        raise Conflict("Email already registered", code="email_taken",
                       details={"hint": "Log in with POST /api/v1/agents/login to get a key for this account."})
    webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    account = HandoffAccount(name=body["name"], description=body.get("description"), email=email,
                             phone=body["phone"], password_hash=_hasher.hash(body["password"]),
                             telegram_user_id=body.get("telegram_user_id"),
                             webhook_secret=crypto.encrypt(webhook_secret),
                             invitation_id=invitation.id if invitation else None)
    db.session.add(account)
    db.session.flush()
    if invitation is not None:
        # Conditional: of two registrations racing for one invitation, one uses it, the other is refused.
        used = db.session.execute(update(HandoffInvitation).where(
            HandoffInvitation.id == invitation.id, HandoffInvitation.used_at.is_(None)).values(
            used_at=utcnow(), used_by_account_id=account.id)).rowcount
        if used != 1:
            db.session.rollback()
            raise Forbidden("Invitation already used", code="invalid_invitation",
                            details={"hint": "Ask an administrator for a new invitation token."})
    key = _issue_key(account)
    db.session.commit()  # a concurrent duplicate name or email fails here: IntegrityError, answered 409
    return {"account": account_payload(account), "api_key": key, "webhook_secret": webhook_secret}


def _usable_invitation(token: str | None) -> HandoffInvitation | None:
    if registration_open():
        return None
    if not token:
        raise Forbidden("Registration requires an invitation", code="invitation_required",
                        details={"hint": "Send the 'invitation' token an administrator gave you."})
    invitation = db.session.execute(select(HandoffInvitation).where(
        HandoffInvitation.token_hash == hash_key(token))).scalar_one_or_none()
    if invitation is None or invitation.used_at is not None or invitation.expires_at <= utcnow():
        raise Forbidden("Invitation is not valid, used or expired", code="invalid_invitation",
                        details={"hint": "Ask an administrator for a new invitation token."})
    return invitation


def login(body: dict) -> dict:
    """A NEW key for the account (existing keys cannot be shown: only their hashes are kept)."""
    if body.get("email"):
        where = HandoffAccount.email == body["email"].strip().lower()
    else:
        where = HandoffAccount.telegram_user_id == body["telegram_user_id"]
    account = db.session.execute(select(HandoffAccount).where(where)).scalar_one_or_none()
    # The same answer for an unknown account and a wrong password: no probing for registered emails.
    if account is None or not _password_matches(account, body["password"]):
        raise Unauthorized("Invalid credentials", code="invalid_credentials",
                           details={"hint": "Check the email (or Telegram user id) and the password."})
    key = _issue_key(account)
    revoked = _revoke_beyond_cap(account.id)
    db.session.commit()
    return {"account": account_payload(account), "api_key": key, "new_key": True, "revoked_keys": revoked,
            "note": "A new key is issued on every login; older keys stay valid until revoked (at most "
                    f"{MAX_LIVE_KEYS} live keys per account: the oldest beyond that are revoked)."}


def _password_matches(account: HandoffAccount, password: str) -> bool:
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return True


def _issue_key(account: HandoffAccount) -> str:
    key = generate_key()
    record = ApiKey(name=f"hand-off account {account.name}", role=HANDOFF_ROLE, prefix=key[:16],
                    key_hash=hash_key(key))
    db.session.add(record)
    db.session.flush()
    db.session.add(HandoffKey(api_key_id=record.id, account_id=account.id))
    return key


def _revoke_beyond_cap(account_id: str) -> int:
    live = db.session.execute(
        select(ApiKey).join(HandoffKey, HandoffKey.api_key_id == ApiKey.id)
        .where(HandoffKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).scalars().all()
    for record in live[MAX_LIVE_KEYS:]:
        record.revoked_at = utcnow()
    return len(live[MAX_LIVE_KEYS:])


def authenticate(key: str | None) -> HandoffAccount:
    """The account whose live key this is, counted against its rate limit; 401 or 429 otherwise."""
    if not key:
        raise Unauthorized("Missing API key", code="missing_api_key",
                           details={"hint": "Send 'Authorization: Bearer <key>' or 'x-api-key: <key>'; "
                                            "get a key from POST /api/v1/agents/register or /login."})
    record = lookup_key(key)
    link = db.session.get(HandoffKey, record.id) if record is not None and record.role == HANDOFF_ROLE else None
    if link is None:
        raise Unauthorized("Invalid API key", code="invalid_api_key",
                           details={"hint": "Use a hand-off account's key (log in again for a new one)."})
    _count_request(link.api_key_id)
    account = db.session.get(HandoffAccount, link.account_id)
    if record.last_used_at is None or utcnow() - record.last_used_at > timedelta(minutes=1):
        record.last_used_at = utcnow()
        db.session.commit()
    return account


def _count_request(api_key_id: str) -> None:
    """RATE_PER_MINUTE requests per key per minute, counted in the database so every process and node
    shares the count: one conditional UPDATE moves the window or adds one to it, atomically."""
    window = _minute()
    count = db.session.execute(
        update(HandoffKey).where(HandoffKey.api_key_id == api_key_id).values(
            window_count=case((HandoffKey.window_start == window, HandoffKey.window_count + 1), else_=1),
            window_start=window).returning(HandoffKey.window_count)).scalar_one()
    db.session.commit()
    if count > RATE_PER_MINUTE:
        error = RateLimited(f"Rate limit exceeded: {RATE_PER_MINUTE} requests per minute per key",
                            code="rate_limited",
                            details={"hint": "Wait for the next minute; poll with 'since' instead of "
                                             "re-reading everything."})
        error.retry_after = max(1, 60 - int(time.time() % 60))
        raise error


def account_payload(account: HandoffAccount) -> dict:
    return {"id": account.id, "name": account.name, "description": account.description, "email": account.email,
            "phone": account.phone, "telegram_user_id": account.telegram_user_id,
            "created_at": account.created_at}


def webhook_secret(account_id: str) -> str:
    return crypto.decrypt(db.session.get(HandoffAccount, account_id).webhook_secret)


def create_invitation(note: str | None, expires_in_hours: int, created_by_key_id: str | None) -> dict:
    """A one-use registration token (shown once; stored hashed)."""
    token = INVITATION_PREFIX + secrets.token_urlsafe(24)
    invitation = HandoffInvitation(token_hash=hash_key(token), note=note, created_by_key_id=created_by_key_id,
                                   expires_at=utcnow() + timedelta(hours=expires_in_hours))
    db.session.add(invitation)
    db.session.commit()
    return {"id": invitation.id, "token": token, "note": note, "expires_at": invitation.expires_at,
            "created_at": invitation.created_at}


def accounts_by_id(ids: set[str]) -> dict[str, HandoffAccount]:
    if not ids:
        return {}
    rows = db.session.execute(select(HandoffAccount).where(HandoffAccount.id.in_(ids))).scalars()
    return {row.id: row for row in rows}
