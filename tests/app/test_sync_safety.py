"""A sync never deletes documents because the node running it cannot see the source: a folder that
vanished or lists nothing fails the run with the reason and keeps every document searchable; a new file
source with nothing uploaded yet is an empty, completed sync."""
import shutil

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def _sync(api, source_id):
    res = api.post(f"/api/knowledge-sources/{source_id}/sync")
    assert res.status_code == 202, res.json
    return wait_for(lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{res.json['data']['id']}").json["data"],
                    lambda run: run["status"] not in ("queued", "running"))


def _documents(api, source_id):
    data = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=100").json["data"]
    return {d["name"]: d for d in data}


def _ask(api, tool):
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "How long do refunds take?"})
    assert res.status_code == 200, res.json
    return res.json["data"]["results"]


@pytest.mark.parametrize("how", ["vanished", "emptied"])
def test_a_folder_this_node_cannot_see_fails_the_sync_and_deletes_nothing(api, worker, synced, kb_tool, tmp_path, how):
    sid = synced["id"]
    before = _documents(api, sid)
    assert len(before) == 3 and "fourteen days" in _ask(api, kb_tool)[0]["content"]
    folder = tmp_path / "kb"
    shutil.rmtree(folder)
    if how == "emptied":
        folder.mkdir()  # what an unmounted volume looks like: the mount point, empty

    run = _sync(api, sid)
    assert run["status"] == "failed"
    assert f"{tmp_path.name}/kb" in run["message"] and str(tmp_path) not in run["message"]  # relative to its root
    if how == "emptied":
        assert "nothing was deleted" in run["message"]
    assert run["counts"]["deleted"] == 0
    source = api.get(f"/api/knowledge-sources/{sid}").json["data"]
    assert source["status"] == "error" and source["last_sync_status"] == "failed"
    after = _documents(api, sid)
    assert {n: d["id"] for n, d in after.items()} == {n: d["id"] for n, d in before.items()}
    assert all(d["status"] == "indexed" for d in after.values())
    assert "fourteen days" in _ask(api, kb_tool)[0]["content"]  # still searchable

    # The folder back (mounted again): the next sync finds everything unchanged.
    folder.mkdir(exist_ok=True)
    from tests.app.conftest import DOCS

    for name, text in DOCS.items():
        (folder / name).write_text(text)
    run = _sync(api, sid)
    assert run["status"] == "completed"
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 3, "deleted": 0, "failed": 0}


def test_a_folder_emptied_of_some_files_still_deletes_those(api, worker, synced, tmp_path):
    """The guard is about a listing with nothing at all; files really removed are still removed."""
    (tmp_path / "kb" / "faq.txt").unlink()
    run = _sync(api, synced["id"])
    assert run["status"] == "completed" and run["counts"]["deleted"] == 1
    assert set(_documents(api, synced["id"])) == {"shipping.md", "security.md"}


def test_a_new_file_source_with_nothing_uploaded_syncs_to_nothing(api, worker):
    source = api.post("/api/knowledge-sources", json={"name": "empty uploads", "type": "file"}).json["data"]
    run = _sync(api, source["id"])
    assert run["status"] == "completed", run
    assert run["message"] is None and run["errors"] == []
    assert run["counts"] == {"added": 0, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert run["progress"] == {"done": 0, "total": 0}
    assert api.get(f"/api/knowledge-sources/{source['id']}").json["data"]["status"] == "idle"
