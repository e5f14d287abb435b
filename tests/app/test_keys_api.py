"""/api/keys: keys are shown once, stored hashed, listed by prefix, revocable; bearer or header."""
from sqlalchemy import text

from app.extensions import db


def test_created_key_is_shown_once_and_stored_hashed(api, client):
    res = api.post("/api/keys", json={"name": "ci", "role": "operator"})
    assert res.status_code == 201
    created = res.json["data"]
    key = created["key"]
    assert key.startswith("magnet_ak_") and created["prefix"] == key[:16]

    stored = db.session.execute(text("SELECT key_hash FROM api_keys WHERE id = :id"), {"id": created["id"]}).scalar_one()
    assert key not in stored and len(stored) == 64

    listed = api.get("/api/keys").json["data"]
    assert all("key" not in item for item in listed)
    assert key not in api.get("/api/keys").get_data(as_text=True)
    assert key not in api.get(f"/api/keys/{created['id']}").get_data(as_text=True)

    # the new key works, in either header form
    assert client.get("/api/status", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/api/status", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_last_used_is_recorded(api, client):
    created = api.post("/api/keys", json={"name": "ci", "role": "viewer"}).json["data"]
    assert created["last_used_at"] is None
    client.get("/api/models", headers={"X-API-Key": created["key"]})
    assert api.get(f"/api/keys/{created['id']}").json["data"]["last_used_at"] is not None


def test_revoked_key_stops_working(api, client):
    created = api.post("/api/keys", json={"name": "ci", "role": "viewer"}).json["data"]
    assert api.delete(f"/api/keys/{created['id']}").status_code == 200
    res = client.get("/api/models", headers={"X-API-Key": created["key"]})
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_api_key"
    # revoked keys drop out of the default list but stay visible on request
    assert created["id"] not in [k["id"] for k in api.get("/api/keys").json["data"]]
    assert created["id"] in [k["id"] for k in api.get("/api/keys?include_revoked=true").json["data"]]
    assert api.delete(f"/api/keys/{created['id']}").status_code == 409


def test_last_admin_key_cannot_be_revoked(api):
    me = [k for k in api.get("/api/keys").json["data"] if k["role"] == "admin"]
    assert len(me) == 1
    res = api.delete(f"/api/keys/{me[0]['id']}")
    assert res.status_code == 409


def test_missing_and_wrong_keys(client):
    res = client.get("/api/models")
    assert res.status_code == 401 and res.json["error"]["code"] == "missing_api_key"
    res = client.get("/api/models", headers={"X-API-Key": "magnet_ak_nope"})
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_api_key"
    res = client.get("/api/models", headers={"Authorization": "Basic abc"})
    assert res.status_code == 401


def test_cli_creates_working_keys_offline(app, client):
    from app.cli import main

    result = app.test_cli_runner().invoke(main, ["keys", "create", "--role", "admin", "--name", "ops"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert client.get("/api/keys", headers={"X-API-Key": key}).status_code == 200
    listing = app.test_cli_runner().invoke(main, ["keys", "list"])
    assert "ops" in listing.output and key not in listing.output
