"""The console's pages with the Flask client: sign-in redirects, roles like the API's (a viewer never sees a
write action succeed), CSP, the live sync stream, and HTML (not JSON) error pages."""
import re

import pytest

from app.console import CSP
from tests.app.users_support import csrf, signup

PAGES = ["/", "/sources", "/playground", "/evaluations", "/agents", "/usage"]


@pytest.fixture
def keys(make_key):
    return {role: make_key(role) for role in ("viewer", "operator", "admin")}


@pytest.fixture
def file_source(api):
    res = api.post("/api/knowledge-sources", json={"name": "files", "type": "file"})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _get(client, path, key):
    return client.get(path, headers={"X-API-Key": key})


@pytest.mark.parametrize("path", [*PAGES, "/admin/access", "/sources/ks_x", "/evaluations/compare?base=a&head=b"])
def test_signed_out_visitors_are_sent_to_sign_in(client, path):
    res = client.get(path)
    assert res.status_code == 302
    assert res.headers["Location"].startswith("/sign-in?next=")


def test_sign_in_keeps_the_next_page_on_this_site_only(client):
    for page in ("/sign-in", "/sign-up"):
        assert 'data-then="/sources"' in client.get(f"{page}?next=/sources", follow_redirects=True).text
        assert 'data-then="/"' in client.get(f"{page}?next=//evil.example/x", follow_redirects=True).text
        assert 'data-then="/"' in client.get(f"{page}?next=https://evil.example/", follow_redirects=True).text


def test_before_the_first_account_sign_in_offers_sign_up(app, client):
    res = client.get("/sign-in?next=/sources")
    assert res.status_code == 302 and res.headers["Location"].startswith("/sign-up")
    assert "first account becomes the administrator" in client.get("/sign-up").text
    assert signup(app.test_client(), "first@example.com").status_code == 201
    assert 'id="signin-form"' in client.get("/sign-in").text


def test_a_signed_in_user_sees_pages_and_writes_need_the_csrf_token(app, make_key):
    browser = app.test_client()
    assert signup(browser, "ada@example.com", name="Ada").status_code == 201
    home = browser.get("/")
    assert home.status_code == 200 and "Ada" in home.text and "admin" in home.text
    assert browser.get("/sign-in").status_code == 302  # already signed in: goes on
    form = {"tool": "rag:rag_x", "query": "q"}
    assert browser.post("/playground/ask", data=form).status_code == 403
    assert browser.post("/playground/ask", data=form, headers={"X-CSRF-Token": "forged"}).status_code == 403
    ok = browser.post("/playground/ask", data=form, headers=csrf(browser))
    assert ok.status_code == 200 and "does not exist" in ok.text
    ok = browser.post("/playground/ask", data={**form, "csrf_token": csrf(browser)["X-CSRF-Token"]})
    assert ok.status_code == 200
    # the JSON API the console's forms post to: the same rule
    body = {"name": "files", "type": "file"}
    assert browser.post("/api/knowledge-sources", json=body).status_code == 403
    assert browser.post("/api/knowledge-sources", json=body, headers=csrf(browser)).status_code == 201


