"""Web and git sources end to end: a real HTTP server on 127.0.0.1 and real git repositories."""
import shutil
import socket
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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
    return _finished(api, source_id, res.json["data"]["id"])


def _documents(api, source_id):
    data = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=100").json["data"]
    return {d["external_id"]: d for d in data}


def _stores(source_id):
    from app.extensions import db
    from app.models import KnowledgeSource
    from app.services import indexes

    return indexes.target(indexes.indexes_of(db.session.get(KnowledgeSource, source_id))[0])


def _consistent(api, source_id):
    """Chroma, the lexical index and the documents' chunk counts agree; returns the total."""
    target = _stores(source_id)
    total = sum(d["chunk_count"] for d in _documents(api, source_id).values())
    assert target.vectors.count() == total == target.lexical.count()
    return total


# -- web ------------------------------------------------------------------------------------------


def _page(title: str, body: str, links: list[str]) -> str:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>{body}</p><ul>{anchors}</ul></body></html>")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path):
    """A small website served from a folder by a real HTTP server on 127.0.0.1."""
    root = tmp_path / "site"
    (root / "private").mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "index.html").write_text(_page(
        "Acme help centre", "Welcome to the Acme help centre for the Roadrunner rocket skates.",
        ["/returns.html", "shipping.html", "/manual.pdf", "/private/salaries.html", "https://example.com/out"]))
    (root / "returns.html").write_text(_page(
        "Returns", "Rocket skates can be returned within thirty days if the seal is unbroken.",
        ["/index.html", "/warranty.html"]))
    (root / "shipping.html").write_text(_page(
        "Shipping", "Orders ship from the Phoenix warehouse by desert courier within two days.", ["/index.html"]))
    (root / "warranty.html").write_text(_page(
        "Warranty", "The warranty covers exploding wheels for one full year after purchase.", []))
    (root / "private" / "salaries.html").write_text(_page("Salaries", "Confidential payroll figures.", []))
    shutil.copy(FIXTURES / "pdf" / "bank_statement.pdf", root / "manual.pdf")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.root = root
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def _web_source(api, name, urls):
    res = api.post("/api/knowledge-sources", json={
        "name": name, "type": "web", "configuration": {"urls": urls, "max_depth": 2, "delay": 0, "timeout": 5}})
    assert res.status_code == 201, res.json
    return res.json["data"]


def test_web_source_crawls_indexes_and_deletes_removed_pages(app, api, worker, site):
    base = site.base
    source = _web_source(api, "help centre", [f"{base}/index.html"])
    run = sync(api, source["id"])
    assert run["status"] == "completed", run
    assert run["counts"] == {"added": 5, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert run["progress"] == {"done": 5, "total": 5}
    docs = _documents(api, source["id"])
    assert set(docs) == {f"{base}/index.html", f"{base}/returns.html", f"{base}/shipping.html",
                         f"{base}/manual.pdf", f"{base}/warranty.html"}  # robots.txt kept /private/ out
    assert all(d["status"] == "indexed" and d["chunk_count"] >= 1 for d in docs.values())
    assert docs[f"{base}/manual.pdf"]["mime_type"] == "application/pdf"
    assert docs[f"{base}/manual.pdf"]["page_count"] >= 1
    assert docs[f"{base}/returns.html"]["title"] == "Returns"
    _consistent(api, source["id"])
    hit = _stores(source["id"]).lexical.query("seal unbroken returned", 1)[0]
    assert hit.metadata["document_id"] == docs[f"{base}/returns.html"]["id"]

    # Shipping is taken off the site and no longer linked; warranty is deleted but still linked (404).
    (site.root / "shipping.html").unlink()
    (site.root / "warranty.html").unlink()
    (site.root / "index.html").write_text(_page(
        "Acme help centre", "Welcome to the Acme help centre. Rocket skates are on sale this week.",
        ["/returns.html", "/manual.pdf"]))
    run = sync(api, source["id"])
    assert run["status"] == "completed", run
    assert run["counts"] == {"added": 0, "updated": 1, "unchanged": 2, "deleted": 2, "failed": 0}
    [gone] = run["errors"]  # the dead link is reported, but it is not a failure of the sync
    assert gone["external_id"] == f"{base}/warranty.html" and gone["skipped"] and "404" in gone["message"]
    after = _documents(api, source["id"])
    assert set(after) == {f"{base}/index.html", f"{base}/returns.html", f"{base}/manual.pdf"}
    assert after[f"{base}/index.html"]["id"] == docs[f"{base}/index.html"]["id"]
    _consistent(api, source["id"])
    target = _stores(source["id"])
    removed = {docs[f"{base}/shipping.html"]["id"], docs[f"{base}/warranty.html"]["id"]}
    assert not [h for h in target.lexical.query("desert courier warranty exploding wheels", 20)
                if h.metadata["document_id"] in removed]

    run = sync(api, source["id"])  # a third sync: nothing flips back and forth
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 3, "deleted": 0, "failed": 0}


