"""Connectors against real sources: folders in tmp_path, a real HTTP server on 127.0.0.1, real git repos."""
from __future__ import annotations

import functools
import inspect
import os
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from knowledge.connectors import (
    DirectoryConnector,
    GitConnector,
    StoredUpload,
    UploadsConnector,
    WebConnector,
    make_connector,
)
from knowledge.types import IngestError


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _ids(connector) -> list[str]:
    return [item.external_id for item in connector.run()]


def _error(item) -> IngestError:
    with pytest.raises(IngestError) as info:
        item.read()
    return info.value


# --- directory and uploads ------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "root"
    _write(root, {"docs/a.md": "# A", "docs/sub/b.md": "# B", "docs/sub/c.txt": "c", "notes.txt": "n",
                  ".git/config": "[core]", ".hidden/x.md": "x", "build/out.md": "o", "image.svg": b"<svg/>"})
    _write(tmp_path, {"outside/secret.md": "top secret"})
    os.symlink(tmp_path / "outside/secret.md", root / "escape.md")
    os.symlink(tmp_path / "outside", root / "escape_dir")
    os.symlink(root / "docs/a.md", root / "inside.md")
    return root


def test_directory_lists_sorted_relative_paths_lazily(tree):
    items = list(DirectoryConnector(tree).run())
    # Hidden files, the link inside the root and the .svg are left out; the links that lead out of the
    # root are listed, so the sync can say why they were not read.
    assert [i.external_id for i in items] == ["build/out.md", "docs/a.md", "docs/sub/b.md", "docs/sub/c.txt",
                                              "escape.md", "escape_dir", "notes.txt"]
    for escaping in items[4:6]:
        error = _error(escaping)
        assert error.code == "outside_root" and "outside the source root" in error.message
        assert "top secret" not in error.message and str(tree.parent) not in error.message
    assert inspect.isgenerator(DirectoryConnector(tree).run())
    a = items[1]
    assert (a.name, a.size, a.mime_type, a.metadata["path"]) == ("a.md", 3, "text/markdown", "docs/a.md")
    (tree / "docs/a.md").write_text("# A, edited after listing")
    assert a.read() == b"# A, edited after listing"  # bytes are read on demand, not at listing time
    (tree / "docs/a.md").unlink()
    assert _error(a).code == "fetch_failed"


def test_directory_include_and_exclude_globs(tree):
    assert _ids(DirectoryConnector(tree, include=["docs/**/*.md"])) == ["docs/a.md", "docs/sub/b.md"]
    assert _ids(DirectoryConnector(tree, include=["*.txt"])) == ["notes.txt"]  # full_match: top level only
    assert _ids(DirectoryConnector(tree, include="**/*.txt")) == ["docs/sub/c.txt", "notes.txt"]
    assert _ids(DirectoryConnector(tree, exclude=["build/**", "**/*.txt", "escape*"])) == ["docs/a.md", "docs/sub/b.md"]
    for bad in ("", "/etc/*", "../*.md", "docs/../../x", "C:/x"):
        with pytest.raises(ValueError, match="exclude"):
            DirectoryConnector(tree, exclude=[bad])
    with pytest.raises(ValueError, match="max_files"):
        DirectoryConnector(tree, max_files=0)


def test_directory_hidden_symlinks_and_limits(tree):
    hidden = _ids(DirectoryConnector(tree, include_hidden=True))
    assert ".hidden/x.md" in hidden and not any(i.startswith(".git/") for i in hidden)
    followed = _ids(DirectoryConnector(tree, follow_symlinks=True))
    assert "inside.md" in followed  # a link within the root is fine
    escaping = [i for i in DirectoryConnector(tree, follow_symlinks=True).run() if i.external_id.startswith("escape")]
    assert [_error(i).code for i in escaping] == ["outside_root", "outside_root"]  # listed, never followed
    assert "image.svg" in _ids(DirectoryConnector(tree, only_supported=False))
    with pytest.raises(IngestError) as info:
        list(DirectoryConnector(tree, max_files=2).run())
    assert info.value.code == "too_many_files"
    with pytest.raises(IngestError) as info:
        list(DirectoryConnector(tree / "nope").run())
    assert info.value.code == "source_unreachable"


