"""Sign-in and sign-up pages; the forms post to /api/auth/* (app.auth), which set the session cookies."""
from flask import redirect, render_template, request, url_for

from app.console.access import current_principal
from app.console.blueprint import bp


def _next_url() -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    target = request.args.get("next") or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@bp.get("/sign-in")
def sign_in():
    """Open: the sign-in form (a signed-in visitor goes on)."""
    if current_principal() is not None:
        return redirect(_next_url())
    return render_template("console/sign_in.html", signup=False, next_url=_next_url())


@bp.get("/sign-up")
def sign_up():
    """Open: the sign-up form; the first account becomes the administrator."""
    if current_principal() is not None:
        return redirect(_next_url())
    return render_template("console/sign_in.html", signup=True, next_url=_next_url())


__all__ = ["sign_in", "sign_up", "url_for"]
