"""Uploading real files to a `file` source: per-file results, the sync they start, updates, deletion."""
import io
import os
from pathlib import Path

import pytest

from tests.conftest import wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PDF_A = (FIXTURES / "pdf" / "598us1r3_j4ek.pdf").read_bytes()
PDF_B = (FIXTURES / "pdf" / "bank_statement.pdf").read_bytes()
LATIN1 = ("Le café crème et la crème brûlée sont servis à la façade du château.\n"
          "Déjà vu: la naïveté du résumé étonne le garçon.\n").encode("latin-1")
LIMIT = 400_000  # bytes: the real PDFs (about 260 kB) fit, the oversized file does not
pytestmark = pytest.mark.slow


def _finished(api, source_id, run_id):
    return wait_for(
        lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{run_id}").json["data"],
        lambda run: run["status"] not in ("queued", "running"),
    )


def upload(api, source_id, files):
    """POST files as multipart `files`; `files` is a list of (filename, bytes)."""
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    return api.post(f"/api/knowledge-sources/{source_id}/documents", data=data, content_type="multipart/form-data")


def _documents(api, source_id):
    data = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=100").json["data"]
    return {d["name"]: d for d in data}


def _stores(source_id):
    from app.extensions import db
    from app.models import KnowledgeSource
    from app.services import indexes

    return indexes.target(indexes.indexes_of(db.session.get(KnowledgeSource, source_id))[0])


def _chunks_of(target, document_id):
    """How many chunks of one document the Chroma collection and the lexical table hold."""
    from sqlalchemy import text

    from app.extensions import db

    collection = target.vectors.client.get_collection(target.vectors.collection_name)
    dense = len(collection.get(where={"document_id": document_id}, include=[])["ids"])
    with db.engine.connect() as conn:
        lexical = conn.execute(text(f"SELECT count(*) FROM {target.lexical.table} WHERE document_id = :d"),
                               {"d": document_id}).scalar_one()
    return dense, lexical


def _stored(source_id):
    """The upload store's view of a source: {name: size}."""
    from app.extensions import db
    from app.models import SourceUpload

    rows = db.session.execute(db.select(SourceUpload).where(SourceUpload.source_id == source_id)).scalars()
    return {row.name: row.size_bytes for row in rows}


def _blob_count():
    from app.extensions import db
    from app.models import Blob

    return db.session.execute(db.select(db.func.count()).select_from(Blob)).scalar_one()


@pytest.fixture
def file_source(api):
    res = api.post("/api/knowledge-sources", json={
        "name": "uploads", "type": "file",
        "configuration": {"max_file_size": LIMIT, "file_types": [".txt", ".pdf", ".md"]}})
    assert res.status_code == 201, res.json
    return res.json["data"]