def test_uploads_lists_what_the_store_lists(tmp_path):
    store = {"b1": b"%PDF-1.4", "b2": b"hi"}
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    uploads = [StoredUpload("notes.txt", 2, "b2", lambda: store["b2"], uploaded_at=when),
               StoredUpload("Report 2024.pdf", 8, "b1", lambda: store["b1"])]
    items = list(UploadsConnector(lambda: uploads).run())
    assert [(i.external_id, i.name, i.size, i.mime_type, i.metadata["document_key"], i.metadata["sha256"])
            for i in items] == [("Report 2024.pdf/Report 2024.pdf", "Report 2024.pdf", 8, "application/pdf",
                                 "Report 2024.pdf", "b1"),
                                ("notes.txt/notes.txt", "notes.txt", 2, "text/plain", "notes.txt", "b2")]
    assert items[1].read() == b"hi" and items[1].metadata["uploaded_at"] == "2026-01-02T03:04:05Z"
    assert list(UploadsConnector(lambda: []).run()) == []  # nothing uploaded yet: an empty, valid listing


def test_uploads_without_a_store_or_with_an_unreachable_one_fail_the_listing():
    with pytest.raises(IngestError) as info:
        list(UploadsConnector().run())  # never an empty listing, which would read as "all deleted"
    assert info.value.code == "source_unreachable"

    def unreachable():
        raise IngestError("source_unreachable", "The upload store could not be listed")

    with pytest.raises(IngestError, match="could not be listed"):
        list(UploadsConnector(unreachable).run())
    with pytest.raises(ValueError, match="listing"):
        UploadsConnector("/srv/uploads")


# --- web ------------------------------------------------------------------------------------------

def _page(*links: str) -> str:
    return "<html><body>" + "".join(f'<a href="{href}">{href}</a>' for href in links) + "</body></html>"


SITE = {
    "robots.txt": "User-agent: *\nDisallow: /private/\n",
    "index.html": _page("level1.html", "/private/secret.html", "missing.html", "files/report.pdf",
                        "http://elsewhere.invalid/page.html", "#top", "index.html#again", "logo.png"),
    "level1.html": _page("level2.html"), "level2.html": _page("level3.html"), "level3.html": _page(),
    "private/secret.html": _page(), "sitemap-only.html": _page("level1.html"), "logo.png": b"\x89PNG",
    "files/report.pdf": b"%PDF-1.4\n% a tiny pdf\n",
    "sitemap_index.xml": '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
                         'sitemap/0.9"><sitemap><loc>{base}/sitemap-pages.xml</loc></sitemap></sitemapindex>',
    "sitemap-pages.xml": '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                         '<url><loc>{base}/sitemap-only.html</loc></url><url><loc>{base}/level2.html#x</loc>'
                         '</url></urlset>',
}


@pytest.fixture
def serve(tmp_path):
    """Serve a dict of files from tmp_path over real HTTP; returns (base URL, list of requested paths)."""
    servers = []

    def start(files: dict) -> tuple[str, list[tuple[float, str]]]:
        root = tmp_path / f"site{len(servers)}"
        requests_seen: list[tuple[float, str]] = []

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, *args):  # once per request (log_message also gets errors): record
                requests_seen.append((time.monotonic(), self.path))

            def log_message(self, *args):  # keep pytest output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _write(root, {k: v.replace("{base}", base) if isinstance(v, str) else v for k, v in files.items()})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return base, requests_seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_web_follows_links_to_max_depth_honouring_robots(serve):
    base, log = serve(SITE)
    assert _ids(WebConnector([base + "/index.html"], delay=0)) == [base + "/index.html"]
    items = {i.external_id: i for i in WebConnector([base + "/index.html"], max_depth=1, delay=0).run()}
    assert sorted(items) == sorted(base + p for p in ("/index.html", "/level1.html", "/missing.html",
                                                      "/files/report.pdf"))
    assert not any(path.startswith("/private/") for _, path in log)  # robots.txt was honoured
    assert not any(path == "/logo.png" for _, path in log)  # no loader for images: not even fetched
    missing = _error(items[base + "/missing.html"])
    assert (missing.code, "404" in missing.message) == ("fetch_failed", True)
    pdf = items[base + "/files/report.pdf"]
    assert (pdf.name, pdf.mime_type, pdf.read()[:5]) == ("report.pdf", "application/pdf", b"%PDF-")
    assert b"level1.html" in items[base + "/index.html"].read()
    moved = next(WebConnector([base + "/files"], delay=0).run())  # the server redirects to /files/
    assert (moved.external_id, moved.metadata["url"]) == (base + "/files", base + "/files/")
    deep = _ids(WebConnector([base + "/index.html"], max_depth=3, delay=0))
    assert base + "/level3.html" in deep and len(deep) == len(set(deep)) == 6
    assert base + "/level3.html" not in _ids(WebConnector([base + "/index.html"], max_depth=2, delay=0))
    assert len(_ids(WebConnector([base + "/index.html"], max_depth=3, max_pages=2, delay=0))) == 2


