"""Helpers for the users and sign-in tests: sign up / sign in through the real routes, with cookies."""
from __future__ import annotations

PASSWORD = "correct horse battery"


def csrf(client) -> dict:
    cookie = client.get_cookie("magnet_csrf")
    return {"X-CSRF-Token": cookie.value} if cookie else {}


def signup(client, email: str, *, name: str = "Someone", password: str = PASSWORD, **extra):
    return client.post("/api/auth/signup", json={"email": email, "password": password, "name": name, **extra})


def login(client, email: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"email": email, "password": password})


def admin_client(app):
    """A test client signed in as the first user (who becomes admin)."""
    client = app.test_client()
    res = signup(client, "admin@example.com", name="Ada Admin")
    assert res.status_code == 201, res.json
    return client


def user_client(app, admin, email: str, role: str):
    """A client signed in as a new user of `role`, invited by `admin` (a signed-in admin client)."""
    invite = admin.post("/api/auth/invitations", json={"role": role}, headers=csrf(admin))
    assert invite.status_code == 201, invite.json
    client = app.test_client()
    res = signup(client, email, invitation=invite.json["data"]["token"])
    assert res.status_code == 201, res.json
    return client
