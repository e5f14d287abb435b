"""Syncing real files through the API: incremental by hash, deletions, failures recorded, cancel, 409."""
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
pytestmark = pytest.mark.slow


def _finished(api, source_id, run_id):
    return wait_for(
        lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{run_id}").json["data"],
        lambda run: run["status"] not in ("queued", "running"),
    )


def sync(api, source_id):
    res = api.post(f"/api/knowledge-sources/{source_id}/sync")
    assert res.status_code == 202, res.json
    assert res.json["data"]["status"] == "queued"
    return _finished(api, source_id, res.json["data"]["id"])


def _stores(source_id):
    """The default index's real vector store and lexical index."""
    from app.extensions import db
    from app.models import KnowledgeSource
    from app.services import indexes

    index = indexes.indexes_of(db.session.get(KnowledgeSource, source_id))[0]
    return indexes.target(index)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "install.md").write_text(
        "# Install\n\nRun the installer and accept the licence.\n\n## On Linux\n\nUse the tarball; "
        "unpack it into /opt and add the bin folder to your PATH.\n")
    (root / "faq.txt").write_text("Refunds are processed within fourteen days of the request.\n")
    shutil.copy(FIXTURES / "pdf" / "bank_statement.pdf", root / "statement.pdf")
    (root / "broken.pdf").write_bytes((FIXTURES / "pdf" / "bank_statement.pdf").read_bytes()[:900])
    (root / "logo.svg").write_bytes(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
    return root


@pytest.fixture
def source(api, folder):
    res = api.post("/api/knowledge-sources", json={
        "name": "handbook", "type": "directory", "configuration": {"path": str(folder)}})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _documents(api, source_id):
    data = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=100").json["data"]
    return {d["external_id"]: d for d in data}


def test_first_sync_indexes_good_files_and_records_failures(app, api, worker, source):
    run = sync(api, source["id"])
    assert run["status"] == "completed_with_errors"
    assert run["counts"] == {"added": 3, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 1}
    assert run["progress"] == {"done": 5, "total": 5}
    by_file = {e["external_id"]: e for e in run["errors"]}
    assert by_file["broken.pdf"]["code"] == "corrupt_file" and not by_file["broken.pdf"]["skipped"]
    assert by_file["logo.svg"]["code"] == "unsupported_type" and by_file["logo.svg"]["skipped"]

    docs = _documents(api, source["id"])
    assert set(docs) == {"guides/install.md", "faq.txt", "statement.pdf", "broken.pdf"}
    assert docs["broken.pdf"]["status"] == "failed" and docs["broken.pdf"]["error"]["code"] == "corrupt_file"
    assert docs["statement.pdf"]["status"] == "indexed" and docs["statement.pdf"]["page_count"] >= 1
    assert all(docs[k]["chunk_count"] >= 1 for k in ("guides/install.md", "faq.txt", "statement.pdf"))
    assert len(docs["faq.txt"]["content_hash"]) == 64

    target = _stores(source["id"])
    total_chunks = sum(d["chunk_count"] for d in docs.values())
    assert target.vectors.count() == total_chunks == target.lexical.count()
    hits = target.lexical.query("refund processing", 3)
    assert hits and hits[0].metadata["document_id"] == docs["faq.txt"]["id"]

    src = api.get(f"/api/knowledge-sources/{source['id']}").json["data"]
    assert src["last_sync_status"] == "completed_with_errors" and src["document_count"] == 4
    assert src["chunk_count"] == total_chunks and src["active_sync"] is None


def test_resync_of_unchanged_source_parses_and_embeds_nothing(app, api, worker, source):
    from app.services.engine import embedder_for
    from app.services.llm_models import default_model

    sync(api, source["id"])
    embedder = embedder_for(default_model("embedding"))
    misses_before = embedder.misses
    run = sync(api, source["id"])
    # broken.pdf is still broken: not parsed again, but counted and listed as failed every run.
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 3, "deleted": 0, "failed": 1}
    assert run["status"] == "completed_with_errors"
    failed = [e for e in run["errors"] if not e["skipped"]]
    assert [(e["external_id"], e["code"]) for e in failed] == [("broken.pdf", "corrupt_file")]
    assert failed[0]["document_id"] == _documents(api, source["id"])["broken.pdf"]["id"] and failed[0]["message"]
    assert embedder.misses == misses_before
    target = _stores(source["id"])
    docs = _documents(api, source["id"])
    assert target.vectors.count() == sum(d["chunk_count"] for d in docs.values())  # no duplicates