def test_web_reads_nested_sitemaps(serve):
    base, _ = serve(SITE)
    assert _ids(WebConnector(sitemap=base + "/sitemap_index.xml", delay=0)) == [
        base + "/sitemap-only.html", base + "/level2.html"]
    both = _ids(WebConnector([base + "/index.html"], sitemap=base + "/sitemap_index.xml", max_depth=1, delay=0))
    assert both[:3] == [base + "/index.html", base + "/sitemap-only.html", base + "/level2.html"]
    assert both.count(base + "/level1.html") == 1  # linked from two pages, listed once


def test_web_per_item_errors_and_unreachable_source(serve):
    base, log = serve(SITE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"  # nothing listens here once the socket closes
    items = list(WebConnector([base + "/index.html", base + "/private/secret.html", dead],
                              sitemap=base + "/no-sitemap.xml", delay=0).run())
    assert [i.external_id for i in items] == [base + "/no-sitemap.xml", base + "/index.html",
                                              base + "/private/secret.html", dead]
    assert [_error(i).code for i in items if i.external_id != base + "/index.html"] == [
        "fetch_failed", "robots_disallowed", "fetch_failed"]  # the rest of the source still listed

    def allow(url):
        if url.endswith("/level1.html"):
            raise PermissionError("level1 resolves to a private address")
        return True

    items = {i.external_id: i for i in WebConnector([base + "/index.html"], max_depth=3, delay=0,
                                                    allow_url=allow).run()}
    blocked = _error(items[base + "/level1.html"])
    assert blocked.code == "blocked" and "private address" in blocked.message
    assert base + "/level2.html" not in items  # never fetched, so never followed
    assert not any(path == "/level1.html" for _, path in log)
    for seeds in ([dead], [base + "/missing.html", dead]):
        with pytest.raises(IngestError) as info:
            list(WebConnector(seeds, delay=0).run())
        assert info.value.code == "source_unreachable"
    with pytest.raises(IngestError, match="refused"):
        list(WebConnector([base + "/index.html"], allow_url=lambda url: False).run())


def test_web_is_polite_per_host(serve):
    base, log = serve({"robots.txt": "User-agent: *\nCrawl-delay: 1\n", "a.html": _page("b.html"),
                       "b.html": _page()})
    assert len(_ids(WebConnector([base + "/a.html"], max_depth=1, delay=0, concurrency=4))) == 2
    times = {path: at for at, path in log}
    assert times["/b.html"] - times["/a.html"] >= 0.9  # robots.txt Crawl-delay, not delay=0
    base, log = serve({"a.html": _page("b.html", "c.html"), "b.html": _page(), "c.html": _page()})
    list(WebConnector([base + "/a.html"], max_depth=1, delay=0.3, concurrency=4).run())
    stamps = sorted(at for at, _ in log)  # robots.txt (a 404 here: allowed) counts as a request too
    assert len(stamps) == 4 and all(b - a >= 0.25 for a, b in zip(stamps, stamps[1:], strict=False))


def test_web_validates_settings():
    for kwargs, setting in (({"urls": ["ftp://example.com/"]}, "urls"), ({}, "urls"),
                            ({"urls": ["https://e.com"], "max_depth": -1}, "max_depth"),
                            ({"urls": ["https://e.com"], "concurrency": 0}, "concurrency"),
                            ({"sitemap": "file:///etc/passwd"}, "sitemap")):
        with pytest.raises(ValueError, match=setting):
            WebConnector(**kwargs)


# --- git ------------------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-c", "commit.gpgsign=false", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "repo"
    _write(path, {"README.md": "# Repo", "docs/guide.md": "v1", "docs/old.md": "old", "src/app.py": "x = 1"})
    _git(path.parent, "init", "-q", "-b", "main", str(path))
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "first")
    return path


