"""Uploaded bytes live in the database, not in a node's data dir: any node takes an upload, any worker syncs
it; blobs are shared and collected; uploads an older Magnet left on disk are imported, losing nothing."""
import io
import os
import shutil
import time

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import Config
from tests.conftest import ApiClient, wait_for

pytestmark = pytest.mark.slow
POLICY = b"Refunds are paid within fourteen days, by bank transfer only.\n"


def _node(data_dir, database_url, chroma):
    """Another Magnet process: its own data dir (and job queue), the same database and Chroma service."""
    node = create_app(Config(data_dir=data_dir, database_url=database_url, secret_key="test-secret-key-not-for-production",
                             testing=True, outbound_allowlist=["127.0.0.1", "localhost"]))
    node.extensions["magnet.chroma"] = chroma  # what MAGNET_CHROMA_URL gives every node: one vector service
    return node


def _upload(api, source_id, files):
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    return api.post(f"/api/knowledge-sources/{source_id}/documents", data=data, content_type="multipart/form-data")


def _stored(source_id):
    from app.extensions import db
    from app.models import SourceUpload

    rows = db.session.execute(select(SourceUpload).where(SourceUpload.source_id == source_id)).scalars()
    return {row.name: row.blob_sha256 for row in rows}


def _blob_count():
    from app.extensions import db
    from app.models import Blob

    return db.session.execute(select(func.count()).select_from(Blob)).scalar_one()


def _files_under(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_an_upload_to_one_node_is_synced_by_a_worker_with_another_data_dir(app, make_key, database_url, tmp_path):
    from app.services.sync import run_sync
    from app.vectordb import chroma_client

    chroma = chroma_client()  # the session's Chroma stands for the shared `chroma run` service
    web, worker = _node(tmp_path / "web", database_url, chroma), _node(tmp_path / "worker", database_url, chroma)
    api = ApiClient(web.test_client(), make_key("admin"))
    source = api.post("/api/knowledge-sources", json={"name": "policies", "type": "file"}).json["data"]
    res = _upload(api, source["id"], [("policy.txt", POLICY)])
    assert res.status_code == 202 and res.json["data"]["files"][0]["accepted"], res.json
    run_id = res.json["data"]["sync"]["id"]
    assert "policy.txt" not in _files_under(tmp_path / "web")  # the bytes went to the database

    with worker.app_context():  # the web node's queue has no consumer: the other node runs the sync
        run_sync(run_id)
        from app.services import indexes
        from app.services.knowledge_sources import get_source

        target = indexes.target(indexes.indexes_of(get_source(source["id"]))[0])
        hits = target.lexical.query("refunds bank transfer", 3)
        assert target.vectors.count() == 1 == target.lexical.count()

    run = api.get(f"/api/knowledge-sources/{source['id']}/syncs/{run_id}").json["data"]
    assert run["status"] == "completed", run
    assert run["counts"] == {"added": 1, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    docs = api.get(f"/api/knowledge-sources/{source['id']}/documents").json["data"]
    assert [(d["name"], d["status"]) for d in docs] == [("policy.txt", "indexed")]
    assert hits and hits[0].metadata["document_id"] == docs[0]["id"] and "fourteen days" in hits[0].text

    # A second upload through the worker's node, synced by the web node: nothing of the first is lost.
    api_b = ApiClient(worker.test_client(), api.key)
    res = _upload(api_b, source["id"], [("shipping.txt", b"Parcels ship within three working days.\n")])
    with web.app_context():
        run_sync(res.json["data"]["sync"]["id"])
    run = api.get(f"/api/knowledge-sources/{source['id']}/syncs/{res.json['data']['sync']['id']}").json["data"]
    assert run["counts"] == {"added": 1, "updated": 0, "unchanged": 1, "deleted": 0, "failed": 0}, run
    if database_url.startswith("postgresql"):
        # On PostgreSQL the embedding cache is shared too: each node sees what the other embedded.
        from app.services.engine import embedding_cache
        from knowledge.embedders.sql_cache import SqlEmbeddingCache

        for node in (web, worker):
            with node.app_context():
                cache = embedding_cache()
                assert isinstance(cache, SqlEmbeddingCache)
                assert cache.count() == 2  # one chunk each, embedded once each, on different nodes
    for node in (web, worker):
        with node.app_context():
            from app.extensions import db

            db.engine.dispose()


def test_blobs_are_stored_once_and_collected_when_nothing_names_them(app, api):
    from app.services.documents import delete_document
    from app.services.knowledge_sources import delete_source
    from app.services.uploads import collect_all_garbage, store_upload

    a = api.post("/api/knowledge-sources", json={"name": "a", "type": "file"}).json["data"]["id"]
    b = api.post("/api/knowledge-sources", json={"name": "b", "type": "file"}).json["data"]["id"]
    same = store_upload(a, "one.txt", POLICY)
    assert store_upload(a, "two.txt", POLICY) == same and store_upload(b, "one.txt", POLICY) == same
    assert _blob_count() == 1  # content-addressed: three uploads, one blob

    replaced = store_upload(a, "one.txt", b"A new version.\n")
    assert _stored(a) == {"one.txt": replaced, "two.txt": same} and _blob_count() == 2

    # A document deleted takes its upload; the blob stays while another upload names it.
    from app.extensions import db
    from app.models import Document

    doc = Document(source_id=a, external_id="two.txt/two.txt", name="two.txt")
    db.session.add(doc)
    db.session.commit()
    delete_document(a, doc.id)
    assert _stored(a) == {"one.txt": replaced} and _blob_count() == 2
    store_upload(a, "one.txt", b"Yet another version.\n")
    assert _blob_count() == 2  # the replaced version went: nothing named it

    delete_source(b)
    assert _blob_count() == 1  # POLICY was named only by b's upload
    delete_source(a)
    assert _blob_count() == 0

    # A blob a dead process left unnamed is collected on start.
    from app.services.blobs import blob_store

    blob_store().put(b"orphan")
    db.session.commit()
    assert _blob_count() == 1 and collect_all_garbage() == 1 and _blob_count() == 0


def _legacy_upload(data_dir, source_id, name, content, age_seconds=0):
    """A file where Magnet before the shared store kept uploads: <data dir>/sources/<id>/uploads/<name>/<name>."""
    path = data_dir / "sources" / source_id / "uploads" / name / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if age_seconds:
        when = time.time() - age_seconds
        os.utime(path, (when, when))
    return path


def test_uploads_left_in_the_data_dir_by_an_older_version_are_imported_on_sync(app, api, worker):
    data_dir = app.extensions["magnet.config"].data_dir
    source = api.post("/api/knowledge-sources", json={"name": "legacy", "type": "file"}).json["data"]
    sid = source["id"]
    _legacy_upload(data_dir, sid, "policy.txt", POLICY)
    partial = data_dir / "sources" / sid / "uploads" / "late.txt" / ".late.txt.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half an upload")  # never finished: not an upload

    run_id = api.post(f"/api/knowledge-sources/{sid}/sync").json["data"]["id"]
    run = wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/syncs/{run_id}").json["data"],
                   lambda r: r["status"] not in ("queued", "running"))
    assert run["status"] == "completed" and run["counts"]["added"] == 1, run
    assert set(_stored(sid)) == {"policy.txt"}
    assert not (data_dir / "sources" / sid / "uploads" / "policy.txt").exists()  # moved, not copied
    docs = api.get(f"/api/knowledge-sources/{sid}/documents").json["data"]
    assert [(d["name"], d["status"], d["external_id"]) for d in docs] == [
        ("policy.txt", "indexed", "policy.txt/policy.txt")]  # the id every version gave it