def test_every_console_page_declares_its_role(app):
    """Like the API's routes: a console page without a declared role would be open to anyone."""
    open_pages = {"console.static", "console.sign_in", "console.sign_up"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") and rule.endpoint not in open_pages:
            assert getattr(app.view_functions[rule.endpoint], "_console_role", None), rule.rule


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_for_a_viewer_with_a_strict_csp(client, keys, path):
    res = _get(client, path, keys["viewer"])
    assert res.status_code == 200, res.text[:500]
    assert res.headers["Content-Security-Policy"] == CSP
    assert "default-src 'self'" in CSP
    # nothing on the page is loaded from another origin
    assert not re.search(r'(src|href)="(https?:)?//', res.text)


def test_admin_page_is_for_admins_only(client, keys):
    assert _get(client, "/admin/access", keys["operator"]).status_code == 403
    assert "Keys and users" not in _get(client, "/", keys["operator"]).text
    page = _get(client, "/admin/access", keys["admin"])
    assert page.status_code == 200 and 'data-api="/api/keys"' in page.text


def _write_actions(html: str) -> list[tuple[str, str]]:
    """(method, path) of every write the page offers: API forms and API buttons."""
    actions = []
    for form in re.finditer(r"<form[^>]*data-api=\"([^\"]+)\"[^>]*>", html):
        method = re.search(r'data-method="([A-Z]+)"', form.group(0))
        actions.append((method.group(1) if method else "POST", form.group(1)))
    actions += [tuple(b.split(" ", 1)) for b in re.findall(r'data-api-button="([^"]+)"', html)]
    return [(m, p) for m, p in actions if not p.startswith("/api/auth/")]


def test_a_viewer_sees_no_write_form_and_never_succeeds_at_one(client, keys, file_source, api):
    path = f"/sources/{file_source['id']}"
    operator_page = _get(client, path, keys["operator"]).text
    actions = _write_actions(operator_page) + _write_actions(_get(client, "/sources", keys["operator"]).text)
    assert ("POST", f"/api/knowledge-sources/{file_source['id']}/sync") in actions
    assert ("POST", f"/api/knowledge-sources/{file_source['id']}/documents") in actions
    assert ("POST", "/api/knowledge-sources") in actions

    viewer_page = _get(client, path, keys["viewer"]).text
    assert _write_actions(viewer_page) == []
    assert 'id="start-sync"' not in viewer_page and 'id="upload-form"' not in viewer_page
    for method, action in actions:  # what the operator's forms post, sent with the viewer's key
        res = client.open(action, method=method, json={}, headers={"X-API-Key": keys["viewer"]})
        assert res.status_code == 403, (method, action, res.status_code)
    assert api.get(f"/api/knowledge-sources/{file_source['id']}/syncs").json["pagination"]["total"] == 0


def test_the_playground_asks_only_for_operators(client, keys):
    res = client.post("/playground/ask", data={"tool": "rag:rag_x", "query": "q"},
                      headers={"X-API-Key": keys["viewer"]})
    assert res.status_code == 403
    assert 'id="ask-form"' not in _get(client, "/playground", keys["viewer"]).text
    missing = client.post("/playground/ask", data={"tool": "rag:rag_x", "query": "q"},
                          headers={"X-API-Key": keys["operator"]})
    assert missing.status_code == 200 and "does not exist" in missing.text


def test_a_missing_thing_is_an_html_page(client, keys):
    res = _get(client, "/sources/ks_nope", keys["viewer"])
    assert res.status_code == 404
    assert res.mimetype == "text/html" and "does not exist" in res.text


def test_sync_progress_streams_until_the_run_ends(client, keys, api, file_source, worker):
    from tests.conftest import wait_for

    sid = file_source["id"]
    up = api.post(f"/api/knowledge-sources/{sid}/documents",
                  data={"files": [(__import__("io").BytesIO(b"Refunds take fourteen days."), "faq.txt")]},
                  content_type="multipart/form-data")
    assert up.status_code == 202, up.json
    run_id = up.json["data"]["sync"]["id"]
    page = _get(client, f"/sources/{sid}", keys["viewer"]).text
    stream = _get(client, f"/sources/{sid}/syncs/{run_id}/events", keys["viewer"])
    assert stream.mimetype == "text/event-stream"
    events = re.findall(r"event: (\w+)\ndata: (.*)\n", stream.text)
    assert events[-1][0] == "end" and '"status": "completed"' in events[-1][1]
    assert "1 added" in events[-1][1]
    wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}").json["data"]["status"], lambda s: s == "idle")
    page = _get(client, f"/sources/{sid}", keys["viewer"]).text
    assert 'data-document="faq.txt"' in page and "indexed" in page
    failed = _get(client, f"/sources/{sid}?status=failed", keys["viewer"]).text
    assert 'data-document="faq.txt"' not in failed


def test_agent_page_offers_chat_and_edit_to_operators_only(client, keys, api):
    res = api.post("/api/agents", json={"name": "helper", "system_prompt": "Be brief."})
    assert res.status_code == 201, res.json
    path = f"/agents/{res.json['data']['id']}"
    operator = _get(client, path, keys["operator"]).text
    assert 'id="chat-form"' in operator and 'data-api="/api/agents/' in operator
    viewer = _get(client, path, keys["viewer"]).text
    assert 'id="chat-form"' not in viewer and _write_actions(viewer) == []
    assert "Be brief." in viewer
