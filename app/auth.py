"""API keys, browser sessions, roles, and the request hook that enforces them on every route.

A request acts for a `Principal`: an API key, or a signed-in user (the `magnet_session` cookie), with
the same role rules. A key wins when both are sent. Writes made with a session need the CSRF token
(double submit); writes made with a key do not (a browser never adds a key by itself).

Every API view declares its role with `@requires("viewer" | "operator" | "admin")`. The declaration is
both enforced here and published in the OpenAPI document as `x-required-role`; `create_app` refuses to
start if any /api route lacks one, so a forgotten decorator fails closed instead of open.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app, g, has_request_context, request
from flask_smorest import Blueprint

from app.errors import Forbidden, Unauthorized
from app.models import ROLES, ApiKey, utcnow

KEY_PREFIX = "magnet_ak_"
OPEN = "open"
_RANK = {"viewer": 1, "operator": 2, "admin": 3}
# Writing last_used_at on every request would turn every read into a write; a minute is precise enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# Routes outside the documented API that are deliberately open: the spec and its viewer are the
# same for every installation and hold no data.
OPEN_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui_static"}
# Browser sessions (app.services.sessions): the cookie holds an opaque token; the CSRF token is sent back
# by the page in a header or form field (double submit) on every write.
SESSION_COOKIE = "magnet_session"
CSRF_COOKIE = "magnet_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def requires(role: str):
    """Declare the least role a view needs (or `OPEN` for none); documented in the OpenAPI spec."""
    if role != OPEN and role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorator(func):
        doc = {"x-required-role": role}
        if role == OPEN:
            doc["security"] = []
        wrapped = Blueprint.doc(**doc)(func)
        wrapped._magnet_role = role
        return wrapped

    return decorator


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to attack, unlike passwords).
    return hashlib.sha256(key.encode()).hexdigest()


def role_allows(have: str, need: str) -> bool:
    return _RANK[have] >= _RANK[need]


def presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def view_handler(app: Flask, endpoint: str | None, method: str):
    """The function that answers `method` on `endpoint` (a MethodView's method), or None."""
    if endpoint is None:
        return None
    view = app.view_functions.get(endpoint)
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    handler = getattr(view_class, method.lower(), None)
    if handler is None and method == "HEAD":
        handler = getattr(view_class, "get", None)
    return handler


def view_role(app: Flask, endpoint: str | None, method: str) -> str | None:
    """The role a route declares for a method, or None when it declares none."""
    return getattr(view_handler(app, endpoint, method), "_magnet_role", None)


def lookup_key(key: str) -> ApiKey | None:
    from app.extensions import db

    record = db.session.execute(db.select(ApiKey).filter_by(key_hash=hash_key(key))).scalar_one_or_none()
    if record is None or record.revoked_at is not None:
        return None
    # Compare again in constant time; the indexed lookup above is only the fast path.
    if not hmac.compare_digest(record.key_hash, hash_key(key)):
        return None
    return record


def _touch(record: ApiKey) -> None:
    from app.extensions import db

    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_RESOLUTION:
        record.last_used_at = now
        db.session.commit()


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: an API key or a signed-in user (a browser session)."""

    role: str
    display_name: str
    user_id: str | None = None  # None for keys
    api_key_id: str | None = None  # None for sessions
    session_id: str | None = None
    csrf_token: str | None = None  # the session's; None for keys


def authenticate() -> None:
    """before_request hook. /api: 401 without a valid key or session, 403 when the role is below the
    route's, 403 `csrf_failed` for a session's write without the CSRF token. Other paths (the console's
    pages): the session is loaded when there is one, never required (the pages redirect to sign-in)."""
    g.principal = None
    if request.endpoint in OPEN_ENDPOINTS:
        return
    if not request.path.startswith("/api"):
        _load_session(require=False)
        return
    if request.method == "OPTIONS":
        return
    need = view_role(current_app, request.endpoint, request.method)
    if need == OPEN:
        return
    key = presented_key()
    if key:  # a key wins over a cookie sent with it
        record = lookup_key(key)
        if record is None:
            raise Unauthorized("The API key is not valid or has been revoked.", code="invalid_api_key")
        g.api_key = record
        g.principal = Principal(role=record.role, display_name=record.name, api_key_id=record.id)
    elif not _load_session(require=True):
        raise Unauthorized(
            "Sign in, or send an API key as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    principal = g.principal
    if need is None:  # unknown route: let the 404 handler answer, but only to a signed-in caller
        return
    if not role_allows(principal.role, need):
        who = "key" if principal.api_key_id else "user"
        raise Forbidden(
            f"This action needs the '{need}' role; the {who} has '{principal.role}'.",
            code="insufficient_role",
            details={"required_role": need, f"{who}_role": principal.role},
        )
    if key:
        _touch(g.api_key)


def _load_session(*, require: bool) -> bool:
    """Sign the request in from the session cookie, when it holds a live session; check CSRF on writes."""
    from app.services import sessions

    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return False
    found = sessions.lookup(token)
    if found is None:
        g.clear_session_cookies = True  # the browser may forget the dead cookies
        if require:
            raise Unauthorized("The session has expired or was ended; sign in again.", code="invalid_session")
        return False
    session, user, slid = found
    if request.method not in SAFE_METHODS and not getattr(view_handler(current_app, request.endpoint,
                                                                        request.method), "_magnet_csrf_exempt", False):
        _check_csrf(session.csrf_token)
    g.principal = Principal(role=user.role, display_name=user.name, user_id=user.id, session_id=session.id,
                            csrf_token=session.csrf_token)
    if slid:
        g.refresh_session_cookies = (token, session.csrf_token)
    return True


def _check_csrf(expected: str) -> None:
    """Double submit: the header (or form field) must equal the session's token, compared in constant time."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = request.form.get(CSRF_FIELD)
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(f"This request needs the CSRF token: send the '{CSRF_COOKIE}' cookie's value in the "
                        f"'{CSRF_HEADER}' header (or a '{CSRF_FIELD}' form field).", code="csrf_failed")


def csrf_exempt(func):
    """Mark a page view whose write needs no CSRF token (e.g. a sign-in form: it acts for no session)."""
    func._magnet_csrf_exempt = True
    return func


def set_session_cookies(response, token: str, csrf_token: str) -> None:
    """The session cookie (HttpOnly) and the CSRF cookie (readable by the page's script), both Lax."""
    settings = current_app.extensions["magnet.config"].auth
    max_age = int(settings.session_ttl_hours * 3600)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="Lax",
                        secure=settings.cookie_secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf_token, max_age=max_age, httponly=False, samesite="Lax",
                        secure=settings.cookie_secure, path="/")


