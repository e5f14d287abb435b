"""Sign-in and sign-up pages; the forms post to /api/auth/* (app.auth), which set the session cookies."""
from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from app.console.access import current_principal
from app.console.blueprint import bp
from app.extensions import db
from app.models import User


def _next_url() -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    target = request.args.get("next") or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _no_users_yet() -> bool:
    return db.session.execute(select(User.id).limit(1)).first() is None


@bp.get("/sign-in")
def sign_in():
    """Open: the sign-in form (a signed-in visitor goes on; before the first account, the sign-up form)."""
    if current_principal() is not None:
        return redirect(_next_url())
    if _no_users_yet():
        return redirect(url_for("console.sign_up", next=_next_url()))
    return render_template("console/sign_in.html", signup=False, next_url=_next_url())


@bp.get("/signup")  # the link in invitations (the inner rule is added first: url_for names /sign-up)
@bp.get("/sign-up")
def sign_up():
    """Open: the sign-up form; the first account becomes the administrator."""
    if current_principal() is not None:
        return redirect(_next_url())
    return render_template("console/sign_in.html", signup=True, next_url=_next_url(),
                           first=_no_users_yet(), invitation=request.args.get("invitation", ""))

