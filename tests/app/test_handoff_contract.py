"""The hand-off contract (/api/v1) as an outside agent calls it, and the reviewers' side of it.

Real parts: the app on SQLite/PostgreSQL, the Huey consumer delivering webhooks, and a real HTTP server
on 127.0.0.1 receiving them (the tests' outbound allowlist lets loopback through, as for API tools).
"""
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.extensions import db
from app.models import HandoffRequest
from app.services import handoff_accounts, handoff_webhooks
from tests.conftest import wait_for

OWNER = "Owner contact: Ada Lovelace, +14155550123, ada@example.com"


@pytest.fixture
def open_registration(app, monkeypatch):
    monkeypatch.setattr(app.extensions["magnet.config"], "handoff_registration", "open")


def _register(client, name="scout", email=None, **extra):
    body = {"name": name, "description": "A research agent", "email": email or f"{name}@example.com",
            "phone": "+14155550123", "password": "s3cret!", **extra}
    return client.post("/api/v1/agents/register", json=body)


def _account(client, name="scout"):
    res = _register(client, name)
    assert res.status_code == 201, res.json
    return res.json["data"]


def _auth(key, header="bearer"):
    return {"Authorization": f"Bearer {key}"} if header == "bearer" else {"x-api-key": key}


def _contract_error(res, status, text=None):
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True))
    assert set(res.json) == {"error", "hint"}, res.json
    assert res.json["error"] and res.json["hint"]
    if text:
        assert text in res.json["error"], res.json


