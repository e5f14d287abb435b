"""`GET /auth/magic/<token>`: the emailed sign-in link. Outside /api because a person opens it in a
browser: it sets the session cookies and sends them to the console."""
from flask import Flask, redirect, request

from app.auth import set_session_cookies
from app.services import magic_links


def magic_sign_in(token: str):
    signed = magic_links.redeem(token, ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))
    response = redirect("/", code=303)
    set_session_cookies(response, signed.token, signed.session.csrf_token)
    return response


def register(app: Flask) -> None:
    app.add_url_rule("/auth/magic/<token>", "magic_sign_in", magic_sign_in, methods=["GET"])