def test_upload_reports_each_file_and_the_sync_indexes_the_good_ones(app, api, worker, file_source):
    sid = file_source["id"]
    res = upload(api, sid, [
        ("ruling.pdf", PDF_A),
        ("statement.pdf", PDF_B),
        ("menu-latin1.txt", LATIN1),
        ("truncated.pdf", PDF_A[:20_000]),
        ("random.txt", os.urandom(4096)),
        ("really-text.pdf", b"Plain words saved under a pdf name: the warranty lasts two years.\n"),
        ("table.csv", b"a,b\n1,2\n"),                  # a supported format, but not allowed by file_types
        ("huge.txt", b"word " * (LIMIT // 5 + 10)),  # over max_file_size
        ("empty.md", b""),
    ])
    assert res.status_code == 202, res.json
    body = res.json["data"]
    results = {f["filename"]: f for f in body["files"]}
    assert len(results) == 9
    accepted = {name for name, f in results.items() if f["accepted"]}
    assert accepted == {"ruling.pdf", "statement.pdf", "menu-latin1.txt", "truncated.pdf", "random.txt",
                        "really-text.pdf"}
    assert results["table.csv"]["error"]["code"] == "unsupported_type"
    assert ".csv" in results["table.csv"]["error"]["message"]
    assert results["huge.txt"]["error"]["code"] == "too_large"
    assert str(LIMIT) in results["huge.txt"]["error"]["message"]
    assert results["empty.md"]["error"]["code"] == "empty"
    assert results["ruling.pdf"]["size_bytes"] == len(PDF_A)
    assert body["sync"]["status"] == "queued" and body["sync"]["trigger"] == "upload"

    run = _finished(api, sid, body["sync"]["id"])
    assert run["status"] == "completed_with_errors"
    assert run["counts"] == {"added": 4, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 2}
    assert run["progress"] == {"done": 6, "total": 6}
    errors = {e["external_id"].split("/")[-1]: e["code"] for e in run["errors"]}
    assert errors == {"truncated.pdf": "corrupt_file", "random.txt": "binary_content"}

    docs = _documents(api, sid)
    assert set(docs) == accepted  # rejected files never became documents
    assert docs["ruling.pdf"]["status"] == "indexed" and docs["ruling.pdf"]["page_count"] == 24
    assert docs["statement.pdf"]["status"] == "indexed" and docs["statement.pdf"]["page_count"] >= 1
    assert docs["menu-latin1.txt"]["status"] == "indexed"
    assert docs["really-text.pdf"]["status"] == "indexed" and docs["really-text.pdf"]["mime_type"] == "text/plain"
    assert docs["truncated.pdf"]["status"] == "failed" and docs["truncated.pdf"]["error"]["code"] == "corrupt_file"
    assert docs["random.txt"]["status"] == "failed" and docs["random.txt"]["error"]["code"] == "binary_content"
    assert docs["truncated.pdf"]["chunk_count"] == 0 == docs["random.txt"]["chunk_count"]

    target = _stores(sid)
    total = sum(d["chunk_count"] for d in docs.values())
    assert total > 20
    assert target.vectors.count() == total == target.lexical.count()
    # The Latin-1 bytes were decoded, not mangled: the accented words are searchable as written.
    hits = target.lexical.query("brûlée château", 3)
    assert hits and hits[0].metadata["document_id"] == docs["menu-latin1.txt"]["id"]
    assert "crème brûlée" in hits[0].text
    source = api.get(f"/api/knowledge-sources/{sid}").json["data"]
    assert source["document_count"] == 6 and source["chunk_count"] == total
    assert source["last_sync_status"] == "completed_with_errors" and source["status"] == "idle"


def test_reupload_with_new_content_is_an_update(app, api, worker, file_source):
    sid = file_source["id"]
    first = upload(api, sid, [("policy.txt", b"Refunds are paid within fourteen days.\n"),
                              ("other.txt", b"Shipping takes three working days.\n")])
    _finished(api, sid, first.json["data"]["sync"]["id"])
    before = _documents(api, sid)["policy.txt"]

    again = upload(api, sid, [("policy.txt", b"Refunds are paid within thirty days, by bank transfer only.\n")])
    assert again.status_code == 202 and again.json["data"]["files"][0]["accepted"]
    run = _finished(api, sid, again.json["data"]["sync"]["id"])
    assert run["status"] == "completed"
    assert run["counts"] == {"added": 0, "updated": 1, "unchanged": 1, "deleted": 0, "failed": 0}

    after = _documents(api, sid)
    assert len(after) == 2
    assert after["policy.txt"]["id"] == before["id"] and after["policy.txt"]["content_hash"] != before["content_hash"]
    target = _stores(sid)
    top = target.lexical.query("refunds paid", 5)
    assert [h.text for h in top if h.metadata["document_id"] == before["id"]] == [
        "Refunds are paid within thirty days, by bank transfer only."]
    assert target.vectors.count() == sum(d["chunk_count"] for d in after.values()) == target.lexical.count()


def test_upload_while_a_sync_runs_starts_another_sync_afterwards(app, api, worker, file_source):
    sid = file_source["id"]
    first = upload(api, sid, [("ruling.pdf", PDF_A)])
    second = upload(api, sid, [("late.txt", b"This file arrived while the first sync was running.\n")])
    assert second.status_code == 202
    assert second.json["data"]["sync"] is None and "another starts" in second.json["data"]["message"]
    _finished(api, sid, first.json["data"]["sync"]["id"])
    runs = wait_for(lambda: api.get(f"/api/knowledge-sources/{sid}/syncs").json["data"],
                    lambda rs: len(rs) == 2 and rs[0]["status"] not in ("queued", "running"))
    assert len(runs) == 2 and runs[0]["trigger"] == "upload" and runs[0]["status"] == "completed"
    docs = _documents(api, sid)
    assert docs["late.txt"]["status"] == "indexed" and docs["ruling.pdf"]["status"] == "indexed"


def test_delete_document_removes_its_vectors_lexical_rows_and_file(app, api, worker, file_source):
    sid = file_source["id"]
    res = upload(api, sid, [("ruling.pdf", PDF_A), ("faq.txt", b"The office opens at nine in the morning.\n")])
    _finished(api, sid, res.json["data"]["sync"]["id"])
    docs = _documents(api, sid)
    ruling, faq = docs["ruling.pdf"], docs["faq.txt"]
    target = _stores(sid)
    assert _chunks_of(target, ruling["id"]) == (ruling["chunk_count"], ruling["chunk_count"])
    before = target.vectors.count()

    gone = api.delete(f"/api/knowledge-sources/{sid}/documents/{ruling['id']}")
    assert gone.status_code == 200 and gone.json["success"] is True
    assert api.get(f"/api/knowledge-sources/{sid}/documents/{ruling['id']}").status_code == 404
    assert _chunks_of(target, ruling["id"]) == (0, 0)
    assert target.vectors.count() == before - ruling["chunk_count"] == target.lexical.count()
    assert target.vectors.count() == faq["chunk_count"]
    # The stored upload went with it: its name, and its bytes (no other upload shares them).
    assert _stored(sid) == {"faq.txt": len(b"The office opens at nine in the morning.\n")}
    assert _blob_count() == 1
    assert api.delete(f"/api/knowledge-sources/{sid}/documents/{ruling['id']}").status_code == 404

    run = _finished(api, sid, api.post(f"/api/knowledge-sources/{sid}/sync").json["data"]["id"])
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 1, "deleted": 0, "failed": 0}
    assert set(_documents(api, sid)) == {"faq.txt"}


def test_upload_rules(app, api, make_key, file_source, tmp_path):
    folder = api.post("/api/knowledge-sources", json={
        "name": "folder", "type": "directory", "configuration": {"path": str(tmp_path)}}).json["data"]
    res = upload(api, folder["id"], [("a.txt", b"hello")])
    assert res.status_code == 409 and res.json["error"]["code"] == "wrong_source_type"

    res = api.post(f"/api/knowledge-sources/{file_source['id']}/documents", data={},
                   content_type="multipart/form-data")
    assert res.status_code == 422 and "files" in res.json["error"]["message"]
    assert upload(api, "ks_nope", [("a.txt", b"hello")]).status_code == 404

    only_rejects = upload(api, file_source["id"], [("x.csv", b"a,b\n")])
    assert only_rejects.status_code == 202
    assert only_rejects.json["data"]["sync"] is None  # nothing accepted: nothing to sync
    assert only_rejects.json["data"]["files"][0]["error"]["code"] == "unsupported_type"

    viewer = api.post(f"/api/knowledge-sources/{file_source['id']}/documents", key=make_key("viewer"),
                      data={"files": [(io.BytesIO(b"hello"), "a.txt")]}, content_type="multipart/form-data")
    assert viewer.status_code == 403


def test_names_in_any_script_keep_their_name_and_extension(app, api, worker, file_source):
    sid = file_source["id"]
    res = upload(api, sid, [
        ("报告.txt", "季度报告：销售额增长了百分之十。\n".encode()),
        ("отчёт.txt", "Квартальный отчёт: продажи выросли на десять процентов.\n".encode()),
        ("../../etc/résumé.md", b"# Resume\n\nTen years of plumbing.\n"),
        (".hidden.txt", b"A name that started with a dot.\n"),
    ])
    assert res.status_code == 202, res.json
    files = res.json["data"]["files"]
    assert all(f["accepted"] for f in files), files
    assert [f["external_id"] for f in files] == [
        "报告.txt/报告.txt", "отчёт.txt/отчёт.txt", "résumé.md/résumé.md", "hidden.txt/hidden.txt"]
    run = _finished(api, sid, res.json["data"]["sync"]["id"])
    assert run["counts"]["added"] == 4 and run["status"] == "completed", run
    docs = _documents(api, sid)
    assert set(docs) == {"报告.txt", "отчёт.txt", "résumé.md", "hidden.txt"}
    assert all(d["status"] == "indexed" for d in docs.values())
    # Only the base names were kept, and nothing was written to this node's data dir at all.
    assert set(_stored(sid)) == {"报告.txt", "отчёт.txt", "résumé.md", "hidden.txt"}
    assert not (app.extensions["magnet.config"].data_dir / "sources" / sid).exists()
