"""Users (issue 16): admin user management with role aliases, avatars (re-encoded, EXIF stripped),
preferences, the workspace settings and logo, and the ledger's user_id for session calls."""
import io

from PIL import Image

from tests.app.users_support import admin_client, csrf, user_client


def _jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (900, 600), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010E] = "SECRET-DESCRIPTION"  # ImageDescription
    exif[0x0112] = 6  # Orientation: rotate 90 degrees when shown
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"SECRET-COMMENT")
    return out.getvalue()


def _upload(client, path, data: bytes, filename="me.jpg"):
    return client.put(path, data={"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data",
                      headers=csrf(client))


def test_avatar_is_re_encoded_with_its_metadata_stripped(app):
    admin = admin_client(app)
    original = _jpeg_with_exif()
    assert b"SECRET-DESCRIPTION" in original
    res = _upload(admin, "/api/users/me/avatar", original)
    assert res.status_code == 200, res.json
    user = res.json["data"]
    assert user["has_avatar"] and user["avatar_url"] == f"/api/users/{user['id']}/avatar"
    viewer = user_client(app, admin, "v@example.com", "guest")
    served = viewer.get(user["avatar_url"])
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert b"SECRET" not in served.data and b"Exif" not in served.data
    image = Image.open(io.BytesIO(served.data))
    assert not image.getexif() and "exif" not in image.info
    # The orientation was applied to the pixels (portrait now), and the size bounded.
    assert image.size == (341, 512)


def test_avatar_refuses_what_is_not_an_image_and_what_is_too_big(app):
    admin = admin_client(app)
    fake = _upload(admin, "/api/users/me/avatar", b"<svg onload=alert(1)>", filename="x.png")
    assert fake.status_code == 415 and fake.json["error"]["code"] == "not_an_image"
    truncated = _upload(admin, "/api/users/me/avatar", _jpeg_with_exif()[:400])
    assert truncated.status_code in (415, 422)
    settings = app.extensions["magnet.config"].auth
    old, settings.max_image_bytes = settings.max_image_bytes, 1000
    try:
        big = _upload(admin, "/api/users/me/avatar", _jpeg_with_exif())
        assert big.status_code == 413
    finally:
        settings.max_image_bytes = old
    missing = admin.put("/api/users/me/avatar", data={}, content_type="multipart/form-data", headers=csrf(admin))
    assert missing.status_code == 422
    me = admin.get("/api/auth/me").json["data"]["user"]
    assert me["has_avatar"] is False
    assert admin.get(f"/api/users/{me['id']}/avatar").status_code == 404


def test_a_transparent_png_keeps_its_transparency(app):
    admin = admin_client(app)
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(out, format="PNG")
    res = _upload(admin, "/api/users/me/avatar", out.getvalue(), filename="a.png")
    served = admin.get(res.json["data"]["avatar_url"])
    assert served.mimetype == "image/webp" and Image.open(io.BytesIO(served.data)).mode == "RGBA"


def test_preferences_are_per_user_and_size_limited(app):
    admin = admin_client(app)
    viewer = user_client(app, admin, "v@example.com", "viewer")
    assert viewer.get("/api/users/me/preferences").json["data"]["preferences"] == {}
    res = viewer.put("/api/users/me/preferences", json={"preferences": {"theme": "dark", "pinned": [1, 2]}},
                     headers=csrf(viewer))
    assert res.status_code == 200
    assert viewer.get("/api/users/me/preferences").json["data"]["preferences"]["theme"] == "dark"
    assert admin.get("/api/users/me/preferences").json["data"]["preferences"] == {}
    huge = viewer.put("/api/users/me/preferences", json={"preferences": {"x": "y" * 20000}}, headers=csrf(viewer))
    assert huge.status_code == 413
    not_object = viewer.put("/api/users/me/preferences", json={"preferences": [1]}, headers=csrf(viewer))
    assert not_object.status_code == 422


def test_a_key_has_no_preferences(api):
    res = api.get("/api/users/me/preferences")
    assert res.status_code == 409 and res.json["error"]["code"] == "not_a_user"


def test_admin_lists_and_sets_roles_with_workspace_aliases(app):
    admin = admin_client(app)
    user_client(app, admin, "e@example.com", "employee")
    listed = admin.get("/api/users?role=employee").json
    assert [u["email"] for u in listed["data"]] == ["e@example.com"] and listed["data"][0]["role"] == "operator"
    user_id = listed["data"][0]["id"]
    for alias, role in (("guest", "viewer"), ("admin", "admin"), ("employee", "operator")):
        res = admin.put(f"/api/users/{user_id}", json={"role": alias}, headers=csrf(admin))
        assert res.status_code == 200 and res.json["data"]["role"] == role
    bad = admin.put(f"/api/users/{user_id}", json={"role": "owner"}, headers=csrf(admin))
    assert bad.status_code == 422
    assert admin.put("/api/users/user_missing", json={"role": "guest"}, headers=csrf(admin)).status_code == 404


def test_workspace_admin_writes_everyone_reads(app):
    admin = admin_client(app)
    viewer = user_client(app, admin, "v@example.com", "viewer")
    changes = {"name": "Acme", "description": "Docs", "goals": "Answer fast", "mission": "Help"}
    res = admin.put("/api/workspace", json=changes, headers=csrf(admin))
    assert res.status_code == 200
    got = viewer.get("/api/workspace").json["data"]
    assert {k: got[k] for k in changes} == changes and got["signups_open"] is False
    denied = viewer.put("/api/workspace", json={"name": "Mine"}, headers=csrf(viewer))
    assert denied.status_code == 403
    assert app.test_client().get("/api/workspace").status_code == 401
    logo = _upload(admin, "/api/workspace/logo", _jpeg_with_exif(), filename="logo.jpg")
    assert logo.status_code == 200 and logo.json["data"]["logo_url"] == "/api/workspace/logo"
    served = viewer.get("/api/workspace/logo")
    assert served.status_code == 200 and b"SECRET" not in served.data
    assert _upload(viewer, "/api/workspace/logo", _jpeg_with_exif()).status_code == 403


def test_ledger_rows_of_a_session_carry_the_user(app, api):
    """A metered call made with a session (an API tool's test call to a real local server) is written to the
    usage ledger with the user's id, as a key's call is with the key's id."""
    from app.extensions import db
    from app.models import UsageRecord
    from tests.app.test_api_tools_api import create
    from tests.app.test_outbound import EchoServer

    admin = admin_client(app)
    operator = user_client(app, admin, "op@example.com", "employee")
    user_id = operator.get("/api/auth/me").json["data"]["user"]["id"]
    with EchoServer() as echo:
        tool = create(api, echo)
        res = operator.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "Oslo", "units": "metric"}},
                            headers=csrf(operator))
        assert res.status_code == 200, res.json
    row = db.session.execute(db.select(UsageRecord)).scalar_one()
    assert row.user_id == user_id and row.api_key_id is None


