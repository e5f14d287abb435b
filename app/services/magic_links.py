"""Sign-in by emailed link: a one-time, expiring token sent by SMTP to the configured server.

Asking for a link answers the same whether or not the address has an account; the email is sent from a
thread after the answer is decided, so the answer's timing does not tell either.
"""
from __future__ import annotations

import hmac
import logging
import smtplib
import ssl
import threading
from datetime import timedelta
from email.message import EmailMessage

from flask import current_app

from app.errors import Forbidden
from app.extensions import db
from app.models import LoginToken, User, utcnow
from app.services import sessions, users
from app.services.sessions import SignedIn, token_hash

log = logging.getLogger(__name__)
# Links one address may be sent within the sign-in throttle's window (MAGNET_LOGIN_WINDOW_SECONDS).
MAX_LINKS_PER_WINDOW = 5
INVALID_LINK = "This sign-in link is not valid (used, expired or unknown); ask for a new one."


def request_link(email: str) -> None:
    """Email a sign-in link when the address belongs to an active user; nothing (silently) otherwise."""
    settings = current_app.extensions["magnet.config"].auth
    user = users.find_by_email(email)
    if user is None or not user.is_active:
        return
    if not settings.smtp_host:
        log.warning("magic link asked for, but no SMTP server is configured (MAGNET_SMTP_HOST)")
        return
    if _recent_links(user.id, settings) >= MAX_LINKS_PER_WINDOW:
        log.info("sign-in link not sent: %s asked for %s in the window", user.id, MAX_LINKS_PER_WINDOW)
        return  # no mailbox flooding; the answer stays the same
    token = sessions.new_token()
    db.session.add(LoginToken(user_id=user.id, token_hash=token_hash(token),
                              expires_at=utcnow() + timedelta(minutes=settings.magic_link_ttl_minutes)))
    db.session.commit()
    message = _message(settings, user, f"{settings.public_url}/auth/magic/{token}")
    threading.Thread(target=_send, args=(settings, message), name="magic-link-mail", daemon=True).start()


def _recent_links(user_id: str, settings) -> int:
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    return db.session.execute(db.select(db.func.count()).select_from(LoginToken).where(
        LoginToken.user_id == user_id, LoginToken.created_at > since)).scalar_one()


def _message(settings, user: User, link: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Your Magnet sign-in link"
    message["From"] = settings.smtp_from
    message["To"] = user.email
    message.set_content(f"Hello {user.name},\n\nSign in to Magnet with this link (it works once, for "
                        f"{settings.magic_link_ttl_minutes:g} minutes):\n\n{link}\n\n"
                        "If you did not ask for it, ignore this email.\n")
    return message


def _send(settings, message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # Never the link itself in the log: it signs in.
        log.warning("could not send a sign-in link via %s:%s: %s", settings.smtp_host, settings.smtp_port,
                    type(exc).__name__)


def redeem(token: str, *, ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    """Use a link once: a new session for its (still active) user."""
    digest = token_hash(token)
    row = db.session.execute(db.select(LoginToken).filter_by(token_hash=digest)).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Forbidden(INVALID_LINK, code="invalid_link")
    # One conditional UPDATE: of two clicks racing, one signs in.
    claimed = db.session.execute(db.update(LoginToken).where(
        LoginToken.id == row.id, LoginToken.used_at.is_(None), LoginToken.expires_at > utcnow()
    ).values(used_at=utcnow())).rowcount == 1
    user = db.session.get(User, row.user_id)
    if not claimed or user is None or not user.is_active:
        db.session.rollback()
        raise Forbidden(INVALID_LINK, code="invalid_link")
    db.session.commit()
    return sessions.start_session(user, ip=ip, user_agent=user_agent)
