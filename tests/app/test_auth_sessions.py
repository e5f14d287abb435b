"""Users and sign-in (issue 16): sign-up, sign-in, the session cookie on every /api route with the same
role rules as keys, CSRF, sign-out, and the attacks on them."""
from app.extensions import db
from app.models import UserSession
from app.services.sessions import token_hash
from tests.app.users_support import PASSWORD, admin_client, csrf, login, signup, user_client


def _cookie_headers(res) -> dict:
    return {c.split("=", 1)[0]: c for c in res.headers.getlist("Set-Cookie")}


def test_first_user_becomes_admin_and_gets_a_hashed_session_and_csrf_cookie(app):
    client = app.test_client()
    res = signup(client, "First@Example.com", name="First")
    assert res.status_code == 201, res.json
    user = res.json["data"]["user"]
    assert (user["email"], user["role"]) == ("first@example.com", "admin")
    cookies = _cookie_headers(res)
    assert "HttpOnly" in cookies["magnet_session"] and "SameSite=Lax" in cookies["magnet_session"]
    assert "HttpOnly" not in cookies["magnet_csrf"] and "SameSite=Lax" in cookies["magnet_csrf"]
    assert "Secure" not in cookies["magnet_session"]
    token = client.get_cookie("magnet_session").value
    stored = db.session.execute(db.select(UserSession)).scalar_one()
    assert stored.token_hash == token_hash(token) and token not in stored.token_hash
    assert res.json["data"]["csrf_token"] == client.get_cookie("magnet_csrf").value == stored.csrf_token
    me = client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json["data"]["kind"] == "user" and me.json["data"]["role"] == "admin"


def test_cookie_secure_flag_follows_the_setting(app):
    app.extensions["magnet.config"].auth.cookie_secure = True
    try:
        res = signup(app.test_client(), "a@example.com")
        assert all("Secure" in c for c in _cookie_headers(res).values())
    finally:
        app.extensions["magnet.config"].auth.cookie_secure = False


def test_session_cookie_works_on_api_routes_with_the_roles_of_keys(app):
    admin = admin_client(app)
    viewer = user_client(app, admin, "viewer@example.com", "viewer")
    operator = user_client(app, admin, "op@example.com", "employee")  # the workspace alias of operator
    body = {"name": "p", "type": "user", "template": "Hello {{name}}", "variables": ["name"]}
    for client in (viewer, operator, admin):
        assert client.get("/api/prompt-templates").status_code == 200
        assert client.get("/api/knowledge-sources").status_code == 200
    denied = viewer.post("/api/prompt-templates", json=body, headers=csrf(viewer))
    assert denied.status_code == 403 and denied.json["error"]["code"] == "insufficient_role"
    assert operator.post("/api/prompt-templates", json=body, headers=csrf(operator)).status_code == 201
    # Admin-only routes: keys and users.
    assert operator.get("/api/keys").status_code == 403
    assert admin.get("/api/keys").status_code == 200
    assert viewer.get("/api/users").status_code == 403
    assert admin.get("/api/users").json["pagination"]["total"] == 3