def test_changed_and_deleted_files(app, api, worker, source, folder):
    sync(api, source["id"])
    before = _documents(api, source["id"])
    (folder / "faq.txt").write_text("Shipping takes three working days within the country.\n")
    (folder / "guides" / "install.md").unlink()
    run = sync(api, source["id"])
    assert run["counts"]["updated"] == 1 and run["counts"]["deleted"] == 1 and run["counts"]["added"] == 0

    docs = _documents(api, source["id"])
    assert "guides/install.md" not in docs
    assert docs["faq.txt"]["id"] == before["faq.txt"]["id"]  # same document, new version
    assert docs["faq.txt"]["content_hash"] != before["faq.txt"]["content_hash"]
    target = _stores(source["id"])
    assert not target.lexical.query("refunds fourteen", 5) or all(
        "Refunds" not in h.text for h in target.lexical.query("refunds fourteen", 5))
    assert target.lexical.query("shipping working days", 1)[0].metadata["document_id"] == docs["faq.txt"]["id"]
    gone = before["guides/install.md"]["id"]
    assert all(h.metadata["document_id"] != gone for h in target.lexical.query("installer tarball licence", 10))
    assert target.vectors.count() == sum(d["chunk_count"] for d in docs.values())


def test_a_file_that_breaks_keeps_its_indexed_version(app, api, worker, source, folder):
    sync(api, source["id"])
    good = _documents(api, source["id"])["statement.pdf"]
    (folder / "statement.pdf").write_bytes(b"%PDF-1.7\n garbage that is not a pdf body")
    run = sync(api, source["id"])
    assert run["counts"]["failed"] == 2  # it, and broken.pdf (still broken)
    assert {e["external_id"] for e in run["errors"] if not e["skipped"]} == {"statement.pdf", "broken.pdf"}
    doc = _documents(api, source["id"])["statement.pdf"]
    assert doc["status"] == "indexed" and doc["chunk_count"] == good["chunk_count"]
    assert doc["error"]["code"] == "corrupt_file"


def test_second_sync_while_one_runs_is_409(api, worker, source):
    first = api.post(f"/api/knowledge-sources/{source['id']}/sync")
    second = api.post(f"/api/knowledge-sources/{source['id']}/sync")
    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json["error"]["code"] == "sync_in_progress"
    assert second.json["error"]["details"]["run_id"] == first.json["data"]["id"]
    _finished(api, source["id"], first.json["data"]["id"])


def test_unreachable_directory_fails_the_run_and_loses_nothing(app, api, worker, source, folder):
    sync(api, source["id"])
    shutil.rmtree(folder)
    run = sync(api, source["id"])
    assert run["status"] == "failed"
    # The reason names the missing folder relative to its source root, never the server's absolute path.
    assert f"{folder.parent.name}/docs does not exist" in run["message"]
    assert str(folder.parent) not in run["message"]
    assert len(_documents(api, source["id"])) == 4  # nothing deleted by a failed listing
    assert api.get(f"/api/knowledge-sources/{source['id']}").json["data"]["status"] == "error"


def test_resync_trusts_an_unchanged_files_stat_and_reads_a_changed_one(app, api, worker, source, folder, monkeypatch):
    """An unchanged file is not even read on a re-sync (size, times and inode as when it was indexed), but
    a file rewritten with bytes of the same length and its modification time set back is: the change time
    moved. A file only touched is read once, found the same, and trusted again from then on."""
    from app.services import sync as sync_service

    sync(api, source["id"])
    read = []
    real_read = sync_service.read_item
    monkeypatch.setattr(sync_service, "read_item", lambda item, limit: read.append(item.external_id)
                        or real_read(item, limit))
    run = sync(api, source["id"])
    assert run["counts"]["unchanged"] == 3 and run["counts"]["failed"] == 1
    assert read == ["broken.pdf"]  # the failure is read again (it is reported every run); nothing else

    faq = folder / "faq.txt"
    before = faq.stat()
    faq.write_text(faq.read_text().replace("fourteen", "eighteen"))  # same length
    os.utime(faq, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert faq.stat().st_size == before.st_size and faq.stat().st_mtime_ns == before.st_mtime_ns
    os.utime(folder / "guides" / "install.md")  # touched: same bytes, new times
    read.clear()
    run = sync(api, source["id"])
    assert sorted(read) == ["broken.pdf", "faq.txt", "guides/install.md"]
    assert run["counts"]["updated"] == 1 and run["counts"]["unchanged"] == 2
    assert _stores(source["id"]).lexical.query("eighteen days", 1)[0].metadata["document_id"] == \
        _documents(api, source["id"])["faq.txt"]["id"]
    read.clear()
    run = sync(api, source["id"])
    assert read == ["broken.pdf"] and run["counts"]["unchanged"] == 3