class _Receiver:
    """A webhook endpoint on 127.0.0.1 answering the scripted statuses in turn (then 200)."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    hook = _Receiver([500])
    yield hook
    hook.close()


def test_the_whole_contract_register_request_poll_converse_complete_and_webhook(
        client, open_registration, make_key, worker, receiver, monkeypatch):
    monkeypatch.setattr(handoff_webhooks, "BACKOFF_SECONDS", 0.05)
    account = _account(client)
    key, secret = account["api_key"], account["webhook_secret"]
    assert key.startswith("magnet_ak_") and secret.startswith("whsec_")
    assert account["account"]["name"] == "scout" and "password" not in account["account"]

    _contract_error(_register(client, "scout", "other@example.com"), 409, "Agent name already taken")
    _contract_error(_register(client, "scout2", "SCOUT@example.com"), 409, "Email already registered")

    # Login issues a NEW key each time; the older one keeps working.
    login = client.post("/api/v1/agents/login", json={"email": "scout@example.com", "password": "s3cret!"})
    assert login.status_code == 200 and login.json["data"]["new_key"] is True
    second_key = login.json["data"]["api_key"]
    assert second_key != key
    _contract_error(client.post("/api/v1/agents/login", json={"email": "scout@example.com", "password": "nope!!"}),
                    401, "Invalid credentials")

    # Without the owner-contact block: accepted, with a warning, and flagged to reviewers.
    loose = client.post("/api/v1/request", headers=_auth(key), json={
        "title": "Call the venue", "instructions": "Ask whether the hall is free on Friday.", "objective": "A yes or no"})
    assert loose.status_code == 201 and "Owner contact" in loose.json["data"]["warning"]
    assert loose.json["data"]["max_minutes"] == 60 and loose.json["data"]["relaxed"] is True
    created = client.post("/api/v1/request", headers=_auth(second_key, "x-api-key"), json={
        "title": "Book a table", "instructions": f"Book a table for two at 8pm.\n{OWNER}",
        "objective": "A confirmed booking", "max_minutes": 30, "relaxed": False, "webhook_url": receiver.url})
    assert created.status_code == 201, created.json
    request = created.json["data"]
    assert "warning" not in request and request["status"] == "PENDING" and request["result"] is None
    assert _parse(request["deadline_at"]) - _parse(request["created_at"]) == timedelta(minutes=30)

    mark = datetime.now(UTC).isoformat()
    assert _poll(client, key, since=mark)["count"] == 0
    listed = _poll(client, key, status="PENDING")
    assert listed["count"] == 2 and {r["id"] for r in listed["requests"]} == {request["id"], loose.json["data"]["id"]}

    # The reviewers' queue shows both, the loose one flagged.
    reviewer = make_key("reviewer")
    queue = client.get("/api/review/tasks", headers=_auth(reviewer)).json["data"]
    assert [item["kind"] for item in queue] == ["handoff", "handoff"]
    flags = {item["id"]: item["flags"] for item in queue}
    assert flags == {request["id"]: [], loose.json["data"]["id"]: ["no_owner_contact"]}
    assert queue[0]["requester"] == {"type": "account", "id": account["account"]["id"], "name": "scout"}

    # Conversation, both directions.
    sent = client.post("/api/v1/conversation", headers=_auth(key),
                       json={"request_id": request["id"], "content": "Window seat if possible."})
    assert sent.status_code == 201 and sent.json["data"]["author"] == "requester"
    task_url = f"/api/review/tasks/{request['id']}"
    assert client.post(f"{task_url}/claim", headers=_auth(reviewer)).json["data"]["status"] == "IN_PROGRESS"
    assert _poll(client, key, since=mark)["requests"][0]["status"] == "IN_PROGRESS"
    reply = client.post(f"{task_url}/messages", headers=_auth(reviewer), json={"content": "Any time limit?"})
    assert reply.status_code == 201
    talk = client.get(f"/api/v1/conversation?request_id={request['id']}", headers=_auth(key)).json["data"]
    assert [(m["author"], m["content"]) for m in talk["messages"]] == [
        ("requester", "Window seat if possible."), ("reviewer", "Any time limit?")]

    # Completion: visible to `since` polling at once, and a signed webhook (retried after a 500).
    before_completion = datetime.now(UTC).isoformat()
    done = client.post(f"{task_url}/complete", headers=_auth(reviewer), json={"result": "Booked for 8pm, table 4."})
    assert done.status_code == 200 and done.json["data"]["status"] == "COMPLETED"
    changed = _poll(client, key, since=before_completion)
    assert changed["count"] == 1 and changed["requests"][0]["result"] == "Booked for 8pm, table 4."
    one = client.get(f"/api/v1/request/{request['id']}", headers=_auth(key)).json["data"]
    assert one["status"] == "COMPLETED" and one["completed_at"] and one["overdue"] is False

    detail = wait_for(lambda: client.get(task_url, headers=_auth(reviewer)).json["data"],
                      lambda d: d["webhook_status"] in ("delivered", "failed"), timeout=30)
    assert detail["webhook_status"] == "delivered" and detail["webhook_attempts"] == 2
    assert len(receiver.calls) == 2
    for call in receiver.calls:
        expected = "sha256=" + hmac.new(secret.encode(), call["headers"]["x-magnet-timestamp"].encode() + b"." +
                                        call["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call["headers"]["x-magnet-signature"], expected)
    payload = json.loads(receiver.calls[-1]["body"])
    assert payload["event"] == "request.completed" and payload["data"]["id"] == request["id"]
    assert payload["data"]["result"] == "Booked for 8pm, table 4."
    actions = [(e["action"], e["actor"]) for e in detail["events"]]
    reviewer_id = detail["claimed_by"]
    assert actions[:5] == [("created", account["account"]["id"]), ("message", account["account"]["id"]),
                           ("claimed", reviewer_id), ("message", reviewer_id), ("completed", reviewer_id)]
    assert [a for a, _ in actions[5:]] == ["webhook_attempt_failed", "webhook_delivered"]


def _parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _poll(client, key, **query):
    res = client.get("/api/v1/requests", headers=_auth(key), query_string=query)
    assert res.status_code == 200, res.json
    return res.json["data"]


def test_registration_needs_an_admins_invitation_unless_open(client, make_key):
    _contract_error(_register(client), 403, "invitation")
    _contract_error(_register(client, invitation="magnet_inv_made-up"), 403)
    admin = make_key("admin")
    by_operator = client.post("/api/handoff/invitations", headers=_auth(make_key("operator")), json={})
    assert by_operator.status_code == 403 and by_operator.json["error"]["code"] == "insufficient_role"
    invitation = client.post("/api/handoff/invitations", headers=_auth(admin), json={"note": "for scout"})
    assert invitation.status_code == 201, invitation.json
    token = invitation.json["data"]["token"]
    assert _register(client, invitation=token).status_code == 201
    _contract_error(_register(client, "scout2", invitation=token), 403, "Invitation")


def test_handoff_and_reviewer_keys_reach_only_their_routes(client, open_registration, make_key):
    handoff_key = _account(client)["api_key"]
    for path in ("/api/keys", "/api/models", "/api/agents", "/api/review/tasks"):
        res = client.get(path, headers=_auth(handoff_key))
        assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role", path
    assert client.post("/api/keys", headers=_auth(handoff_key), json={"name": "x", "role": "admin"}).status_code == 403

    reviewer = make_key("reviewer")
    assert client.get("/api/review/tasks", headers=_auth(reviewer)).status_code == 200
    for path in ("/api/keys", "/api/models", "/api/conversations", "/api/usage/stats"):
        assert client.get(path, headers=_auth(reviewer)).status_code == 403, path
    assert client.get("/api/review/tasks", headers=_auth(make_key("viewer"))).status_code == 403
    assert client.get("/api/review/tasks", headers=_auth(make_key("operator"))).status_code == 200

    # A platform key is no hand-off account's key.
    _contract_error(client.get("/api/v1/requests", headers=_auth(make_key("admin"))), 401, "Invalid API key")
    _contract_error(client.get("/api/v1/requests"), 401, "Missing API key")


@pytest.mark.parametrize("path, body", [
    ("/api/v1/agents/register", {"name": "", "email": "a@b.co", "phone": "+14155550123", "password": "123456"}),
    ("/api/v1/agents/register", {"name": "n" * 51, "email": "a@b.co", "phone": "+14155550123", "password": "123456"}),
    ("/api/v1/agents/register", {"name": "n", "email": "not-an-email", "phone": "+14155550123", "password": "123456"}),
    ("/api/v1/agents/register", {"name": "n", "email": "a@b.co", "phone": "0155 555", "password": "123456"}),
    ("/api/v1/agents/register", {"name": "n", "email": "a@b.co", "phone": "+14155550123", "password": "12345"}),
    ("/api/v1/agents/register", {"name": "n", "description": "d" * 501, "email": "a@b.co", "phone": "+14155550123",
                                 "password": "123456"}),
    ("/api/v1/agents/login", {"password": "123456"}),
    ("/api/v1/agents/login", {"email": "a@b.co", "telegram_user_id": "42", "password": "123456"}),
    ("/api/v1/request", {"title": "t", "instructions": "i"}),
    ("/api/v1/request", {"title": "t", "instructions": "i", "objective": "o", "max_minutes": 0}),
    ("/api/v1/request", {"title": "t", "instructions": "i", "objective": "o", "relaxed": "yes"}),
    ("/api/v1/request", {"title": "t", "instructions": "i", "objective": "o", "webhook_url": "ftp://x"}),
    ("/api/v1/request", {"title": "t", "instructions": "i", "objective": "o", "unknown": 1}),
    ("/api/v1/conversation", {"request_id": "hreq_x"}),
])
def test_bad_input_gets_the_contracts_error_format(client, open_registration, path, body):
    key = _account(client, "bad-input")["api_key"]
    _contract_error(client.post(path, headers=_auth(key), json=body), 400)


def test_bad_queries_ids_bodies_and_other_accounts_requests(client, open_registration):
    key = _account(client, "one")["api_key"]
    other = _account(client, "two")["api_key"]
    for query in ({"status": "DONE"}, {"status": ","}, {"limit": 101}, {"page": 11}, {"since": "yesterday"},
                  {"limt": 5}):
        _contract_error(client.get("/api/v1/requests", headers=_auth(key), query_string=query), 400)
    _contract_error(client.get("/api/v1/request/hreq_missing", headers=_auth(key)), 404)
    _contract_error(client.get("/api/v1/conversation", headers=_auth(key)), 400)
    _contract_error(client.post("/api/v1/request", headers={**_auth(key), "Content-Type": "application/json"},
                                data="{not json"), 400)
    _contract_error(client.post("/api/v1/request", headers=_auth(key), data="x", content_type="text/plain"), 415)
    _contract_error(client.post("/api/v1/request", headers=_auth(key),
                                json={"title": "t\u0000", "instructions": "i", "objective": "o"}), 400)
    _contract_error(client.post("/api/v1/request", headers=_auth(key), json={
        "title": "t", "instructions": "i", "objective": "o", "webhook_url": "http://10.1.2.3/hook"}), 400, "webhook_url")
    mine = client.post("/api/v1/request", headers=_auth(key), json={
        "title": "t", "instructions": "i", "objective": "o"}).json["data"]["id"]
    # Another account's request is as unknown as a missing one.
    _contract_error(client.get(f"/api/v1/request/{mine}", headers=_auth(other)), 404)
    _contract_error(client.post("/api/v1/conversation", headers=_auth(other),
                                json={"request_id": mine, "content": "hi"}), 404)
    assert _poll(client, other)["count"] == 0


def test_a_key_gets_100_requests_a_minute_then_429_with_a_hint(client, open_registration, monkeypatch):
    monkeypatch.setattr(handoff_accounts, "_minute", lambda: 1_000)
    key = _account(client)["api_key"]
    fresh = client.post("/api/v1/agents/login", json={"email": "scout@example.com", "password": "s3cret!"})
    for _ in range(handoff_accounts.RATE_PER_MINUTE):
        assert client.get("/api/v1/requests", headers=_auth(key)).status_code == 200
    limited = client.get("/api/v1/requests", headers=_auth(key))
    _contract_error(limited, 429, "Rate limit exceeded")
    assert int(limited.headers["Retry-After"]) >= 1
    # Per key: another key of the same account is not limited; the next minute the first one works again.
    assert client.get("/api/v1/requests", headers=_auth(fresh.json["data"]["api_key"])).status_code == 200
    monkeypatch.setattr(handoff_accounts, "_minute", lambda: 1_001)
    assert client.get("/api/v1/requests", headers=_auth(key)).status_code == 200


def test_login_caps_live_keys_and_works_by_telegram_id(client, open_registration, monkeypatch):
    monkeypatch.setattr(handoff_accounts, "MAX_LIVE_KEYS", 2)
    first = _register(client, telegram_user_id="123456").json["data"]["api_key"]
    keys = [client.post("/api/v1/agents/login", json={"telegram_user_id": "123456", "password": "s3cret!"})
            .json["data"] for _ in range(2)]
    assert keys[-1]["revoked_keys"] == 1
    _contract_error(client.get("/api/v1/requests", headers=_auth(first)), 401)
    for data in keys:
        assert client.get("/api/v1/requests", headers=_auth(data["api_key"])).status_code == 200


def test_concurrent_claims_exactly_one_wins(app, client, open_registration, make_key):
    key = _account(client)["api_key"]
    request_id = client.post("/api/v1/request", headers=_auth(key), json={
        "title": "t", "instructions": OWNER, "objective": "o"}).json["data"]["id"]
    reviewers = [make_key("reviewer") for _ in range(6)]
    barrier = threading.Barrier(len(reviewers))
    statuses = []

    def claim(reviewer):
        with app.test_client() as own:
            barrier.wait()
            statuses.append(own.post(f"/api/review/tasks/{request_id}/claim", headers=_auth(reviewer)).status_code)

    threads = [threading.Thread(target=claim, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [409] * (len(reviewers) - 1)
    events = client.get(f"/api/review/tasks/{request_id}", headers=_auth(reviewers[0])).json["data"]["events"]
    assert [e["action"] for e in events] == ["created", "claimed"]


def test_release_complete_rules_and_overdue(client, open_registration, make_key):
    key = _account(client)["api_key"]
    ids = [client.post("/api/v1/request", headers=_auth(key), json={
        "title": f"t{n}", "instructions": OWNER, "objective": "o", "max_minutes": 5}).json["data"]["id"] for n in range(2)]
    alice, bob, admin = make_key("reviewer"), make_key("reviewer"), make_key("admin")
    url = f"/api/review/tasks/{ids[0]}"
    assert client.post(f"{url}/complete", headers=_auth(alice), json={"result": "x"}).status_code == 409
    assert client.post(f"{url}/claim", headers=_auth(alice)).status_code == 200
    taken = client.post(f"{url}/claim", headers=_auth(bob))
    assert taken.status_code == 409 and taken.json["error"]["code"] == "already_claimed"
    assert client.post(f"{url}/release", headers=_auth(bob)).status_code == 409
    assert client.post(f"{url}/complete", headers=_auth(bob), json={"result": "x"}).status_code == 409
    assert client.post(f"{url}/release", headers=_auth(alice)).json["data"]["status"] == "PENDING"
    assert client.post(f"{url}/claim", headers=_auth(bob)).status_code == 200
    assert client.post(f"{url}/release", headers=_auth(admin)).json["data"]["status"] == "PENDING"  # admin may
    assert client.post(f"{url}/complete", headers=_auth(alice), json={"result": ""}).status_code == 422
    assert client.get("/api/review/tasks/hreq_missing", headers=_auth(alice)).status_code == 404

    # Overdue: past max_minutes and not completed (the deadline is moved back rather than waited for).
    db.session.get(HandoffRequest, ids[1]).deadline_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    late = client.get("/api/review/tasks?overdue=true", headers=_auth(alice)).json
    assert [item["id"] for item in late["data"]] == [ids[1]] and late["data"][0]["overdue"] is True
    assert late["pagination"]["total"] == 1
    on_time = client.get("/api/review/tasks?overdue=false&status=PENDING&kind=handoff", headers=_auth(alice)).json
    assert [item["id"] for item in on_time["data"]] == [ids[0]]
    assert client.get(f"/api/v1/request/{ids[1]}", headers=_auth(key)).json["data"]["overdue"] is True
    assert client.get("/api/review/tasks?kind=other", headers=_auth(alice)).status_code == 422


def test_concurrent_registrations_of_one_name_one_wins_the_other_is_409(app, open_registration):
    barrier = threading.Barrier(4)
    answers = []

    def register(n):
        with app.test_client() as own:
            barrier.wait()
            res = _register(own, "twin", f"twin{n}@example.com")
            answers.append((res.status_code, res.json))

    threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
    for status, body in answers:
        if status == 409:
            assert set(body) == {"error", "hint"} and "taken" in body["error"]


def test_a_webhook_that_keeps_failing_ends_failed_after_its_attempts(client, open_registration, make_key, worker,
                                                                    monkeypatch):
    monkeypatch.setattr(handoff_webhooks, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(handoff_webhooks, "MAX_ATTEMPTS", 2)
    hook = _Receiver([500, 503, 500])
    try:
        key = _account(client)["api_key"]
        request_id = client.post("/api/v1/request", headers=_auth(key), json={
            "title": "t", "instructions": OWNER, "objective": "o", "webhook_url": hook.url}).json["data"]["id"]
        reviewer = _auth(make_key("reviewer"))
        client.post(f"/api/review/tasks/{request_id}/claim", headers=reviewer)
        assert client.post(f"/api/review/tasks/{request_id}/complete", headers=reviewer,
                           json={"result": "done"}).status_code == 200
        detail = wait_for(lambda: client.get(f"/api/review/tasks/{request_id}", headers=reviewer).json["data"],
                          lambda d: d["webhook_status"] == "failed", timeout=30)
        assert detail["webhook_status"] == "failed" and detail["webhook_attempts"] == 2 and len(hook.calls) == 2
        final = detail["events"][-1]
        assert final["action"] == "webhook_failed" and final["details"]["final"] is True
        # The requester still sees the result by polling.
        assert client.get(f"/api/v1/request/{request_id}", headers=_auth(key)).json["data"]["result"] == "done"
    finally:
        hook.close()
