"""Sign-in by emailed link (issue 16), through a real SMTP server on 127.0.0.1."""
import re

import pytest

from tests.app.users_support import admin_client, csrf
from tests.conftest import wait_for
from tests.support.smtp_server import SmtpServer

LINK = re.compile(r"http://127\.0\.0\.1:5000(/auth/magic/[A-Za-z0-9_-]+)")


@pytest.fixture
def smtp_settings(app):
    settings = app.extensions["magnet.config"].auth
    saved = dict(vars(settings))
    yield settings
    vars(settings).update(saved)


def _link(smtp) -> str:
    messages = wait_for(lambda: list(smtp.inbox.messages), lambda m: len(m) >= 1, timeout=30)
    assert messages, "no email arrived"
    body = messages[-1].get_payload(decode=True).decode()
    return LINK.search(body).group(1)


def test_a_magic_link_signs_in_once(app, smtp_settings):
    admin_client(app)
    with SmtpServer() as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        client = app.test_client()
        res = client.post("/api/auth/magic-link", json={"email": "Admin@Example.com"})
        assert res.status_code == 202
        path = _link(smtp)
        assert smtp.inbox.messages[0]["To"] == "admin@example.com"
    res = client.get(path)
    assert res.status_code == 303 and res.headers["Location"] == "/"
    me = client.get("/api/auth/me")
    assert me.status_code == 200 and me.json["data"]["user"]["email"] == "admin@example.com"
    assert client.get("/api/agents").status_code == 200
    assert client.post("/api/auth/logout", headers=csrf(client)).status_code == 200
    again = app.test_client().get(path)  # the link works once
    assert again.status_code == 403 and again.json["error"]["code"] == "invalid_link"


def test_an_unknown_address_gets_the_same_answer_and_no_email(app, smtp_settings):
    admin_client(app)
    with SmtpServer() as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        unknown = app.test_client().post("/api/auth/magic-link", json={"email": "nobody@example.com"})
        known = app.test_client().post("/api/auth/magic-link", json={"email": "admin@example.com"})
        assert unknown.status_code == known.status_code == 202
        assert unknown.json == known.json
        _link(smtp)
        assert [m["To"] for m in smtp.inbox.messages] == ["admin@example.com"]


def test_an_expired_link_does_not_sign_in(app, smtp_settings):
    from app.extensions import db
    from app.models import LoginToken, utcnow

    admin_client(app)
    with SmtpServer() as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        app.test_client().post("/api/auth/magic-link", json={"email": "admin@example.com"})
        path = _link(smtp)
    db.session.execute(db.update(LoginToken).values(expires_at=utcnow()))
    db.session.commit()
    res = app.test_client().get(path)
    assert res.status_code == 403 and res.json["error"]["code"] == "invalid_link"
    assert app.test_client().get("/auth/magic/made-up").status_code == 403


def test_starttls_and_login_to_the_smtp_server(app, smtp_settings, tmp_path):
    admin_client(app)
    with SmtpServer(tls_folder=tmp_path, login=("mailer", "s3cret")) as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        smtp_settings.smtp_starttls, smtp_settings.smtp_ca_file = True, str(smtp.cert_path)
        smtp_settings.smtp_user, smtp_settings.smtp_password = "mailer", "s3cret"
        assert app.test_client().post("/api/auth/magic-link", json={"email": "admin@example.com"}).status_code == 202
        _link(smtp)
        assert smtp.inbox.logins == ["mailer"]


def test_asking_again_and_again_does_not_flood_the_mailbox(app, smtp_settings):
    from app.services.magic_links import MAX_LINKS_PER_WINDOW

    admin_client(app)
    with SmtpServer() as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        for _ in range(MAX_LINKS_PER_WINDOW + 3):
            res = app.test_client().post("/api/auth/magic-link", json={"email": "admin@example.com"})
            assert res.status_code == 202
        wait_for(lambda: len(smtp.inbox.messages), lambda n: n >= MAX_LINKS_PER_WINDOW, timeout=30)
        from app.extensions import db
        from app.models import LoginToken

        assert db.session.execute(db.select(db.func.count()).select_from(LoginToken)).scalar() == MAX_LINKS_PER_WINDOW
    assert len(smtp.inbox.messages) == MAX_LINKS_PER_WINDOW


def test_a_magic_link_replaces_a_dead_session_cookie(app, smtp_settings):
    admin_client(app)
    with SmtpServer() as smtp:
        smtp_settings.smtp_host, smtp_settings.smtp_port = "127.0.0.1", smtp.port
        app.test_client().post("/api/auth/magic-link", json={"email": "admin@example.com"})
        path = _link(smtp)
    browser = app.test_client()
    browser.set_cookie("magnet_session", "dead-session-token")
    assert browser.get(path).status_code == 303
    assert browser.get_cookie("magnet_session").value != "dead-session-token"
    assert browser.get("/api/auth/me").status_code == 200