def test_git_clones_then_syncs_changes(repo, tmp_path):
    connector = GitConnector(str(repo), branch="main", exclude=["src/**"], checkout_dir=tmp_path / "co")
    items = {i.external_id: i for i in connector.run()}
    assert sorted(items) == ["README.md", "docs/guide.md", "docs/old.md"]
    assert items["docs/guide.md"].read() == b"v1"
    assert items["README.md"].metadata["commit"] == _git(repo, "rev-parse", "HEAD")
    _write(repo, {"docs/guide.md": "v2", "docs/new.md": "new"})
    _git(repo, "rm", "-q", "docs/old.md")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "second")
    again = {i.external_id: i for i in GitConnector(repo, exclude="src/**", checkout_dir=tmp_path / "co").run()}
    assert sorted(again) == ["README.md", "docs/guide.md", "docs/new.md"]
    assert again["docs/guide.md"].read() == b"v2"
    assert again["README.md"].metadata["commit"] == _git(repo, "rev-parse", "HEAD")
    assert again["README.md"].metadata["blob_sha"] == items["README.md"].metadata["blob_sha"]
    assert again["docs/guide.md"].metadata["blob_sha"] != items["docs/guide.md"].metadata["blob_sha"]
    with pytest.raises(IngestError) as info:  # the fetch path fails cleanly too
        list(GitConnector(repo, branch="gone", checkout_dir=tmp_path / "co").run())
    assert info.value.code == "source_unreachable" and "gone" in info.value.message


def test_git_unreachable_sources_and_refused_transports(repo, tmp_path):
    for source, branch, says in ((tmp_path / "no-such-repo", None, "does not exist"),
                                 (repo, "no-such-branch", "no-such-branch")):
        with pytest.raises(IngestError) as info:
            list(GitConnector(source, branch=branch, checkout_dir=tmp_path / "fresh").run())
        assert info.value.code == "source_unreachable" and says in info.value.message
        assert not (tmp_path / "fresh").exists()  # a failed clone leaves nothing behind
    for bad in ("ext::sh -c touch% /tmp/pwned", "fd::17", "file:///tmp/repo", "--upload-pack=touch x",
                "relative/path", "ftp://example.com/r.git", "ssh://-oProxyCommand=x/r"):
        with pytest.raises(ValueError, match="url_or_path"):
            GitConnector(bad, checkout_dir=tmp_path / "co")
    for ok in ("https://github.com/o/r.git", "git@github.com:o/r.git", "ssh://git@host/r.git", "/srv/r"):
        GitConnector(ok, checkout_dir=tmp_path / "co")
    with pytest.raises(ValueError, match="branch"):
        GitConnector(repo, branch="--orphan", checkout_dir=tmp_path / "co")
    with pytest.raises(IngestError, match="blocked"):  # the app's outbound guard applies to git URLs too
        list(GitConnector("https://10.0.0.1/r.git", checkout_dir=tmp_path / "co", allow_url=lambda u: False).run())


# --- factory --------------------------------------------------------------------------------------

def test_make_connector(tmp_path, tree):
    assert isinstance(make_connector("directory", {"path": str(tree)}, workdir=tmp_path), DirectoryConnector)
    listing = lambda: []  # noqa: E731
    assert make_connector("file", {}, workdir=tmp_path, uploads=listing).listing is listing
    git = make_connector("git", {"url_or_path": "https://example.com/r.git"}, workdir=tmp_path)
    assert git.checkout_dir == tmp_path / "git"
    guard = lambda url: True  # noqa: E731
    assert make_connector("web", {"urls": ["https://e.com"]}, workdir=tmp_path, allow_url=guard).allow_url is guard
    for type_, config, says in (("directory", {"path": "/x", "recursive": True}, "recursive"),
                                ("file", {"folder": "/etc"}, "folder"), ("directory", {}, "path"),
                                ("web", {"urls": ["https://e.com"], "allow_url": None}, "allow_url"),
                                ("ftp", {}, "ftp")):
        with pytest.raises(ValueError, match=says):
            make_connector(type_, config, workdir=tmp_path)
