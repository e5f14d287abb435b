"""A `magnet ingest` killed with SIGKILL mid-sync: the next command notices at once, and a re-sync converges.

Everything runs as a user would run it: the `magnet` console script in subprocesses, on a fresh data dir,
with the real SQLite database, embedded Chroma and embedding model. Nothing is mocked.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MAGNET = str(Path(sys.executable).parent / "magnet")
FILES = 150

# Run in a fresh interpreter on the data dir: what the stores hold, checked against the documents.
CHECK_STATE = r"""
import json
from sqlalchemy import select
from app import create_app
from app.extensions import db
from app.models import Document, IndexedDocument, KnowledgeIndex, SyncRun
from app.services import indexes

app = create_app()
with app.app_context():
    [index] = db.session.execute(select(KnowledgeIndex)).scalars().all()
    target = indexes.target(index)
    docs = db.session.execute(select(Document)).scalars().all()
    held = {r.document_id: r.chunk_count for r in db.session.execute(select(IndexedDocument)).scalars()}
    chroma_ids = target.vectors.client.get_collection(target.vectors.collection_name).get(include=[])["ids"]
    with db.engine.connect() as conn:
        lexical_ids = [r[0] for r in conn.exec_driver_sql(f"SELECT chunk_id FROM {target.lexical.table}")]
    runs = db.session.execute(select(SyncRun).order_by(SyncRun.created_at)).scalars().all()
    print(json.dumps({
        "documents": len(docs),
        "statuses": sorted({d.status for d in docs}),
        "chunk_sum": sum(d.chunk_count for d in docs),
        "held": held,
        "expected_ids": sorted(f"{d.id}:{n}" for d in docs for n in range(d.chunk_count)),
        "chroma_ids": sorted(chroma_ids),
        "lexical_ids": sorted(lexical_ids),
        "chroma_count": target.vectors.count(),
        "lexical_count": target.lexical.count(),
        "runs": [{"id": r.id, "status": r.status, "message": r.message, "added": r.added, "updated": r.updated,
                  "unchanged": r.unchanged, "failed": r.failed, "deleted": r.deleted} for r in runs],
    }))
"""


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    # The test's folder is the source root, as an administrator would set it for their documents.
    env.update(MAGNET_DATA_DIR=str(data_dir), MAGNET_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               MAGNET_SOURCE_ROOTS=str(data_dir.parent))
    return env


def magnet(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([MAGNET, *args], env=_env(data_dir), capture_output=True, text=True, timeout=timeout)


def _active_run(db_path: Path):
    """(id, status, documents_done) of the newest sync run, read straight from the SQLite file."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(
                "SELECT id, status, documents_done FROM sync_runs ORDER BY created_at DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # the file or its tables do not exist yet
        return None


def _indexed(db_path: Path) -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM indexed_documents").fetchone()[0]


def _source_id(db_path: Path) -> str:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT id FROM knowledge_sources").fetchone()[0]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(FILES):
        paragraphs = [
            f"Note {i}, part {p}. The committee discussed item {i * 13 + p} of the budget for site {i % 17}, "
            f"agreed to revisit the freight contract number {i * 7 + p}, and asked the treasurer to report "
            f"on the maintenance backlog of building {p} before the end of quarter {i % 4 + 1}. "
            * 3
            for p in range(6)
        ]
        (folder / f"note-{i:03}.txt").write_text("\n\n".join(paragraphs) + "\n")
    return folder


def _kill_mid_sync(data_dir: Path, corpus: Path, look_while_alive: bool = True) -> str:
    """Start `magnet ingest`, SIGKILL it once the sync has made progress, return the killed run's id."""
    db_path = data_dir / "magnet.db"
    proc = subprocess.Popen([MAGNET, "ingest", str(corpus)], env=_env(data_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        row = None
        while time.monotonic() < deadline and proc.poll() is None:
            row = _active_run(db_path)
            if row and row[1] == "running" and row[2] > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "magnet ingest ended before it could be killed"
        assert row and row[1] == "running" and 0 < row[2] < FILES, row
        if look_while_alive:
            # Another process looks while the sync is alive: a live run must never be taken for a dead one.
            alive = magnet(data_dir, "sources", "status", _source_id(db_path))
            assert alive.returncode == 0, alive.stderr
            assert "interrupted" not in alive.stdout and _active_run(db_path)[1] == "running", alive.stdout
        # Kill it once some documents are durably indexed, so the crash leaves a half-synced source.
        while time.monotonic() < deadline and proc.poll() is None and not _indexed(db_path):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed = _active_run(db_path)
    assert killed[1] == "running" and killed[2] < FILES, killed  # really killed mid-sync
    assert (data_dir / "locks" / f"sync-{killed[0]}.lock").exists()  # its lease, now held by nobody
    return killed[0]


def _state(data_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHECK_STATE], env=_env(data_dir), capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_converged(state: dict, killed_id: str) -> None:
    assert state["documents"] == FILES and state["statuses"] == ["indexed"]
    assert len(state["held"]) == FILES
    assert state["chunk_sum"] == sum(state["held"].values()) > FILES
    # No duplicates and no orphans: each store holds exactly the chunks the documents say they have.
    assert state["chroma_ids"] == state["expected_ids"] == state["lexical_ids"]
    assert state["chroma_count"] == state["chunk_sum"] == state["lexical_count"]
    runs = {r["id"]: r for r in state["runs"]}
    killed = runs[killed_id]
    assert killed["status"] == "failed" and killed["message"].startswith("Interrupted")
    final = state["runs"][-1]
    assert final["status"] == "completed" and final["failed"] == 0 and final["deleted"] == 0
    assert final["added"] + final["updated"] + final["unchanged"] == FILES
    assert final["unchanged"] > 0  # the killed run's finished work was kept, not redone
    assert not any(r["status"] in ("queued", "running") for r in state["runs"])


def test_killed_ingest_is_seen_by_status_and_a_new_ingest_converges(tmp_path, corpus):
    data_dir = tmp_path / "data"
    killed_id = _kill_mid_sync(data_dir, corpus)
    source_id = _source_id(data_dir / "magnet.db")

    status = magnet(data_dir, "sources", "status", source_id)
    assert status.returncode == 0, status.stderr
    assert f"sync {killed_id} was interrupted" in status.stdout
    assert f"sync {killed_id}: failed" in status.stdout and "Interrupted" in status.stdout
    assert "status=error" in status.stdout and "last sync=failed" in status.stdout
    assert not (data_dir / "locks" / f"sync-{killed_id}.lock").exists()

    again = magnet(data_dir, "ingest", str(corpus))
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": completed" in again.stdout
    state = _state(data_dir)
    _assert_converged(state, killed_id)

    third = magnet(data_dir, "ingest", str(corpus))
    assert third.returncode == 0 and f"unchanged={FILES}" in third.stdout and "added=0" in third.stdout


def test_a_new_ingest_alone_recovers_a_killed_one(tmp_path, corpus):
    data_dir = tmp_path / "data"
    killed_id = _kill_mid_sync(data_dir, corpus, look_while_alive=False)

    again = magnet(data_dir, "ingest", str(corpus))  # no status first: starting the sync notices the dead run
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" not in again.stdout and ": completed" in again.stdout
    _assert_converged(_state(data_dir), killed_id)
