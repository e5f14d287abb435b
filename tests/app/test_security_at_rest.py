"""What lies on disk and what answers show: file modes, masks, the one bootstrap key, and a scan of every
response body of the key scenarios for the admin key and the secrets."""
import os
import stat

import pytest
from flask_migrate import upgrade

from app import create_app
from app.config import Config
from app.crypto import mask
from app.services.api_keys import BOOTSTRAP_KEY_ID, ensure_bootstrap_admin_key
from tests.conftest import ApiClient


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _fresh_app(data_dir, **overrides):
    config = Config(data_dir=data_dir, secret_key=None, testing=True, **overrides)
    app = create_app(config)
    with app.app_context():
        upgrade()  # as `magnet db upgrade` does: the database and its WAL files are written now
        from app.extensions import db

        db.engine.dispose()
    return app


def test_a_fresh_data_dir_is_private_to_the_service_user(tmp_path):
    data = tmp_path / "data"
    _fresh_app(data)
    assert _mode(data) == 0o700
    for name in ("magnet.db", "jobs.db", "secret_key"):
        assert _mode(data / name) == 0o600, name
    for path in data.iterdir():  # whatever SQLite added beside its file (-wal, -shm) too
        if path.is_file():
            assert _mode(path) & 0o077 == 0, path.name


def test_an_older_install_is_tightened_on_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    for name in ("magnet.db", "secret_key", "admin-key.txt"):
        (data / name).write_text("x" * 64 if name == "secret_key" else "")
        os.chmod(data / name, 0o644)
    Config(data_dir=data).secure_data_dir()
    assert _mode(data) == 0o700
    assert all(_mode(data / name) == 0o600 for name in ("magnet.db", "secret_key", "admin-key.txt"))


@pytest.mark.parametrize("secret, shown", [
    ("", None), ("abc", "****"), ("Zq7abc3Lx9", "****"), ("sk-abcdefgh", "****"),
    ("sk-abcdefgh1", "****fgh1"), ("sk-proj-0123456789abcdef", "****cdef"),
])
def test_masks_show_at_most_the_last_four_characters(secret, shown):
    assert mask(secret) == shown


def test_one_bootstrap_key_per_database_whatever_the_number_of_nodes(app, tmp_path):
    first = ensure_bootstrap_admin_key(tmp_path / "node-a-admin-key.txt")
    assert first.state == "created" and first.key.startswith("magnet_ak_")
    assert _mode(tmp_path / "node-a-admin-key.txt") == 0o600
    again = ensure_bootstrap_admin_key(tmp_path / "node-a-admin-key.txt")
    assert (again.state, again.key) == ("kept", first.key)  # the same node prints the same key
    other = ensure_bootstrap_admin_key(tmp_path / "node-b-admin-key.txt")  # a second node, its own data dir
    assert other.state == "elsewhere" and other.key is None
    assert not (tmp_path / "node-b-admin-key.txt").exists()
    from app.extensions import db
    from app.models import ApiKey

    assert db.session.execute(db.select(db.func.count()).select_from(ApiKey)).scalar_one() == 1
    assert db.session.get(ApiKey, BOOTSTRAP_KEY_ID) is not None


def test_no_response_body_carries_the_admin_key_or_a_secret(app, client, make_key, worker, tmp_path):
    """The key scenarios, every body recorded and searched for the bootstrap key and the stored secrets."""
    bootstrap = ensure_bootstrap_admin_key(tmp_path / "admin-key.txt").key
    provider_key, header_secret = "sk-live-provider-0123456789-SECRET", "Bearer hdr-abcdef0123456789-SECRET"
    bodies = []

    class Recording(ApiClient):
        def _call(self, method, path, **kwargs):
            res = super()._call(method, path, **kwargs)
            bodies.append(f"{method.upper()} {path} -> {res.status_code} {res.get_data(as_text=True)}")
            return res

    admin = Recording(client, make_key("admin"))
    viewer = Recording(client, make_key("viewer"))
    model = admin.post("/api/models", json={"name": "m", "provider": "openai_compatible", "model_id": "x",
                                            "kind": "chat", "endpoint": "http://127.0.0.1:9/v1",
                                            "api_key": provider_key}).json["data"]
    tool = admin.post("/api/api-tools", json={
        "name": "t", "method": "GET", "url_template": "http://127.0.0.1:9/x",
        "headers": [{"name": "Authorization", "value": header_secret, "secret": True}],
        "input_schema": {"type": "object"}}).json["data"]
    admin.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}})  # fails (nothing listens): its error too
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello")
    source = admin.post("/api/knowledge-sources", json={"name": "s", "type": "directory",
                                                        "configuration": {"path": str(docs)}}).json["data"]
    admin.post(f"/api/knowledge-sources/{source['id']}/sync")
    for who in (admin, viewer):
        for path in ("/api/status", "/api/keys", "/api/keys?include_revoked=true", "/api/models",
                     f"/api/models/{model['id']}", "/api/api-tools", f"/api/api-tools/{tool['id']}",
                     "/api/knowledge-sources", f"/api/knowledge-sources/{source['id']}/syncs",
                     "/api/usage/stats", "/api/health", "/api/openapi.json"):
            who.get(path)
    text = "\n".join(bodies)
    assert len(bodies) > 25
    for secret in (bootstrap, provider_key, header_secret, header_secret.split()[1]):
        assert secret not in text
    assert str(app.extensions["magnet.config"].data_dir) not in text
