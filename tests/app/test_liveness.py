"""Run liveness lives in the database: heartbeats from a thread, the reaper, one tick per minute, worker rows.

Real database (SQLite, and PostgreSQL in the postgres pass), real threads; nothing mocked. A worker that
died is played by a run left 'running' with an old heartbeat and no process behind it, which is exactly
what a `kill -9` leaves (tests/cluster kills real workers).
"""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Evaluation,
    EvaluationRun,
    KnowledgeSource,
    PeriodicClaim,
    SyncRun,
    WorkerHeartbeat,
    utcnow,
)
from app.services import liveness, periodic, sync, sync_recovery
from tests.conftest import wait_for


@pytest.fixture
def stale_seconds(app, monkeypatch):
    """A short stale limit, as MAGNET_RUN_STALE_SECONDS would set it."""
    monkeypatch.setattr(app.extensions["magnet.config"], "run_stale_seconds", 2.0)
    return 2.0


@pytest.fixture
def source(app):
    found = KnowledgeSource(name="liveness", type="directory", configuration={"path": "/nonexistent"})
    db.session.add(found)
    db.session.commit()
    return found


def _running_sync(source, heartbeat_age: float) -> str:
    run = SyncRun(source_id=source.id, status="running", started_at=utcnow(),
                  heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age))
    db.session.add(run)
    source.status = "syncing"
    db.session.commit()
    return run.id


def _fresh(model, run_id):
    db.session.expire_all()
    return db.session.get(model, run_id)


def test_a_running_run_beats_from_its_own_thread_and_notices_when_it_was_reaped(source, stale_seconds):
    run_id = _running_sync(source, heartbeat_age=60)
    before = _fresh(SyncRun, run_id).heartbeat_at
    with liveness.RunHeartbeat(SyncRun, run_id) as heartbeat:
        beaten = wait_for(lambda: _fresh(SyncRun, run_id).heartbeat_at, lambda at: at > before, timeout=10)
        assert beaten > before and not heartbeat.lost.is_set()
        # The reaper (or anyone) ends the run while this worker still runs it: the worker is told.
        db.session.get(SyncRun, run_id).status = "failed"
        db.session.commit()
        assert heartbeat.lost.wait(timeout=10)


def test_the_tick_reaps_a_sync_whose_heartbeat_is_stale_and_the_next_sync_proceeds(source, stale_seconds, worker):
    lost = _running_sync(source, heartbeat_age=30)
    db.session.execute(PeriodicClaim.__table__.delete())
    db.session.commit()

    assert periodic.tick() is True
    run = _fresh(SyncRun, lost)
    assert run.status == "failed" and "worker lost" in run.message and run.finished_at is not None
    assert db.session.get(KnowledgeSource, source.id).last_sync_status == "failed"
    again = sync.start_sync(source.id)  # no 409: the lost run no longer blocks
    ended = wait_for(lambda: _fresh(SyncRun, again.id), lambda r: r.status not in ("queued", "running"))
    assert ended.status == "failed" and "worker lost" not in (ended.message or "")  # its folder is missing


def test_a_sync_with_a_recent_heartbeat_is_left_running(source, stale_seconds):
    alive = _running_sync(source, heartbeat_age=0)
    assert sync_recovery.fail_dead_runs() == []
    assert _fresh(SyncRun, alive).status == "running"


def test_a_lost_evaluation_run_is_queued_again_to_resume(app, stale_seconds):
    evaluation = Evaluation(name="lost", type="retrieval_tool", target_id="ret_x", metrics=["mrr"])
    db.session.add(evaluation)
    db.session.commit()
    run = EvaluationRun(evaluation_id=evaluation.id, status="running", cases_total=3,
                        heartbeat_at=utcnow() - timedelta(seconds=30))
    db.session.add(run)
    db.session.commit()

    reaped = periodic.reap_lost_runs()
    assert reaped["resumed_evaluations"] == [run.id]
    assert _fresh(EvaluationRun, run.id).status == "queued"


def test_the_tick_runs_once_per_minute_whoever_asks(app):
    db.session.execute(PeriodicClaim.__table__.delete())
    db.session.commit()
    minute = utcnow().replace(second=5, microsecond=0)
    winners = []
    lock = threading.Lock()

    def worker(name):
        with app.app_context():
            if liveness.claim_period("test-tick", name, now=minute):
                with lock:
                    winners.append(name)
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(f"worker-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(winners) == 1
    assert not liveness.claim_period("test-tick", "late", now=minute + timedelta(seconds=50))  # same minute
    assert liveness.claim_period("test-tick", "next", now=minute + timedelta(minutes=1))
    assert db.session.get(PeriodicClaim, "test-tick").claimed_by == "next"


def test_workers_write_their_own_heartbeat_row_and_remove_it_when_they_stop(app):
    beat = liveness.WorkerBeat(app).start()
    try:
        row = db.session.get(WorkerHeartbeat, beat.id)
        assert row is not None and row.pid > 0
        assert liveness.workers_alive()["alive"] >= 1
    finally:
        beat.stop()
    db.session.expire_all()
    assert db.session.execute(select(WorkerHeartbeat).where(WorkerHeartbeat.id == beat.id)).first() is None


def test_a_worker_silent_for_long_is_not_counted_alive(app):
    db.session.execute(WorkerHeartbeat.__table__.delete())
    old = utcnow() - timedelta(seconds=liveness.WORKER_ALIVE_SECONDS + 5)
    db.session.add(WorkerHeartbeat(id="gone:1:x", hostname="gone", pid=1, started_at=old, heartbeat_at=old))
    db.session.commit()
    seen = liveness.workers_alive()
    assert seen["alive"] == 0 and seen["last_heartbeat"] == old
