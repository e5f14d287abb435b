"""The knowledge-sources API on bad input, deletion of every store, schedules, and extra indexes."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def _finished(api, source_id, run_id):
    return wait_for(
        lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{run_id}").json["data"],
        lambda run: run["status"] not in ("queued", "running"),
    )


def sync(api, source_id):
    res = api.post(f"/api/knowledge-sources/{source_id}/sync")
    assert res.status_code == 202, res.json
    return _finished(api, source_id, res.json["data"]["id"])


def create(api, **body):
    body.setdefault("type", "directory")
    return api.post("/api/knowledge-sources", json=body)


def _parse(stamp: str) -> datetime:
    assert stamp.endswith("Z")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _error(res, status, code):
    assert res.status_code == status, res.json
    assert res.json["success"] is False and res.json["error"]["code"] == code, res.json
    return res.json["error"]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    paragraphs = [
        f"Section {i}. The maintenance team inspects pump number {i} every {i + 2} weeks and records "
        f"pressure, temperature and vibration readings in the log book kept in room {100 + i}."
        for i in range(40)
    ]
    (root / "manual.md").write_text("# Pump manual\n\n" + "\n\n".join(paragraphs) + "\n")
    (root / "faq.txt").write_text("Refunds are processed within fourteen days of the request.\n")
    (root / "notes.txt").write_text(" ".join(f"Note {i} about valve {i * 3}." for i in range(120)) + "\n")
    return root


@pytest.fixture
def source(api, folder):
    res = create(api, name="plant", configuration={"path": str(folder)})
    assert res.status_code == 201, res.json
    return res.json["data"]


# -- bad input ------------------------------------------------------------------------------------


def test_duplicate_name_is_409(api, source, tmp_path):
    err = _error(create(api, name="plant", configuration={"path": str(tmp_path)}), 409, "duplicate_name")
    assert "plant" in err["message"]
    other = create(api, name="other", configuration={"path": str(tmp_path)}).json["data"]
    _error(api.put(f"/api/knowledge-sources/{other['id']}", json={"name": "plant"}), 409, "duplicate_name")
    assert api.put(f"/api/knowledge-sources/{other['id']}", json={"name": "other"}).status_code == 200


def test_unknown_type_and_unknown_fields_are_422(api, tmp_path):
    err = _error(create(api, name="x", type="ftp", configuration={"path": str(tmp_path)}), 422, "validation_failed")
    assert "type" in str(err["details"])
    _error(create(api, name="x", configuration={"path": str(tmp_path)}, colour="red"), 422, "validation_failed")
    _error(create(api, name="x", configuration={"path": str(tmp_path), "depth": 3}), 422, "validation_failed")
    _error(create(api, name="", configuration={"path": str(tmp_path)}), 422, "validation_failed")
    _error(create(api, name="web", type="web", configuration={"urls": ["ftp://example.com/"]}), 422,
           "validation_failed")
    _error(create(api, name="git", type="git", configuration={"url_or_path": "ext::sh -c touch% /tmp/x"}), 422,
           "validation_failed")
    assert api.get("/api/knowledge-sources").json["pagination"]["total"] == 0


@pytest.mark.parametrize("setting, pattern", [
    ("include", "../secrets/*"), ("include", "/etc/*"), ("exclude", "a/../../b"), ("include", ""),
])
def test_bad_glob_is_422_naming_it(api, tmp_path, setting, pattern):
    configuration = {"path": str(tmp_path), setting: [pattern]}
    err = _error(create(api, name="globs", configuration=configuration), 422, "validation_failed")
    assert setting in err["message"] and repr(pattern) in err["message"]


def test_chunk_size_above_the_model_limit_is_422(api, tmp_path):
    res = create(api, name="big", configuration={"path": str(tmp_path)}, index={"chunk_size": 512})
    err = _error(res, 422, "validation_failed")
    assert "chunk_size" in err["message"] and "256" in err["message"] and "truncate" in err["message"]
    assert err["details"]["max_chunk_size"] == 256 and "chunk_size" in err["details"]["fields"]
    err = _error(create(api, name="big", configuration={"path": str(tmp_path)},
                        index={"chunk_size": 100, "chunk_overlap": 100}), 422, "validation_failed")
    assert "chunk_overlap" in err["message"]
    _error(create(api, name="big", configuration={"path": str(tmp_path)}, index={"chunker": "semantic"}), 422,
           "validation_failed")
    assert api.get("/api/knowledge-sources").json["pagination"]["total"] == 0  # no half-made source left
    assert create(api, name="big", configuration={"path": str(tmp_path)}, index={"chunk_size": 256}).status_code == 201


@pytest.mark.parametrize("schedule", [
    {"interval_minutes": 1}, {"interval_minutes": "60"}, {"interval_minutes": True}, {"cron": "every day"},
    {"cron": "61 * * * *"}, {"cron": 5}, {"every": "hour"}, {"interval_minutes": 60, "cron": "0 3 * * *"},
])
def test_invalid_schedule_is_422(api, tmp_path, schedule):
    err = _error(create(api, name="sched", configuration={"path": str(tmp_path)}, schedule=schedule), 422,
                 "validation_failed")
    assert "schedule" in err["message"]


def test_invalid_schedule_on_update_is_422_and_changes_nothing(api, source):
    sid = source["id"]
    _error(api.put(f"/api/knowledge-sources/{sid}", json={"schedule": {"cron": "nope"}}), 422, "validation_failed")
    assert api.get(f"/api/knowledge-sources/{sid}").json["data"]["schedule"] is None


def test_a_rejected_update_changes_nothing(api, source, folder):
    sid = source["id"]
    res = api.put(f"/api/knowledge-sources/{sid}", json={
        "name": "renamed", "description": "new", "configuration": {"path": str(folder), "include": ["../*"]}})
    _error(res, 422, "validation_failed")
    after = api.get(f"/api/knowledge-sources/{sid}").json["data"]
    assert after["name"] == "plant" and after["description"] is None
    assert after["configuration"] == source["configuration"]


def test_unknown_id_is_404_everywhere(api):
    for method, path in [
        ("get", "/api/knowledge-sources/ks_missing"),
        ("put", "/api/knowledge-sources/ks_missing"),
        ("delete", "/api/knowledge-sources/ks_missing"),
        ("post", "/api/knowledge-sources/ks_missing/sync"),
        ("get", "/api/knowledge-sources/ks_missing/syncs"),
        ("get", "/api/knowledge-sources/ks_missing/documents"),
        ("get", "/api/knowledge-sources/ks_missing/indexes"),
        ("post", "/api/knowledge-sources/ks_missing/indexes"),
    ]:
        kwargs = {"json": {"description": "x"}} if method == "put" else {}
        if path.endswith("/indexes") and method == "post":
            kwargs = {"json": {"chunk_size": 100}}
        _error(getattr(api, method)(path, **kwargs), 404, "not_found")


def test_unknown_run_document_and_index_ids_are_404(api, source):
    sid = source["id"]
    _error(api.get(f"/api/knowledge-sources/{sid}/syncs/sync_missing"), 404, "not_found")
    _error(api.post(f"/api/knowledge-sources/{sid}/syncs/sync_missing/cancel"), 404, "not_found")
    _error(api.get(f"/api/knowledge-sources/{sid}/documents/doc_missing"), 404, "not_found")
    _error(api.delete(f"/api/knowledge-sources/{sid}/documents/doc_missing"), 404, "not_found")
    _error(api.get(f"/api/knowledge-sources/{sid}/indexes/idx_missing"), 404, "not_found")


def test_changing_the_type_is_409(api, source):
    err = _error(api.put(f"/api/knowledge-sources/{source['id']}", json={"type": "web"}), 409, "immutable_field")
    assert err["details"]["fields"] == ["type"]
    same = api.put(f"/api/knowledge-sources/{source['id']}", json={"type": "directory", "description": "d"})
    assert same.status_code == 200 and same.json["data"]["description"] == "d"


# -- deletion -------------------------------------------------------------------------------------


def _store_names(source_id):
    from app.extensions import db
    from app.models import KnowledgeSource
    from app.services import indexes

    targets = [indexes.target(i) for i in indexes.indexes_of(db.session.get(KnowledgeSource, source_id))]
    return [(t.vectors.collection_name, t.lexical.table) for t in targets]


def _collections():
    from app.vectordb import chroma_client

    return {getattr(c, "name", c) for c in chroma_client().list_collections()}


def test_delete_source_drops_its_collection_and_lexical_table(app, api, worker, source):
    from app.extensions import db

    run = sync(api, source["id"])
    assert run["status"] == "completed" and run["counts"]["added"] == 3
    [(collection, table)] = _store_names(source["id"])
    assert collection in _collections()
    assert table in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0

    res = api.delete(f"/api/knowledge-sources/{source['id']}")
    assert res.status_code == 200 and res.json == {"success": True, "message": res.json["message"]}
    assert collection not in _collections()
    names = inspect(db.engine).get_table_names()
    assert table not in names and f"{table}_ids" not in names
    assert api.get(f"/api/knowledge-sources/{source['id']}").status_code == 404
    from app.models import Document, KnowledgeIndex, SyncRun

    for model in (Document, KnowledgeIndex, SyncRun):
        assert db.session.execute(db.select(model).filter_by(source_id=source["id"])).first() is None


def test_delete_while_syncing_is_409(app, api, worker, source):
    run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
    _error(api.delete(f"/api/knowledge-sources/{source['id']}"), 409, "sync_in_progress")
    _finished(api, source["id"], run["id"])
    assert api.delete(f"/api/knowledge-sources/{source['id']}").status_code == 200


# -- schedules ------------------------------------------------------------------------------------


def test_interval_schedule_starts_a_sync_when_due_and_advances(app, api, worker, source, folder):
    from app.services.scheduler import start_due_syncs

    before = datetime.now(UTC)
    res = create(api, name="scheduled", configuration={"path": str(folder)}, schedule={"interval_minutes": 5})
    assert res.status_code == 201, res.json
    scheduled = res.json["data"]
    due = _parse(scheduled["next_sync_at"])
    assert before + timedelta(minutes=5) <= due <= datetime.now(UTC) + timedelta(minutes=5)

    assert start_due_syncs(now=due - timedelta(seconds=1)) == []  # not yet
    now = due + timedelta(seconds=30)
    [run_id] = start_due_syncs(now=now)
    run = _finished(api, scheduled["id"], run_id)
    assert run["trigger"] == "schedule" and run["status"] == "completed" and run["counts"]["added"] == 3
    after = api.get(f"/api/knowledge-sources/{scheduled['id']}").json["data"]
    assert _parse(after["next_sync_at"]) == now + timedelta(minutes=5)
    assert after["last_sync_id"] == run_id
    assert start_due_syncs(now=now + timedelta(minutes=1)) == []  # advanced: nothing due any more


def test_cron_schedule_and_changing_or_removing_it(app, api, worker, source):
    from app.services.scheduler import start_due_syncs

    sid = source["id"]
    assert source["next_sync_at"] is None
    res = api.put(f"/api/knowledge-sources/{sid}", json={"schedule": {"cron": "30 3 * * *"}})
    assert res.status_code == 200, res.json
    due = _parse(res.json["data"]["next_sync_at"])
    assert (due.hour, due.minute, due.second) == (3, 30, 0) and due - datetime.now(UTC) <= timedelta(days=1)

    now = due + timedelta(minutes=2)
    [run_id] = start_due_syncs(now=now)
    assert _finished(api, sid, run_id)["trigger"] == "schedule"
    nxt = _parse(api.get(f"/api/knowledge-sources/{sid}").json["data"]["next_sync_at"])
    assert nxt == due + timedelta(days=1)

    res = api.put(f"/api/knowledge-sources/{sid}", json={"schedule": None})
    assert res.json["data"]["schedule"] is None and res.json["data"]["next_sync_at"] is None
    assert start_due_syncs(now=now + timedelta(days=30)) == []


def test_due_schedule_while_a_sync_runs_is_skipped_but_advanced(app, api, worker, folder):
    from app.services.scheduler import start_due_syncs

    res = create(api, name="busy", configuration={"path": str(folder)}, schedule={"interval_minutes": 10})
    sid = res.json["data"]["id"]
    running = api.post(f"/api/knowledge-sources/{sid}/sync").json["data"]
    now = _parse(res.json["data"]["next_sync_at"]) + timedelta(seconds=1)
    assert start_due_syncs(now=now) == []
    assert _parse(api.get(f"/api/knowledge-sources/{sid}").json["data"]["next_sync_at"]) == now + timedelta(minutes=10)
    _finished(api, sid, running["id"])


# -- another index ----------------------------------------------------------------------------------


def test_new_index_is_built_from_stored_text_after_the_folder_is_gone(app, api, worker, source, folder):
    import shutil

    from app.extensions import db
    from app.models import IndexedDocument
    from app.services import indexes

    sid = source["id"]
    sync(api, sid)
    [default] = api.get(f"/api/knowledge-sources/{sid}/indexes").json["data"]
    assert default["chunk_size"] == 200 and default["status"] == "ready"
    shutil.rmtree(folder)  # nothing can be read from the source any more

    _error(api.post(f"/api/knowledge-sources/{sid}/indexes", json={"chunk_size": 300}), 422, "validation_failed")
    res = api.post(f"/api/knowledge-sources/{sid}/indexes", json={"chunk_size": 48, "chunk_overlap": 8})
    assert res.status_code == 202, res.json
    new = res.json["data"]
    assert new["status"] == "building" and new["id"] != default["id"]
    built = wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/indexes/{new['id']}").json["data"],
                     lambda i: i["status"] != "building")
    assert built["status"] == "ready", built
    assert built["progress"] == {"done": 3, "total": 3}

    def held(index_id):
        rows = db.session.execute(db.select(IndexedDocument).filter_by(index_id=index_id)).scalars().all()
        return {r.document_id: r.chunk_count for r in rows}

    small, large = held(new["id"]), held(default["id"])
    assert set(small) == set(large) and len(small) == 3
    assert sum(small.values()) > sum(large.values())  # smaller chunks: more of them
    target = indexes.target(indexes.get_index(new["id"]))
    assert target.vectors.count() == sum(small.values()) == target.lexical.count()
    hits = target.lexical.query("pump vibration log book", 50)
    assert hits and all(h.metadata["token_count"] <= 48 for h in hits)
    default_target = indexes.target(indexes.get_index(default["id"]))
    assert max(h.metadata["token_count"] for h in default_target.lexical.query("pump vibration", 50)) > 48

    again = api.post(f"/api/knowledge-sources/{sid}/indexes", json={"chunk_size": 48, "chunk_overlap": 8})
    assert again.status_code == 202 and again.json["data"]["id"] == new["id"]  # same settings, same index
    listed = api.get(f"/api/knowledge-sources/{sid}/indexes").json["data"]
    assert [i["id"] for i in listed] == [default["id"], new["id"]]
    _error(api.get(f"/api/knowledge-sources/ks_other/indexes/{new['id']}"), 404, "not_found")
