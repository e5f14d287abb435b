"""Who is looking at a console page, and what they may do there: the API's roles, applied to pages.

A page declares its least role with `@page("viewer" | "operator" | "admin" | "reviewer")`, like an API
route (`reviewer` is a side role: reviewers, operators and admins pass, viewers do not; auth.role_allows). Nobody
signed in: a redirect to the sign-in page. A role too low: a 403 page. A cookie-authenticated request
that changes something must carry the CSRF token (header `X-CSRF-Token` or form field `csrf_token`,
equal to the `magnet_csrf` cookie); a request with an API key carries no ambient credential and needs none.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import wraps

from flask import redirect, render_template, request, url_for

from app import auth

CSRF_COOKIE = "magnet_csrf"
CSRF_HEADER = "X-CSRF-Token"
_CACHE = "magnet.console_principal"


@dataclass(frozen=True)
class Principal:
    role: str
    display_name: str
    user_id: str | None = None
    via: str = "session"  # session (cookie) or key (X-API-Key / Bearer)


def current_principal() -> Principal | None:
    """The signed-in user (session cookie) or the API key of this request; None when neither."""
    # Cached on the request (not `g`: an app context, and with it `g`, can outlive one request).
    if _CACHE in request.environ:
        return request.environ[_CACHE]
    who = None
    key = auth.presented_key()
    if key:
        record = auth.lookup_key(key)
        if record is not None:
            who = Principal(role=record.role, display_name=record.name or record.prefix, via="key")
    else:
        session_principal = getattr(auth, "current_principal", None)  # sign-in (app.auth) when present
        found = session_principal() if session_principal else None
        if found is not None:
            who = Principal(role=found.role, display_name=getattr(found, "display_name", "") or "",
                            user_id=getattr(found, "user_id", None), via="session")
    request.environ[_CACHE] = who
    return who


def can(role: str) -> bool:
    """Whether the current principal has at least `role` (templates show write forms only then)."""
    who = current_principal()
    return who is not None and auth.role_allows(who.role, role)


def csrf_token() -> str:
    return request.cookies.get(CSRF_COOKIE, "")


def csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token") or ""
    cookie = csrf_token()
    return bool(sent and cookie) and hmac.compare_digest(sent, cookie)


def page(role: str):
    """Declare the least role of a console page (and enforce it, and CSRF on writes)."""
    if role not in ("viewer", "operator", "admin", "reviewer"):
        raise ValueError(f"unknown role {role!r}")

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            who = current_principal()
            if who is None:
                if request.method == "GET":
                    return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
                return render_template("console/error.html", status=401,
                                       message="Sign in to do this."), 401
            if not auth.role_allows(who.role, role):
                if request.path == "/" and request.method == "GET" and auth.role_allows(who.role, "reviewer"):
                    return redirect(url_for("console.review"))  # a reviewer's home is the review queue
                return render_template("console/error.html", status=403,
                                       message=f"This page needs the '{role}' role; you have '{who.role}'."), 403
            if request.method not in ("GET", "HEAD") and who.via == "session" and not csrf_ok():
                return render_template("console/error.html", status=403,
                                       message="The form's security token is missing or stale: reload the page."), 403
            return view(*args, **kwargs)

        wrapper._console_role = role
        return wrapper

    return decorator