def test_unreachable_web_seed_fails_the_run_and_loses_nothing(app, api, worker, site):
    source = _web_source(api, "help centre", [f"{site.base}/index.html"])
    sync(api, source["id"])
    before = _consistent(api, source["id"])
    assert before > 0
    site.shutdown()
    site.server_close()  # the port now refuses connections

    run = sync(api, source["id"])
    assert run["status"] == "failed"
    assert "No page of this source could be fetched" in run["message"] and site.base in run["message"]
    assert len(_documents(api, source["id"])) == 5 and _consistent(api, source["id"]) == before
    src = api.get(f"/api/knowledge-sources/{source['id']}").json["data"]
    assert src["status"] == "error" and src["last_sync_status"] == "failed"


def test_web_seed_on_a_closed_port_fails_a_first_sync_clearly(app, api, worker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    source = _web_source(api, "nowhere", [f"http://127.0.0.1:{port}/"])
    run = sync(api, source["id"])
    assert run["status"] == "failed" and f"127.0.0.1:{port}" in run["message"]
    assert "Could not fetch" in run["message"]
    assert _documents(api, source["id"]) == {}


def test_web_seed_outside_the_allowlist_is_blocked(app, api, worker):
    source = _web_source(api, "internal", ["http://10.11.12.13/"])
    run = sync(api, source["id"])
    assert run["status"] == "failed" and "blocked" in run["message"]


class _GatedPages(SimpleHTTPRequestHandler):
    """Serves /page-N.html; from page GATE on, a request waits until the test opens the gate, so a sync
    is reliably still running when the test cancels it."""
    GATE = 5

    def do_GET(self):
        if not self.path.startswith("/page-"):
            self.send_error(404)  # robots.txt: none, everything may be crawled
            return
        number = int(self.path.removeprefix("/page-").removesuffix(".html"))
        if number >= self.GATE:
            self.server.reached.set()
            self.server.gate.wait(30)
        body = _page(f"Page {number}", f"Meeting {number} about topic {number * 7} moved to room {number}.",
                     []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_cancel_stops_a_running_sync_and_a_rerun_converges(app, api, worker, monkeypatch):
    monkeypatch.setattr("app.services.sync.PROGRESS_EVERY_SECONDS", 0)  # look for the cancel at every page
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatedPages)
    server.reached, server.gate = threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        urls = [f"{base}/page-{i}.html" for i in range(30)]
        source = api.post("/api/knowledge-sources", json={
            "name": "pages", "type": "web",
            "configuration": {"urls": urls, "delay": 0, "timeout": 60, "concurrency": 2}}).json["data"]
        run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
        assert server.reached.wait(60)  # the sync is running and now waits on the gated pages
        res = api.post(f"/api/knowledge-sources/{source['id']}/syncs/{run['id']}/cancel")
        assert res.status_code == 202 and res.json["data"]["cancel_requested"] is True
        server.gate.set()
        ended = _finished(api, source["id"], run["id"])
        assert ended["status"] == "cancelled", ended
        assert ended["progress"]["done"] <= _GatedPages.GATE  # it stopped at the gate, not after all 30
        assert ended["counts"]["added"] <= _GatedPages.GATE
        assert api.post(f"/api/knowledge-sources/{source['id']}/syncs/{run['id']}/cancel").status_code == 409
        _consistent(api, source["id"])  # what was synced before the cancel is whole in both stores

        rerun = sync(api, source["id"])
        assert rerun["status"] == "completed", rerun
        counts = rerun["counts"]
        assert counts["added"] + counts["unchanged"] == 30 and counts["added"] >= 30 - _GatedPages.GATE
        assert len(_documents(api, source["id"])) == 30
        assert _consistent(api, source["id"]) == 30
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()


# -- git ------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false",
         "-c", "init.defaultBranch=main", *args],
        cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "docs").mkdir()
    (root / "README.md").write_text("# Gadget\n\nGadget turns sunlight into tea. Install it on a sunny roof.\n")
    (root / "docs" / "setup.md").write_text("# Setup\n\nBolt the gadget to the roof and point it south.\n")
    (root / "docs" / "faq.txt").write_text("The gadget brews four cups of tea per hour of sunlight.\n")
    (root / "logo.svg").write_bytes(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_git_source_syncs_commits_changes_and_deletions(app, api, worker, repo):
    res = api.post("/api/knowledge-sources", json={
        "name": "gadget repo", "type": "git", "configuration": {"url_or_path": str(repo), "exclude": ["*.svg"]}})
    assert res.status_code == 201, res.json
    sid = res.json["data"]["id"]
    run = sync(api, sid)
    assert run["status"] == "completed", run
    assert run["counts"] == {"added": 3, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    docs = _documents(api, sid)
    assert set(docs) == {"README.md", "docs/setup.md", "docs/faq.txt"}
    first_commit = git(repo, "rev-parse", "HEAD").strip()
    assert _consistent(api, sid) >= 3

    (repo / "docs" / "setup.md").write_text("# Setup\n\nScrew the gadget to a wall facing the equator.\n")
    git(repo, "rm", "-q", "docs/faq.txt")
    (repo / "uncommitted.md").write_text("Work in progress that was never committed.\n")
    git(repo, "add", "docs/setup.md")
    git(repo, "commit", "-q", "-m", "second")
    run = sync(api, sid)
    assert run["status"] == "completed", run
    assert run["counts"] == {"added": 0, "updated": 1, "unchanged": 1, "deleted": 1, "failed": 0}
    after = _documents(api, sid)
    assert set(after) == {"README.md", "docs/setup.md"}  # the uncommitted file is not in the repository
    assert after["docs/setup.md"]["id"] == docs["docs/setup.md"]["id"]
    assert after["docs/setup.md"]["content_hash"] != docs["docs/setup.md"]["content_hash"]
    _consistent(api, sid)
    target = _stores(sid)
    assert target.lexical.query("equator wall", 1)[0].metadata["document_id"] == after["docs/setup.md"]["id"]
    assert not target.lexical.query("cups per hour", 5)
    doc = api.get(f"/api/knowledge-sources/{sid}/documents/{after['README.md']['id']}").json["data"]
    assert doc["status"] == "indexed" and git(repo, "rev-parse", "HEAD").strip() != first_commit

    assert sync(api, sid)["counts"] == {"added": 0, "updated": 0, "unchanged": 2, "deleted": 0, "failed": 0}


def test_git_source_that_does_not_exist_fails_with_the_reason(app, api, worker, tmp_path):
    missing = tmp_path / "no-such-repo"
    res = api.post("/api/knowledge-sources", json={
        "name": "ghost", "type": "git", "configuration": {"url_or_path": str(missing)}})
    assert res.status_code == 201, res.json
    run = sync(api, res.json["data"]["id"])
    assert run["status"] == "failed"
    # Named relative to its source root: no absolute server path in what every viewer reads.
    assert f"{tmp_path.name}/no-such-repo does not exist" in run["message"]
    assert str(tmp_path) not in run["message"]


def test_git_repository_that_disappears_loses_nothing(app, api, worker, repo):
    sid = api.post("/api/knowledge-sources", json={
        "name": "gadget repo", "type": "git", "configuration": {"url_or_path": str(repo)}}).json["data"]["id"]
    sync(api, sid)
    total = _consistent(api, sid)
    shutil.rmtree(repo)
    run = sync(api, sid)
    assert run["status"] == "failed" and f"{repo.name} does not exist" in run["message"]
    assert len(_documents(api, sid)) == 3 and _consistent(api, sid) == total
