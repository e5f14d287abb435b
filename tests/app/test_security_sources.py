"""Attacks on source roots, performed for real: each test tries to read what a source must never read and
fails if it succeeds (issue: an operator indexed the data dir and searched out the bootstrap admin key)."""
import os

import pytest

from tests.app.test_sync_api import _stores, sync
from tests.conftest import ApiClient

SECRET = "magnet_ak_THIS-IS-THE-BOOTSTRAP-KEY-0123456789"


@pytest.fixture
def data_dir(app):
    return app.extensions["magnet.config"].data_dir


@pytest.fixture
def planted_key(data_dir):
    """A stand-in for the bootstrap key file, where `magnet serve` keeps it."""
    path = data_dir / "admin-key.txt"
    existed = path.exists()
    if not existed:
        path.write_text(SECRET + "\n")
    yield path.read_text().strip()
    if not existed:
        path.unlink()


@pytest.fixture
def operator(client, make_key):
    return ApiClient(client, make_key("operator"))


def _create(api, path, *, type_="directory", **config):
    key = "path" if type_ == "directory" else "url_or_path"
    return api.post("/api/knowledge-sources", json={
        "name": f"attack {len(str(path))} {type_}", "type": type_, "configuration": {key: str(path), **config}})


def test_an_operator_cannot_create_or_change_a_directory_source(api, operator, tmp_path, data_dir):
    (tmp_path / "docs").mkdir()
    for target in (data_dir, tmp_path / "docs"):
        res = _create(operator, target, include=["*.txt"])
        assert res.status_code == 403, res.json
        assert res.json["error"]["code"] == "insufficient_role"
        assert res.json["error"]["details"]["required_role"] == "admin"
    res = _create(operator, tmp_path / "docs", type_="git")  # a local git path reads the server too
    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role"

    made = _create(api, tmp_path / "docs").json["data"]  # the admin's source: the operator may not repoint it
    moved = operator.put(f"/api/knowledge-sources/{made['id']}", json={"configuration": {"path": str(data_dir)}})
    assert moved.status_code == 403
    renamed = operator.put(f"/api/knowledge-sources/{made['id']}", json={"name": "renamed"})
    assert renamed.status_code == 403
    assert api.get(f"/api/knowledge-sources/{made['id']}").json["data"]["configuration"]["path"] == str(tmp_path / "docs")
    # Operators keep what reads no local folder: uploads, web pages and remote git.
    assert operator.post("/api/knowledge-sources", json={"name": "up", "type": "file"}).status_code == 201
    assert operator.post("/api/knowledge-sources", json={
        "name": "site", "type": "web", "configuration": {"urls": ["https://example.com/"]}}).status_code == 201
    assert operator.post("/api/knowledge-sources", json={
        "name": "remote", "type": "git", "configuration": {"url_or_path": "https://example.com/r.git"}}).status_code == 201


@pytest.mark.parametrize("where", ["data dir", "inside the data dir", "dot-dot into the data dir",
                                   "folder holding the data dir", "outside every root", "relative"])
def test_even_an_admin_cannot_point_a_source_at_the_data_dir_or_outside_the_roots(api, data_dir, tmp_path,
                                                                                   planted_key, where):
    (data_dir / "sub").mkdir(exist_ok=True)
    target = {
        "data dir": data_dir,
        "inside the data dir": data_dir / "sub",
        "dot-dot into the data dir": f"{tmp_path}/../../{data_dir.parent.name}/{data_dir.name}",
        "folder holding the data dir": data_dir.parent,
        "outside every root": "/etc",
        "relative": "docs",
    }[where]
    res = _create(api, target, include=["*.txt"])
    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] in ("path_not_allowed", "validation_failed")
    assert str(data_dir) not in res.get_data(as_text=True)  # the answer does not show where the data lives
    git = _create(api, target, type_="git")
    assert git.status_code == 422, git.json
    assert api.get("/api/knowledge-sources").json["pagination"]["total"] == 0  # nothing half-made


def test_a_symlink_out_of_the_root_is_listed_with_its_reason_and_never_read(app, api, worker, tmp_path,
                                                                              data_dir, planted_key):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.txt").write_text("The staff handbook explains the holiday policy in detail.")
    os.symlink(data_dir / "admin-key.txt", docs / "key.txt")  # a file link into the data dir
    os.symlink(data_dir, docs / "runtime")  # a folder link into the data dir
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside-the-root secret text")
    os.symlink(outside / "secret.txt", docs / "elsewhere.txt")
    source = api.post("/api/knowledge-sources", json={
        "name": "linked", "type": "directory",
        "configuration": {"path": str(docs), "follow_symlinks": True}}).json["data"]
    run = sync(api, source["id"])

    assert run["counts"]["added"] == 1
    errors = {e["external_id"]: e for e in run["errors"]}
    for name in ("key.txt", "runtime", "elsewhere.txt"):
        assert errors[name]["code"] == "outside_root" and errors[name]["skipped"], errors
        assert "outside the source root" in errors[name]["message"]
    body = str(run)
    assert planted_key not in body and str(data_dir) not in body and str(outside) not in body
    stores = _stores(source["id"])
    assert not stores.lexical.query(planted_key, 5)
    assert not stores.lexical.query("outside-the-root secret", 5)
    assert stores.lexical.query("holiday policy", 5)


def test_a_source_whose_folder_is_swapped_for_a_link_out_fails_and_reads_nothing(app, api, worker, tmp_path,
                                                                                  data_dir, planted_key):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Ordinary content about invoices.")
    source = _create(api, docs).json["data"]
    assert sync(api, source["id"])["counts"]["added"] == 1
    os.rename(docs, tmp_path / "moved")
    os.symlink(data_dir, docs)  # after creation: the folder now leads into the data dir
    run = sync(api, source["id"])
    assert run["status"] == "failed"
    assert "data folder is never read" in run["message"] and str(data_dir) not in run["message"]
    assert not _stores(source["id"]).lexical.query(planted_key, 5)
    docs_after = api.get(f"/api/knowledge-sources/{source['id']}/documents").json["data"]
    assert [d["external_id"] for d in docs_after] == ["a.txt"]  # a refused run deletes nothing


def test_roots_are_checked_again_at_sync_when_an_admin_narrows_them(app, api, worker, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Content that was fine when the source was made.")
    source = _create(api, docs).json["data"]
    config = app.extensions["magnet.config"]
    before = config.source_roots
    config.source_roots = [tmp_path / "elsewhere"]
    try:
        run = sync(api, source["id"])
    finally:
        config.source_roots = before
    assert run["status"] == "failed" and "outside the source roots" in run["message"]
    assert str(tmp_path) not in run["message"]