def test_a_write_without_or_with_a_wrong_csrf_token_is_refused(app):
    admin = admin_client(app)
    body = {"name": "p", "type": "user", "template": "Hello {{name}}", "variables": ["name"]}
    missing = admin.post("/api/prompt-templates", json=body)
    assert missing.status_code == 403 and missing.json["error"]["code"] == "csrf_failed"
    wrong = admin.post("/api/prompt-templates", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "csrf_failed"
    # Another session's token is no good either: the token is tied to its session.
    other = app.test_client()
    assert login(other, "admin@example.com").status_code == 200
    stolen = admin.post("/api/prompt-templates", json=body, headers=csrf(other))
    assert stolen.status_code == 403 and stolen.json["error"]["code"] == "csrf_failed"
    assert db.session.execute(db.text("SELECT count(*) FROM prompt_templates")).scalar() == 0
    assert admin.post("/api/prompt-templates", json=body, headers=csrf(admin)).status_code == 201


def test_an_api_key_is_not_csrf_checked_and_wins_over_a_cookie(app, make_key):
    admin = admin_client(app)
    viewer_key = make_key("viewer")
    body = {"name": "p", "type": "user", "template": "Hello {{name}}", "variables": ["name"]}
    # The admin's cookie goes along, but the viewer key decides.
    res = admin.post("/api/prompt-templates", json=body, headers={"X-API-Key": viewer_key, **csrf(admin)})
    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role"
    operator_key = make_key("operator")
    assert app.test_client().post("/api/prompt-templates", json=body,
                                  headers={"X-API-Key": operator_key}).status_code == 201
    me = admin.get("/api/auth/me", headers={"X-API-Key": viewer_key})
    assert me.json["data"]["kind"] == "api_key" and me.json["data"]["role"] == "viewer"


def test_login_issues_a_new_session_token_session_fixation(app):
    admin_client(app)
    client = app.test_client()
    # An attacker plants a cookie of their choosing (or a valid session of theirs) before the victim signs in.
    client.set_cookie("magnet_session", "attacker-chosen-token")
    res = login(client, "admin@example.com")
    assert res.status_code == 200
    new = client.get_cookie("magnet_session").value
    assert new != "attacker-chosen-token"
    second = app.test_client()
    login(second, "admin@example.com")
    assert second.get_cookie("magnet_session").value != new
    assert db.session.execute(db.select(db.func.count()).select_from(UserSession)).scalar() == 3


def test_logout_kills_the_token_on_the_server(app):
    admin = admin_client(app)
    token = admin.get_cookie("magnet_session").value
    assert admin.post("/api/auth/logout").json["error"]["code"] == "csrf_failed"
    res = admin.post("/api/auth/logout", headers=csrf(admin))
    assert res.status_code == 200
    assert admin.get_cookie("magnet_session") is None  # cleared in the browser too
    replay = app.test_client()
    replay.set_cookie("magnet_session", token)
    res = replay.get("/api/auth/me")
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_session"


def test_a_deactivated_users_sessions_stop_at_once(app):
    admin = admin_client(app)
    operator = user_client(app, admin, "op@example.com", "operator")
    assert operator.get("/api/agents").status_code == 200
    user_id = operator.get("/api/auth/me").json["data"]["user"]["id"]
    res = admin.put(f"/api/users/{user_id}", json={"is_active": False}, headers=csrf(admin))
    assert res.status_code == 200 and res.json["data"]["is_active"] is False
    assert operator.get("/api/agents").status_code == 401
    # And they cannot sign in again; the answer is the generic one.
    res = login(app.test_client(), "op@example.com")
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_credentials"


def test_wrong_password_and_unknown_email_read_the_same(app):
    admin_client(app)
    wrong = login(app.test_client(), "admin@example.com", "not the password")
    unknown = login(app.test_client(), "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["error"] == unknown.json["error"]


def test_login_is_throttled_per_account_with_retry_after(app):
    admin_client(app)
    for _ in range(5):
        assert login(app.test_client(), "admin@example.com", "wrong password!").status_code == 401
    res = login(app.test_client(), "admin@example.com")  # even the right password, now
    assert res.status_code == 429 and res.json["error"]["code"] == "too_many_attempts"
    assert 0 < int(res.headers["Retry-After"]) <= 15 * 60
    # An address with no account is throttled the same way (a 429 tells nothing about accounts).
    for _ in range(5):
        login(app.test_client(), "ghost@example.com", "wrong password!")
    assert login(app.test_client(), "ghost@example.com", "wrong password!").status_code == 429


def test_login_is_throttled_per_address(app):
    settings = app.extensions["magnet.config"].auth
    old, settings.login_max_failures_ip = settings.login_max_failures_ip, 3
    try:
        admin_client(app)
        for n in range(3):
            login(app.test_client(), f"someone{n}@example.com", "wrong password!")
        res = login(app.test_client(), "admin@example.com")
        assert res.status_code == 429 and "Retry-After" in res.headers
    finally:
        settings.login_max_failures_ip = old


def test_signup_is_closed_without_an_invitation_and_invitations_are_single_use(app):
    admin = admin_client(app)
    closed = signup(app.test_client(), "late@example.com")
    assert closed.status_code == 403 and closed.json["error"]["code"] == "signups_closed"
    invite = admin.post("/api/auth/invitations", json={"role": "operator"}, headers=csrf(admin)).json["data"]
    assert invite["signup_url"].endswith(invite["token"])
    first = signup(app.test_client(), "late@example.com", invitation=invite["token"])
    assert first.status_code == 201 and first.json["data"]["user"]["role"] == "operator"
    reused = signup(app.test_client(), "later@example.com", invitation=invite["token"])
    assert reused.status_code == 403 and reused.json["error"]["code"] == "invalid_invitation"
    assert signup(app.test_client(), "x@example.com", invitation="made-up").status_code == 403


def test_open_signups_join_as_viewers(app):
    admin = admin_client(app)
    res = admin.put("/api/workspace", json={"signups_open": True}, headers=csrf(admin))
    assert res.status_code == 200 and res.json["data"]["signups_open"] is True
    joined = signup(app.test_client(), "walk-in@example.com")
    assert joined.status_code == 201 and joined.json["data"]["user"]["role"] == "viewer"


def test_a_non_admin_cannot_change_roles(app):
    admin = admin_client(app)
    operator = user_client(app, admin, "op@example.com", "operator")
    me = operator.get("/api/auth/me").json["data"]["user"]["id"]
    res = operator.put(f"/api/users/{me}", json={"role": "admin"}, headers=csrf(operator))
    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role"
    assert operator.get("/api/auth/me").json["data"]["role"] == "operator"


def test_the_last_admin_cannot_be_demoted_or_deactivated(app):
    admin = admin_client(app)
    me = admin.get("/api/auth/me").json["data"]["user"]["id"]
    for change in ({"role": "viewer"}, {"role": "guest"}, {"is_active": False}):
        res = admin.put(f"/api/users/{me}", json=change, headers=csrf(admin))
        assert res.status_code == 409 and res.json["error"]["code"] == "last_admin", change
    second = user_client(app, admin, "second@example.com", "admin")
    assert admin.put(f"/api/users/{me}", json={"role": "employee"}, headers=csrf(admin)).json["data"]["role"] \
        == "operator"
    assert second.get("/api/users").status_code == 200


def test_password_change_needs_the_current_one_and_ends_other_sessions(app):
    admin = admin_client(app)
    other = app.test_client()
    login(other, "admin@example.com")
    bad = admin.put("/api/auth/password", json={"current_password": "nope nope nope", "new_password": "x" * 12},
                    headers=csrf(admin))
    assert bad.status_code == 403
    res = admin.put("/api/auth/password", json={"current_password": PASSWORD, "new_password": "a new long one"},
                    headers=csrf(admin))
    assert res.status_code == 200 and res.json["data"]["sessions_ended"] == 1
    assert other.get("/api/auth/me").status_code == 401
    assert admin.get("/api/auth/me").status_code == 200
    assert login(app.test_client(), "admin@example.com", "a new long one").status_code == 200


def test_pages_outside_api_see_the_session_without_requiring_it_and_check_csrf(app):
    """The console's pages (outside /api) call current_principal(): loaded when signed in, None otherwise
    (the page redirects itself); their writes need the CSRF token too, as a form field."""
    from flask import jsonify

    from app import create_app
    from app.auth import csrf_exempt, current_principal

    pages = create_app(app.extensions["magnet.config"])

    @pages.route("/whoami", methods=["GET", "POST"])
    def whoami():
        principal = current_principal()
        return jsonify(user_id=principal.user_id if principal else None, role=principal.role if principal else None)

    @pages.route("/sign-in-form", methods=["POST"])
    @csrf_exempt
    def sign_in_form():
        return jsonify(ok=True)

    try:
        anonymous = pages.test_client()
        assert anonymous.get("/whoami").json == {"user_id": None, "role": None}
        browser = pages.test_client()
        user = signup(browser, "admin@example.com").json["data"]["user"]
        assert browser.get("/whoami").json == {"user_id": user["id"], "role": "admin"}
        refused = browser.post("/whoami", data={"x": "1"})
        assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf_failed"
        token = browser.get_cookie("magnet_csrf").value
        assert browser.post("/whoami", data={"csrf_token": token}).json["user_id"] == user["id"]
        assert browser.post("/sign-in-form", data={}).status_code == 200
        # A dead session cookie on a page: no principal, and the cookies are cleared.
        browser.post("/api/auth/logout", headers={"X-CSRF-Token": token})
        stale = pages.test_client()
        stale.set_cookie("magnet_session", "no-such-session")
        res = stale.get("/whoami")
        assert res.json["user_id"] is None and stale.get_cookie("magnet_session") is None
    finally:
        with pages.app_context():
            db.engine.dispose()


def test_sessions_expire_and_the_expiry_slides_with_use(app):
    from datetime import timedelta

    from app.models import utcnow

    admin = admin_client(app)
    session = db.session.execute(db.select(UserSession)).scalar_one()
    soon = utcnow() + timedelta(minutes=5)
    session.last_seen_at, session.expires_at = utcnow() - timedelta(minutes=2), soon
    db.session.commit()
    res = admin.get("/api/auth/me")
    assert res.status_code == 200
    assert any(c.startswith("magnet_session=") for c in res.headers.getlist("Set-Cookie"))  # cookie renewed
    db.session.refresh(session)
    assert session.expires_at > soon + timedelta(days=13)
    session.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    res = admin.get("/api/auth/me")
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_session"


def test_an_invitation_for_one_address_or_past_its_expiry_is_refused(app):
    from app.models import Invitation, utcnow

    admin = admin_client(app)
    invite = admin.post("/api/auth/invitations", json={"role": "guest", "email": "Bob@Example.com"},
                        headers=csrf(admin)).json["data"]
    assert invite["role"] == "viewer" and invite["email"] == "bob@example.com"
    other = signup(app.test_client(), "mallory@example.com", invitation=invite["token"])
    assert other.status_code == 403 and other.json["error"]["code"] == "invalid_invitation"
    expiring = admin.post("/api/auth/invitations", json={}, headers=csrf(admin)).json["data"]
    db.session.execute(db.update(Invitation).where(Invitation.id == expiring["id"]).values(expires_at=utcnow()))
    db.session.commit()
    late = signup(app.test_client(), "late@example.com", invitation=expiring["token"])
    assert late.status_code == 403 and late.json["error"]["code"] == "invalid_invitation"
    assert signup(app.test_client(), "bob@example.com", invitation=invite["token"]).status_code == 201
    # A failed sign-up left no account behind.
    assert login(app.test_client(), "mallory@example.com").status_code == 401


def test_every_api_operation_takes_a_session_with_the_roles_of_keys(app):
    """The role matrix (tests/app/test_role_matrix.py) again, signed in instead of with keys: a weaker
    user's session is 403 insufficient_role, a strong enough one passes, and every write without the
    CSRF token is 403 csrf_failed."""
    import re

    rank = ["viewer", "operator", "admin"]
    admin = admin_client(app)
    sessions = {"admin": admin, "viewer": user_client(app, admin, "v@example.com", "viewer"),
                "operator": user_client(app, admin, "o@example.com", "operator")}
    spec = app.test_client().get("/api/openapi.json").json
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            need = op["x-required-role"]
            if need == "open":
                continue
            if (method, path) == ("post", "/api/auth/logout"):
                continue  # it would end the session the walk uses; tested on its own above
            url = re.sub(r"\{[^}]+\}", "unknown_id", path)
            kwargs = {"json": {}} if method in {"post", "put", "patch"} else {}
            where = f"{method.upper()} {path}"
            for role, client in sessions.items():
                res = getattr(client, method)(url, headers=csrf(client), **kwargs)
                if rank.index(role) < rank.index(need):
                    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role", where
                else:
                    assert res.status_code not in (401, 403) and res.status_code < 500, \
                        f"{where} as {role} gave {res.status_code}"
            if method != "get":
                res = getattr(admin, method)(url, **kwargs)
                assert res.status_code == 403 and res.json["error"]["code"] == "csrf_failed", where
            checked += 1
    assert checked >= 50


def test_long_dead_sessions_are_forgotten_at_the_next_sign_in(app):
    from datetime import timedelta

    from app.models import utcnow

    admin = admin_client(app)
    admin.post("/api/auth/logout", headers=csrf(admin))
    login(app.test_client(), "admin@example.com")
    db.session.execute(db.update(UserSession).where(UserSession.revoked_at.is_not(None))
                       .values(revoked_at=utcnow() - timedelta(days=31)))
    db.session.commit()
    assert db.session.execute(db.select(db.func.count()).select_from(UserSession)).scalar() == 2
    login(app.test_client(), "admin@example.com")
    db.session.commit()
    live = db.session.execute(db.select(UserSession)).scalars().all()
    assert len(live) == 2 and all(s.revoked_at is None for s in live)


def test_a_cross_site_form_cannot_sign_a_browser_in(app):
    """Login CSRF: a form on another site can post urlencoded or text/plain bodies, never JSON."""
    import json

    admin_client(app)
    browser = app.test_client()
    form = browser.post("/api/auth/login", data={"email": "admin@example.com", "password": PASSWORD})
    plain = browser.post("/api/auth/login", data=json.dumps({"email": "admin@example.com", "password": PASSWORD}),
                         content_type="text/plain")
    assert form.status_code == plain.status_code == 415
    assert browser.get_cookie("magnet_session") is None