def test_on_start_each_node_imports_its_own_uploads_and_the_newer_version_wins(app, api, worker):
    from app.services.legacy_uploads import import_local_uploads
    from app.services.uploads import store_upload

    data_dir = app.extensions["magnet.config"].data_dir
    sid = api.post("/api/knowledge-sources", json={"name": "two nodes", "type": "file"}).json["data"]["id"]
    current = store_upload(sid, "policy.txt", POLICY)  # uploaded after the upgrade
    _legacy_upload(data_dir, sid, "policy.txt", b"An old version of the policy.\n", age_seconds=3600)
    _legacy_upload(data_dir, sid, "faq.txt", b"The office opens at nine.\n", age_seconds=3600)
    stray = _legacy_upload(data_dir, "ks_gone", "x.txt", b"of a source this database does not know")

    assert import_local_uploads() == {sid: 1}
    stored = _stored(sid)
    assert set(stored) == {"policy.txt", "faq.txt"} and stored["policy.txt"] == current  # newer kept
    assert _files_under(data_dir / "sources" / sid) == []
    assert stray.exists()  # not ours to import or delete
    # It queued a sync of the source, which indexes what was imported.
    runs = wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/syncs").json["data"],
                    lambda rs: rs and rs[0]["status"] not in ("queued", "running"))
    assert runs[0]["trigger"] == "upload" and runs[0]["counts"]["added"] == 2, runs
    # What `magnet serve`/`magnet worker` do on start, and operators run on other nodes: nothing twice.
    from app.cli import main

    again = app.test_cli_runner().invoke(main, ["sources", "import-uploads"])
    assert again.exit_code == 0 and "nothing to move" in again.output, again.output
    shutil.rmtree(data_dir / "sources" / "ks_gone")


def test_a_document_whose_upload_is_not_in_the_store_is_kept_not_deleted(app, api, worker):
    """During a rolling upgrade some uploads may still sit on a node that has not imported them."""
    from app.extensions import db
    from app.models import SourceUpload

    sid = api.post("/api/knowledge-sources", json={"name": "rolling", "type": "file"}).json["data"]["id"]
    res = _upload(api, sid, [("policy.txt", POLICY), ("faq.txt", b"The office opens at nine.\n")])
    wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/syncs/{res.json['data']['sync']['id']}").json["data"],
             lambda r: r["status"] not in ("queued", "running"))
    db.session.execute(SourceUpload.__table__.delete().where(SourceUpload.name == "faq.txt"))
    db.session.commit()

    run_id = api.post(f"/api/knowledge-sources/{sid}/sync").json["data"]["id"]
    run = wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/syncs/{run_id}").json["data"],
                   lambda r: r["status"] not in ("queued", "running"))
    assert run["status"] == "completed_with_errors"
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 1, "deleted": 0, "failed": 1}
    assert [(e["external_id"], e["code"]) for e in run["errors"]] == [("faq.txt/faq.txt", "upload_missing")]
    docs = {d["name"]: d for d in api.get(f"/api/knowledge-sources/{sid}/documents").json["data"]}
    assert docs["faq.txt"]["status"] == "indexed" and docs["faq.txt"]["error"]["code"] == "upload_missing"
    assert docs["faq.txt"]["chunk_count"] == 1
