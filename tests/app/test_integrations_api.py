"""/api/integrations: CRUD, keys shown once and stored hashed, rotation, deactivation, daily credit limits."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.auth import hash_key
from app.errors import Forbidden, Unauthorized
from app.extensions import db
from app.models import UsageRecord
from app.services.integrations import (
    authenticate_integration,
    check_daily_credit,
    get_integration,
    spent_today,
)
from app.services.llm_models import ensure_builtin_models


@pytest.fixture
def agent_id(api) -> str:
    ensure_builtin_models()
    res = api.post("/api/agents", json={"name": "a"})
    assert res.status_code == 201, res.json
    return res.json["data"]["id"]


@pytest.fixture
def created(api, agent_id) -> dict:
    res = api.post("/api/integrations", json={"name": "website chat", "agent_id": agent_id})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _usage(integration_id: str | None, cost: float, at: datetime) -> UsageRecord:
    return UsageRecord(entity_type="agent", entity_id="agent_x", operation="chat", cost=cost,
                       integration_id=integration_id, created_at=at)


def test_create_shows_the_key_once_and_stores_only_its_hash(api, agent_id):
    res = api.post("/api/integrations", json={
        "name": "helpdesk app", "description": "Intranet widget", "agent_id": agent_id, "daily_credit_limit": 2.5,
    })
    assert res.status_code == 201, res.json
    data = res.json["data"]
    key = data["key"]
    assert key.startswith("magnet_sk_") and len(key) > 40
    assert data["key_prefix"] == key[:14] and data["key_prefix"].startswith("magnet_sk_")
    assert data["id"].startswith("int_") and data["created_at"].endswith("Z")
    assert (data["name"], data["description"], data["agent_id"]) == ("helpdesk app", "Intranet widget", agent_id)
    assert data["is_active"] is True and data["daily_credit_limit"] == 2.5
    assert data["spent_today"] == 0.0 and data["last_used_at"] is None

    row = db.session.execute(
        text("SELECT key_hash, key_prefix FROM integrations WHERE id = :id"), {"id": data["id"]}
    ).one()
    assert row.key_hash == hash_key(key) and key not in row.key_hash and len(row.key_hash) == 64

    one = api.get(f"/api/integrations/{data['id']}")
    assert one.status_code == 200
    assert "key" not in one.json["data"] and key not in one.get_data(as_text=True)
    assert one.json["data"] == {k: v for k, v in data.items() if k != "key"}
    listed = api.get("/api/integrations")
    assert key not in listed.get_data(as_text=True)
    assert [i["id"] for i in listed.json["data"]] == [data["id"]]
    assert listed.json["pagination"] == {"page": 1, "limit": 20, "total": 1, "next_cursor": None}


def test_list_filters_by_agent_and_active_state(api, agent_id):
    other = api.post("/api/agents", json={"name": "b"}).json["data"]["id"]
    first = api.post("/api/integrations", json={"name": "one", "agent_id": agent_id}).json["data"]
    second = api.post("/api/integrations", json={"name": "two", "agent_id": other, "is_active": False}).json["data"]
    ids = lambda query: [i["id"] for i in api.get(f"/api/integrations?{query}").json["data"]]  # noqa: E731
    assert ids(f"agent_id={agent_id}") == [first["id"]]
    assert ids("is_active=false") == [second["id"]]
    assert ids("is_active=true") == [first["id"]]
    assert ids("sort=name&order=asc") == [first["id"], second["id"]]


def test_update_changes_only_fields_sent(api, created, agent_id):
    other = api.post("/api/agents", json={"name": "b"}).json["data"]["id"]
    res = api.put(f"/api/integrations/{created['id']}", json={"description": "new", "agent_id": other,
                                                             "daily_credit_limit": 1.0})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert (data["name"], data["description"], data["agent_id"], data["daily_credit_limit"]) == (
        "website chat", "new", other, 1.0)
    assert data["key_prefix"] == created["key_prefix"] and "key" not in data
    # null removes the limit
    res = api.put(f"/api/integrations/{created['id']}", json={"daily_credit_limit": None})
    assert res.json["data"]["daily_credit_limit"] is None and res.json["data"]["description"] == "new"


def test_rotate_key_invalidates_the_old_key(api, created):
    old = created["key"]
    assert authenticate_integration(old).id == created["id"]
    res = api.post(f"/api/integrations/{created['id']}/rotate-key")
    assert res.status_code == 200, res.json
    new = res.json["data"]["key"]
    assert new != old and new.startswith("magnet_sk_") and res.json["data"]["key_prefix"] == new[:14]
    with pytest.raises(Unauthorized) as err:
        authenticate_integration(old)
    assert err.value.code == "invalid_api_key"
    assert authenticate_integration(new).id == created["id"]
    assert new not in api.get(f"/api/integrations/{created['id']}").get_data(as_text=True)


@pytest.mark.parametrize("key", [None, "", "magnet_sk_not-a-real-key", "magnet_ak_whatever"])
def test_unknown_or_missing_keys_are_unauthorized(app, created, key):
    with pytest.raises(Unauthorized) as err:
        authenticate_integration(key)
    assert err.value.code == "invalid_api_key" and err.value.status == 401


def test_authenticating_records_last_use(api, created):
    assert authenticate_integration(created["key"]).last_used_at is not None
    assert api.get(f"/api/integrations/{created['id']}").json["data"]["last_used_at"].endswith("Z")


def test_inactive_integration_is_forbidden(api, created):
    assert api.put(f"/api/integrations/{created['id']}", json={"is_active": False}).status_code == 200
    with pytest.raises(Forbidden) as err:
        authenticate_integration(created["key"])
    assert err.value.code == "integration_inactive"
    api.put(f"/api/integrations/{created['id']}", json={"is_active": True})
    assert authenticate_integration(created["key"]).id == created["id"]


def test_daily_credit_counts_only_today_and_only_this_integration(api, created):
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    yesterday = midnight - timedelta(seconds=1)
    db.session.add_all([
        _usage(created["id"], 0.25, now),
        _usage(created["id"], 0.5, now),
        _usage(created["id"], 100.0, yesterday),  # before today's UTC midnight: not counted
        _usage("int_someoneelse", 50.0, now),  # another integration's spend
        _usage(None, 70.0, now),
    ])
    db.session.commit()
    assert spent_today(created["id"]) == pytest.approx(0.75)
    assert api.get(f"/api/integrations/{created['id']}").json["data"]["spent_today"] == pytest.approx(0.75)
    assert api.get("/api/integrations").json["data"][0]["spent_today"] == pytest.approx(0.75)

    # no limit, then a limit above today's spend: allowed
    check_daily_credit(get_integration(created["id"]))
    api.put(f"/api/integrations/{created['id']}", json={"daily_credit_limit": 0.8})
    check_daily_credit(get_integration(created["id"]))

    # 0.75 spent: a limit of exactly 0.75 is reached
    api.put(f"/api/integrations/{created['id']}", json={"daily_credit_limit": 0.75})
    with pytest.raises(Forbidden) as err:
        check_daily_credit(get_integration(created["id"]))
    assert err.value.code == "usage_limit_exceeded"
    details = err.value.details
    assert details["limit"] == 0.75 and details["spent"] == pytest.approx(0.75)
    assert details["resets_at"] == (midnight + timedelta(days=1)).isoformat().replace("+00:00", "Z")

    # a limit of 0 blocks from the first call
    api.put(f"/api/integrations/{created['id']}", json={"daily_credit_limit": 0})
    with pytest.raises(Forbidden):
        check_daily_credit(get_integration(created["id"]))


def test_zero_limit_blocks_even_with_no_spend(api, agent_id):
    data = api.post("/api/integrations", json={"name": "z", "agent_id": agent_id, "daily_credit_limit": 0}).json["data"]
    with pytest.raises(Forbidden) as err:
        check_daily_credit(get_integration(data["id"]))
    assert err.value.details["spent"] == 0.0


def test_delete(api, created):
    res = api.delete(f"/api/integrations/{created['id']}")
    assert res.status_code == 200 and res.json == {"success": True, "message": "integration deleted"}
    assert api.get(f"/api/integrations/{created['id']}").status_code == 404
    with pytest.raises(Unauthorized):
        authenticate_integration(created["key"])


def test_agent_bound_to_an_integration_cannot_be_deleted(api, created, agent_id):
    res = api.delete(f"/api/agents/{agent_id}")
    assert res.status_code == 409, res.json
    error = res.json["error"]
    assert error["code"] == "in_use" and error["details"]["integrations"] == ["website chat"]
    assert "website chat" in error["message"]
    assert api.delete(f"/api/integrations/{created['id']}").status_code == 200
    assert api.delete(f"/api/agents/{agent_id}").status_code == 200


def test_not_found(api):
    for method, path in [("get", ""), ("put", ""), ("delete", ""), ("post", "/rotate-key")]:
        kwargs = {"json": {"name": "x"}} if method == "put" else {}
        res = getattr(api, method)(f"/api/integrations/int_missing{path}", **kwargs)
        assert res.status_code == 404, (method, path, res.json)
        assert res.json["error"]["code"] == "not_found"


def test_duplicate_name_is_409(api, created, agent_id):
    res = api.post("/api/integrations", json={"name": "website chat", "agent_id": agent_id})
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"
    other = api.post("/api/integrations", json={"name": "other", "agent_id": agent_id}).json["data"]
    res = api.put(f"/api/integrations/{other['id']}", json={"name": "website chat"})
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"
    # keeping its own name is not a conflict
    assert api.put(f"/api/integrations/{created['id']}", json={"name": "website chat"}).status_code == 200


def test_unknown_agent_is_422_naming_it(api, created):
    res = api.post("/api/integrations", json={"name": "x", "agent_id": "agent_nope"})
    assert res.status_code == 422 and res.json["error"]["details"]["agent_id"] == "agent_nope"
    assert "agent_nope" in res.json["error"]["message"]
    res = api.put(f"/api/integrations/{created['id']}", json={"agent_id": "agent_nope"})
    assert res.status_code == 422 and "agent_id" in res.json["error"]["details"]["fields"]


@pytest.mark.parametrize("body, field", [
    ({"agent_id": "agent_x"}, "name"),
    ({"name": "x"}, "agent_id"),
    ({"name": "x", "agent_id": "agent_x", "daily_credit_limit": -1}, "daily_credit_limit"),
    ({"name": "x", "agent_id": "agent_x", "key": "magnet_sk_mine"}, "key"),
    ({"name": "", "agent_id": "agent_x"}, "name"),
])
def test_bad_bodies_are_422_naming_the_field(api, body, field):
    res = api.post("/api/integrations", json=body)
    assert res.status_code == 422, res.json
    assert field in res.json["error"]["details"]["fields"]


def test_negative_limit_on_update_is_422(api, created):
    res = api.put(f"/api/integrations/{created['id']}", json={"daily_credit_limit": -0.01})
    assert res.status_code == 422 and "daily_credit_limit" in res.json["error"]["details"]["fields"]


def test_only_admins_manage_integrations(api, created, make_key):
    operator = make_key("operator")
    for method, path in [("get", ""), ("post", ""), ("get", f"/{created['id']}"), ("put", f"/{created['id']}"),
                         ("delete", f"/{created['id']}"), ("post", f"/{created['id']}/rotate-key")]:
        kwargs = {"json": {}} if method in ("post", "put") else {}
        res = getattr(api, method)(f"/api/integrations{path}", key=operator, **kwargs)
        assert res.status_code == 403, (method, path)
        assert res.json["error"]["code"] == "insufficient_role"
    assert authenticate_integration(created["key"]).id == created["id"]  # untouched