def test_a_signed_in_users_conversation_is_theirs_and_its_turns_are_metered_to_them(app, api, llm, chat_model):
    """Sessions have no key id: a conversation opened without a user_id belongs to the signed-in user, and
    the turn's model call is in the ledger under their user_id (streamed or not)."""
    from app.extensions import db
    from app.models import UsageRecord
    from tests.support.fake_llm import Reply

    admin = admin_client(app)
    operator = user_client(app, admin, "op@example.com", "employee")
    user_id = operator.get("/api/auth/me").json["data"]["user"]["id"]
    agent = api.post("/api/agents", json={"name": "helper", "model_id": chat_model["id"]}).json["data"]
    res = operator.post("/api/conversations", json={"agent_id": agent["id"]}, headers=csrf(operator))
    assert res.status_code == 201 and res.json["data"]["user_id"] == user_id
    conversation = res.json["data"]["id"]
    for stream in (False, True):
        llm.script(Reply("hello"))
        said = operator.post(f"/api/conversations/{conversation}/messages", json={"message": "hi", "stream": stream},
                             headers=csrf(operator))
        assert said.status_code == 200
        said.get_data()  # the stream runs to its end
    from tests.conftest import wait_for

    def ledger():
        db.session.commit()  # a fresh snapshot each time (the streamed turn writes from its own thread)
        return db.session.execute(db.select(UsageRecord).where(UsageRecord.conversation_id == conversation)
                                  ).scalars().all()

    rows = wait_for(ledger, lambda found: len(found) >= 2, timeout=30)
    assert len(rows) == 2 and {(r.user_id, r.api_key_id) for r in rows} == {(user_id, None)}
