"""API keys, roles, and the request hook that enforces them on every route.

Every API view declares its role with `@requires("viewer" | "operator" | "admin" | "reviewer")`. The declaration is
both enforced here and published in the OpenAPI document as `x-required-role`; `create_app` refuses to
start if any /api route lacks one, so a forgotten decorator fails closed instead of open.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, request
from flask_smorest import Blueprint

from app.errors import Forbidden, Unauthorized
from app.models import ROLES, ApiKey, utcnow

KEY_PREFIX = "magnet_ak_"
OPEN = "open"
# The ladder: each role reaches the routes of the roles below it.
_RANK = {"viewer": 1, "operator": 2, "admin": 3}
# Roles beside the ladder: a route declared with one is reached by the roles listed, and a key of that role
# reaches nothing else. A `reviewer` works the human-review queue only. Keys of the `handoff` role (outside
# agents' accounts) are in neither table, so every platform route refuses them (403).
_SIDE_ROLES = {"reviewer": ("reviewer", "operator", "admin")}
# Writing last_used_at on every request would turn every read into a write; a minute is precise enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# Routes outside the documented API that are deliberately open: the spec and its viewer are the
# same for every installation and hold no data.
OPEN_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui_static"}


def requires(role: str):
    """Declare the least role a view needs (or `OPEN` for none); documented in the OpenAPI spec."""
    if role != OPEN and role not in _RANK and role not in _SIDE_ROLES:
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
    if need in _SIDE_ROLES:
        return have in _SIDE_ROLES[need]
    return have in _RANK and _RANK[have] >= _RANK[need]


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


def authenticate() -> None:
    """before_request hook: 401 without a valid key, 403 when the key's role is below the route's."""
    if not request.path.startswith("/api") or request.endpoint in OPEN_ENDPOINTS:
        return
    if request.method == "OPTIONS":
        return
    need = view_role(current_app, request.endpoint, request.method)
    if need == OPEN:
        return
    key = presented_key()
    if not key:
        raise Unauthorized(
            "An API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    record = lookup_key(key)
    if record is None:
        raise Unauthorized("The API key is not valid or has been revoked.", code="invalid_api_key")
    g.api_key = record
    if need is None:  # unknown route: let the 404 handler answer, but only to a valid key
        return
    if not role_allows(record.role, need):
        raise Forbidden(
            f"This action needs the '{need}' role; the key has '{record.role}'.",
            code="insufficient_role",
            details={"required_role": need, "key_role": record.role},
        )
    _touch(record)


def current_role() -> str:
    """The role of the key this request presented (the auth hook has checked it already)."""
    record = g.get("api_key")
    if record is None:
        raise Unauthorized("An API key is required.", code="missing_api_key")
    return record.role


def current_api_key_id() -> str | None:
    record = g.get("api_key")
    return record.id if record is not None else None


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


__all__ = ["OPEN", "ROLES", "authenticate", "generate_key", "hash_key", "requires"]
