"""Read-only share links to a swarm's results: signed, expiring, revocable, open without a key."""
from datetime import timedelta

import pytest

from tests.app.test_swarms_api import _agent, _finished, _start


@pytest.fixture
def swarm(api, worker):
    _agent(api, "writer")
    _agent(api, "editor")
    return _finished(api, _start(api, goal="Refund policy summary.", agents=["writer", "editor"])["id"])


def _share(api, swarm_id, **body):
    res = api.post(f"/api/swarms/{swarm_id}/share", json=body)
    assert res.status_code == 201, res.json
    return res.json["data"]


def test_a_share_link_shows_the_results_without_a_key_and_nothing_secret(api, client, swarm, make_key):
    share = _share(api, swarm["id"], expires_in=3600)
    assert share["state"] == "active" and share["url"] == f"/api/shared/swarms/{share['token']}"

    res = client.get(share["url"])  # no key at all
    assert res.status_code == 200, res.json
    shown = res.json["data"]
    assert shown["goal"] == "Refund policy summary." and shown["status"] == "completed"
    assert shown["synthesis"] == swarm["synthesis"]
    assert [m["agent_name"] for m in shown["members"]] == ["writer", "editor"]
    assert [m["result"] for m in shown["members"]] == [m["result"] for m in swarm["members"]]
    body = res.get_data(as_text=True)
    for secret in ("conversation_id", "api_key", "agent_id", "cost", swarm["members"][0]["conversation_id"]):
        assert secret not in body
    # The owner lists the link without its token; a key of any role sees the same public page.
    listed = api.get(f"/api/swarms/{swarm['id']}/share", key=make_key("viewer")).json["data"]
    assert [s["id"] for s in listed] == [share["id"]] and "token" not in listed[0]


def test_tampered_or_made_up_tokens_are_404(api, client, swarm):
    token = _share(api, swarm["id"])["token"]
    payload, signature = token.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    last = token[:-1] + ("A" if token[-1] != "A" else "B")  # maybe the same bytes: still not our spelling
    for bad in (f"{payload}.{flipped}", last, "x" + token, "not-a-token", payload, "A" * 300):
        res = client.get(f"/api/shared/swarms/{bad}")
        assert res.status_code == 404, bad
        assert res.json["success"] is False and res.json["error"]["code"] == "share_not_found"
    # A token signed with another secret is just as unknown.
    from itsdangerous import URLSafeSerializer

    from app.services.swarm_shares import SALT

    forged = URLSafeSerializer("another-secret", salt=SALT).dumps(token)
    assert client.get(f"/api/shared/swarms/{forged}").status_code == 404


def test_an_expired_link_is_410(api, client, swarm, app):
    from app.extensions import db
    from app.models import SwarmShare, utcnow

    share = _share(api, swarm["id"], expires_in=60)
    assert client.get(share["url"]).status_code == 200
    row = db.session.get(SwarmShare, share["id"])
    row.expires_at = utcnow() - timedelta(seconds=1)  # as it will be a minute from now
    db.session.commit()
    res = client.get(share["url"])
    assert res.status_code == 410 and res.json["error"]["code"] == "share_expired"
    assert "expired" in res.json["error"]["message"]
    assert api.get(f"/api/swarms/{swarm['id']}/share").json["data"][0]["state"] == "expired"


def test_a_revoked_link_is_410_at_once_and_others_still_work(api, client, swarm):
    kept, revoked = _share(api, swarm["id"]), _share(api, swarm["id"])
    res = api.delete(f"/api/swarms/{swarm['id']}/share/{revoked['id']}")
    assert res.status_code == 200 and res.json["data"]["state"] == "revoked"
    gone = client.get(revoked["url"])
    assert gone.status_code == 410 and gone.json["error"]["code"] == "share_revoked"
    assert client.get(kept["url"]).status_code == 200
    assert api.delete(f"/api/swarms/{swarm['id']}/share/share_missing").status_code == 404
    # Deleting the swarm ends its links too.
    assert api.delete(f"/api/swarms/{swarm['id']}").status_code == 200
    assert client.get(kept["url"]).status_code == 404


def test_expires_in_is_bounded(api, swarm):
    for expires_in in (0, 59, 30 * 24 * 3600 + 1, "soon", 1.5, None):
        res = api.post(f"/api/swarms/{swarm['id']}/share", json={"expires_in": expires_in})
        assert res.status_code == 422 and "expires_in" in res.json["error"]["details"]["fields"], expires_in
