"""Liveness in the database, which every node and worker shares: no lock file on one machine's disk decides.

- A running sync or evaluation run writes `heartbeat_at` every few seconds from a thread of its own
  (`RunHeartbeat`), so a long document or a slow case never looks like a dead worker. A run whose
  heartbeat is older than MAGNET_RUN_STALE_SECONDS is reaped by the periodic tick (see app.jobs).
- Every job consumer writes its own row in `worker_heartbeats` (`WorkerBeat`); /api/health counts the
  rows beaten recently.
- A periodic tick runs once per minute across all workers: the first to move the claim row's period
  forward with a conditional UPDATE runs it, the others see zero rows changed (`claim_period`).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import PeriodicClaim, WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)
WORKER_BEAT_SECONDS = 10.0
# A worker that has not beaten for this long is not counted as alive (three missed beats).
WORKER_ALIVE_SECONDS = 3 * WORKER_BEAT_SECONDS
# Rows of workers gone for this long are deleted by the tick, so the table does not grow forever.
WORKER_FORGOTTEN_AFTER = timedelta(days=1)


def stale_seconds() -> float:
    return current_app.extensions["magnet.config"].run_stale_seconds


def stale_before(now: datetime | None = None) -> datetime:
    """Runs whose heartbeat is older than this are presumed dead."""
    return (now or utcnow()) - timedelta(seconds=stale_seconds())


def beat_interval(stale: float) -> float:
    """How often a run beats: several times within the stale limit, so one slow write never reaps it."""
    return max(0.5, min(30.0, stale / 4))


class RunHeartbeat:
    """While a run executes: a thread writes its heartbeat_at, on its own connection, every few seconds.

    The write is conditional on the run still running. If it is not (the reaper failed it while this
    worker was frozen, say), `lost` is set and the run should stop without writing its outcome.
    """

    def __init__(self, model, run_id: str, running_status: str = "running"):
        self.table = model.__table__
        self.run_id = run_id
        self.running_status = running_status
        self.engine = db.engine
        self.interval = beat_interval(stale_seconds())
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.engine.begin() as conn:
                    changed = conn.execute(
                        self.table.update()
                        .where(self.table.c.id == self.run_id, self.table.c.status == self.running_status)
                        .values(heartbeat_at=utcnow())
                    ).rowcount
            except Exception:  # the database is briefly away: beat again next time; the reaper is patient
                log.warning("run %s: heartbeat not written", self.run_id, exc_info=True)
                continue
            if not changed:
                self.lost.set()
                return


class WorkerBeat:
    """A job consumer's own heartbeat row, written every WORKER_BEAT_SECONDS until stop()."""

    def __init__(self, app):
        self.app = app
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker-heartbeat", daemon=True)

    def start(self) -> WorkerBeat:
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with self.app.app_context():
                db.session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.id))
                db.session.commit()
        except Exception:  # going away anyway: the row simply stops counting once it is old
            log.warning("worker heartbeat row %s not removed", self.id, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(WORKER_BEAT_SECONDS):
            self._beat()

    def _beat(self) -> None:
        try:
            with self.app.app_context():
                now = utcnow()
                changed = db.session.execute(
                    update(WorkerHeartbeat).where(WorkerHeartbeat.id == self.id).values(heartbeat_at=now)
                ).rowcount
                if not changed:
                    db.session.add(WorkerHeartbeat(id=self.id, hostname=socket.gethostname()[:255],
                                                   pid=os.getpid(), started_at=now, heartbeat_at=now))
                db.session.commit()
        except Exception:
            log.warning("worker heartbeat not written", exc_info=True)


def workers_alive(now: datetime | None = None) -> dict:
    """How many job consumers beat recently, and when the latest beat was (None if never)."""
    now = now or utcnow()
    rows = db.session.execute(select(WorkerHeartbeat.heartbeat_at)).scalars().all()
    alive = [beat for beat in rows if beat >= now - timedelta(seconds=WORKER_ALIVE_SECONDS)]
    return {"alive": len(alive), "last_heartbeat": max(rows) if rows else None}


def forget_gone_workers() -> int:
    cutoff = utcnow() - WORKER_FORGOTTEN_AFTER
    removed = db.session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at < cutoff)).rowcount
    db.session.commit()
    return removed


def claim_period(name: str, claimant: str, now: datetime | None = None) -> bool:
    """True for exactly one caller per task and UTC minute, whichever process or machine it runs on."""
    now = now or utcnow()
    period = now.strftime("%Y-%m-%dT%H:%M")  # sorts as it counts
    claimed = db.session.execute(
        update(PeriodicClaim).where(PeriodicClaim.name == name, PeriodicClaim.period < period)
        .values(period=period, claimed_by=claimant[:200], claimed_at=now)
    ).rowcount
    db.session.commit()
    if claimed:
        return True
    if db.session.get(PeriodicClaim, name) is not None:
        return False  # this period (or a later one) is someone else's
    try:  # the first tick ever: whoever inserts the row has the period
        db.session.execute(insert(PeriodicClaim).values(name=name, period=period, claimed_by=claimant[:200],
                                                        claimed_at=now))
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
        return False
