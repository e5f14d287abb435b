"""Scale-out that loses nothing: two web nodes, two workers, PostgreSQL, Redis and a Chroma server, all real
processes, and the faults users meet: a worker killed mid-sync, Chroma stopped and frozen, Redis stopped.

Run by .ci/run after the PostgreSQL pass (`MAGNET_TEST_CLUSTER=1 pytest -m cluster tests/cluster`). Timing
is asserted only as generous bounds that prove an answer did not hang on a frozen service.
"""
import io
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.cluster.conftest import REPO, STALE_SECONDS, TIMEOUT_SECONDS, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]
NO_HANG = 3 * TIMEOUT_SECONDS + 5  # seconds: far below "forever", far above a healthy answer
FILES = 60

# Run in a fresh interpreter with the cluster's settings: what PostgreSQL and the Chroma server hold.
CHECK_STATE = r"""
import json, sys
from sqlalchemy import select
from app import create_app
from app.extensions import db
from app.models import Document, KnowledgeSource
from app.services import indexes

app = create_app()
out = {}
with app.app_context():
    for source_id in sys.argv[1:]:
        [index] = indexes.indexes_of(db.session.get(KnowledgeSource, source_id))
        target = indexes.target(index)
        docs = db.session.execute(select(Document).where(Document.source_id == source_id)).scalars().all()
        collection = target.vectors.client.get_collection(target.vectors.collection_name)
        out[source_id] = {
            "documents": len(docs),
            "names": sorted(d.name for d in docs),
            "statuses": sorted({d.status for d in docs}),
            "chunks": sum(d.chunk_count for d in docs),
            "expected_ids": sorted(f"{d.id}:{n}" for d in docs for n in range(d.chunk_count)),
            "vector_ids": sorted(collection.get(include=[])["ids"]),
        }
print(json.dumps(out))
"""