def clear_session_cookies(response) -> None:
    settings = current_app.extensions["magnet.config"].auth
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=settings.cookie_secure, samesite="Lax",
                               httponly=name == SESSION_COOKIE)


def refresh_cookies(response):
    """after_request hook: a slid session gets fresh cookie lifetimes; a dead one loses its cookies."""
    refresh = g.get("refresh_session_cookies")
    if refresh and not g.get("signed_out"):
        set_session_cookies(response, *refresh)
    elif g.get("clear_session_cookies") and not any(  # unless the view just signed the browser in anew
            cookie.startswith(SESSION_COOKIE + "=") for cookie in response.headers.getlist("Set-Cookie")):
        clear_session_cookies(response)
    return response


def current_principal() -> Principal | None:
    """Who this request acts for, or None (an open route, or a page without a session)."""
    return g.get("principal")


def current_role() -> str:
    """The role of the key or user this request acts for (the auth hook has checked it already)."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized("An API key or a session is required.", code="missing_api_key")
    return principal.role


def current_api_key_id() -> str | None:
    principal = g.get("principal")
    return principal.api_key_id if principal is not None else None


def current_user_id() -> str | None:
    """The signed-in user this request acts for (None for keys and outside a request): the ledger's
    `user_id`, as `current_api_key_id` is its `api_key_id`."""
    if not has_request_context():
        return None
    principal = g.get("principal")
    return principal.user_id if principal is not None else None


def check_every_route_declares_a_role(app: Flask) -> None:
    """Refuse to start with an /api route that declares no role: fail closed, at start-up."""
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.endpoint in OPEN_ENDPOINTS:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if view_role(app, rule.endpoint, method) is None:
                missing.append(f"{method} {rule.rule}")
    if missing:
        raise RuntimeError("routes without a declared role: " + ", ".join(missing))


__all__ = ["OPEN", "ROLES", "Principal", "authenticate", "current_principal", "generate_key", "hash_key",
           "requires"]