def state(cluster, *source_ids) -> dict:
    done = subprocess.run([sys.executable, "-c", CHECK_STATE, *source_ids], env=cluster.env_for("check"),
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_source(node, name, **body) -> str:
    res = node.post("/api/knowledge-sources", json={"name": name, **body})
    assert res.status_code == 201, res.text
    return res.json()["data"]["id"]


def start_sync(node, source_id) -> str:
    res = node.post(f"/api/knowledge-sources/{source_id}/sync")
    assert res.status_code == 202, res.text
    return res.json()["data"]["id"]


def run_of(node, source_id, run_id) -> dict:
    return node.get(f"/api/knowledge-sources/{source_id}/syncs/{run_id}").json()["data"]


def ended(node, source_id, run_id, timeout=300) -> dict:
    return wait_until(lambda: (lambda r: r if r["status"] not in ("queued", "running") else None)(
        run_of(node, source_id, run_id)), f"sync {run_id} to end", timeout=timeout)


def retrieval_tool(node, source_id, name) -> str:
    res = node.post("/api/retrieval-tools", json={"name": name, "knowledge_source_id": source_id, "top_k": 3})
    assert res.status_code == 202, res.text
    return res.json()["data"]["id"]


def search(node, tool_id, query, timeout=60):
    return node.post(f"/api/retrieval-tools/{tool_id}/search", json={"query": query}, timeout=timeout)


def write_corpus(folder, files, paragraphs=4):
    folder.mkdir()
    for i in range(files):
        text = "\n\n".join(
            f"Note {i}, part {p}. The committee discussed item {i * 13 + p} of the budget for site {i % 17}, "
            f"agreed to revisit the freight contract number {i * 7 + p}, and asked the treasurer to report "
            f"on the maintenance backlog of building {p} before the end of quarter {i % 4 + 1}. " * 2
            for p in range(paragraphs))
        (folder / f"note-{i:03}.txt").write_text(text + "\n")
    return folder


@pytest.fixture(scope="module")
def searchable(cluster, tmp_path_factory):
    """A small synced directory source and a retrieval tool over it, for the fault tests."""
    a, b = cluster.nodes
    folder = tmp_path_factory.mktemp("small") / "docs"
    folder.mkdir()
    (folder / "refunds.md").write_text("# Refunds\n\nRefunds are processed within fourteen days.\n")
    (folder / "shipping.md").write_text("# Shipping\n\nExpress delivery costs twelve euros.\n")
    source_id = make_source(a, "small", type="directory", configuration={"path": str(folder)})
    assert ended(b, source_id, start_sync(a, source_id))["status"] == "completed"
    tool_id = retrieval_tool(a, source_id, "small-finder")
    wait_until(lambda: search(b, tool_id, "refunds").status_code == 200, "the retrieval tool to answer")
    return source_id, tool_id


def test_an_upload_to_node_a_is_synced_by_a_worker_and_searchable_from_node_b(cluster):
    # Needs uploads kept in the database (not node A's data dir), so that a worker on another machine
    # can read them.
    a, b = cluster.nodes
    source_id = make_source(a, "uploads", type="file", configuration={})
    body = b"The lighthouse keeper logs the fog horn maintenance every Thursday at dawn.\n"
    res = a.post(f"/api/knowledge-sources/{source_id}/documents",
                 files={"files": ("lighthouse.txt", io.BytesIO(body), "text/plain")})
    assert res.status_code == 202, res.text
    run = ended(b, source_id, res.json()["data"]["sync"]["id"])
    assert run["status"] == "completed", run  # node A runs no jobs (--workers 2): a worker did it
    tool_id = retrieval_tool(b, source_id, "uploads-finder")
    hits = wait_until(lambda: (lambda r: r.json()["data"]["results"] if r.status_code == 200 else None)(
        search(b, tool_id, "fog horn maintenance")), "a search from node B")
    assert "lighthouse keeper" in hits[0]["content"]


def test_a_worker_killed_mid_sync_is_reaped_and_a_resync_converges_like_a_clean_sync(cluster, tmp_path):
    a, b = cluster.nodes
    corpus = write_corpus(tmp_path / "notes", FILES)
    crashed = make_source(a, "crashed", type="directory", configuration={"path": str(corpus)})
    clean = make_source(a, "clean", type="directory", configuration={"path": str(corpus)})

    run_id = start_sync(a, crashed)
    running = wait_until(lambda: (lambda r: r if r["status"] == "running" and r["progress"]["done"] > 2 else None)(
        run_of(b, crashed, run_id)), "the sync to make progress", timeout=240)
    assert running["progress"]["done"] < FILES, "the sync ended before it could be killed"
    # The worker running it holds the run's lease in its own data dir.
    [victim] = [w for w in cluster.workers if (cluster.tmp / w.name / "locks" / f"sync-{run_id}.lock").exists()]
    victim.stop(signal.SIGKILL)
    cluster.workers.remove(victim)

    # From another node, nothing tells the run is dead but its heartbeat: the other worker's tick reaps it.
    reaped = wait_until(lambda: (lambda r: r if r["status"] == "failed" else None)(run_of(b, crashed, run_id)),
                        "the lost run to be reaped", timeout=STALE_SECONDS + 90)
    assert "worker lost" in reaped["message"]
    assert reaped["progress"]["done"] < FILES

    resync = start_sync(b, crashed)  # no 409: the reaped run no longer blocks
    assert ended(a, crashed, resync)["status"] == "completed"
    assert ended(a, clean, start_sync(a, clean))["status"] == "completed"
    cluster.workers.append(cluster.start_worker(f"{victim.name}-again"))

    got = state(cluster, crashed, clean)
    after_crash, reference = got[crashed], got[clean]
    assert after_crash["documents"] == reference["documents"] == FILES
    assert after_crash["statuses"] == reference["statuses"] == ["indexed"]
    assert after_crash["names"] == reference["names"]
    assert after_crash["chunks"] == reference["chunks"] > FILES
    # Exactly the chunks the documents say they have, in the Chroma server: no duplicate, no orphan.
    assert after_crash["vector_ids"] == after_crash["expected_ids"]
    assert reference["vector_ids"] == reference["expected_ids"]


def _answers_503_soon(node, tool_id, component):
    started = time.monotonic()
    res = search(node, tool_id, "refunds", timeout=120)
    elapsed = time.monotonic() - started
    assert elapsed < NO_HANG, f"the answer took {elapsed:.1f} s"
    assert res.status_code == 503, res.text
    error = res.json()["error"]
    assert res.json()["success"] is False and error["details"]["component"] == component
    return error


def test_chroma_stopped_or_frozen_answers_503_and_recovers_without_restarts(cluster, searchable):
    a, b = cluster.nodes
    _, tool_id = searchable
    for node in (a, b):  # each node's processes load the embedding model now, not while Chroma is frozen
        for _ in range(10):
            assert search(node, tool_id, "refunds").status_code == 200

    cluster.chroma.stop()  # SIGTERM
    error = _answers_503_soon(b, tool_id, "vector_store")
    assert error["code"] == "service_unavailable"
    health = a.get("/api/health", timeout=60)
    assert health.status_code == 503 and health.json()["data"]["vector_db"]["status"] == "down"
    cluster.chroma.start()
    wait_until(lambda: search(b, tool_id, "refunds").status_code == 200, "search after Chroma restarted")

    cluster.chroma.send(signal.SIGSTOP)
    try:
        _answers_503_soon(b, tool_id, "vector_store")
        _answers_503_soon(a, tool_id, "vector_store")
        started = time.monotonic()
        health = b.get("/api/health", timeout=60)
        assert time.monotonic() - started < NO_HANG
        assert health.status_code == 503 and health.json()["data"]["vector_db"]["status"] == "down"
    finally:
        cluster.chroma.send(signal.SIGCONT)
    wait_until(lambda: search(b, tool_id, "refunds").status_code == 200, "search after Chroma thawed")
    wait_until(lambda: a.get("/api/health").status_code == 200, "health after Chroma thawed")


def test_redis_stopped_answers_503_queue_unavailable_leaves_no_run_and_recovers(cluster, searchable):
    a, b = cluster.nodes
    source_id, _ = searchable

    def runs():
        return b.get(f"/api/knowledge-sources/{source_id}/syncs").json()["pagination"]["total"]

    before = runs()
    cluster.redis.stop()
    started = time.monotonic()
    res = a.post(f"/api/knowledge-sources/{source_id}/sync", timeout=120)
    assert time.monotonic() - started < NO_HANG
    assert res.status_code == 503, res.text
    assert res.json()["error"]["code"] == "queue_unavailable"
    assert res.json()["error"]["details"]["component"] == "job_queue"
    assert runs() == before  # no orphan queued run
    health = b.get("/api/health", timeout=60)
    assert health.status_code == 503 and health.json()["data"]["job_queue"]["status"] == "down"

    cluster.redis.start()  # an empty Redis: nothing was persisted, nothing was lost either
    wait_until(lambda: a.get("/api/health").status_code == 200, "health after Redis restarted")
    run = ended(b, source_id, start_sync(a, source_id))  # no 409, and the workers reconnected by themselves
    assert run["status"] == "completed"
    assert runs() == before + 1
