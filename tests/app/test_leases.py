"""Leases (app.services.leases): one holder at a time, even when a lock file is unlinked under a newcomer.

Other processes are played by other Lease objects and by files opened and flocked by hand: flock locks
belong to an open file, so two opens conflict within one process as they would between two.
"""
import fcntl
import os
import uuid
from types import SimpleNamespace

import pytest

from app.services import leases
from app.services.leases import Lease, abandoned_lease, lease_path


@pytest.fixture
def run_id(app):
    return f"run_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def between_open_and_lock(monkeypatch):
    """between_open_and_lock(action): the next flock taken in app.services.leases first runs action(), as
    if other processes ran after that lease opened its file and before it locked it."""
    pending = []

    def flock(fd, operation):
        while pending:
            pending.pop(0)()  # popped first: flocks taken inside the action run as usual
        return fcntl.flock(fd, operation)

    monkeypatch.setattr(leases, "fcntl", SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB))
    return pending.append


def _is_the_file_at(fd, path):
    return os.fstat(fd).st_ino == os.stat(path).st_ino


def test_one_holder_at_a_time(run_id):
    first, second = Lease("sync", run_id), Lease("sync", run_id)
    assert first.acquire()
    assert not second.acquire() and second.fd is None
    first.release()
    assert not first.path.exists()  # a finished run leaves no lock file to look abandoned
    assert second.acquire()
    second.release()


def test_a_file_unlinked_before_it_was_locked_is_not_the_lease(run_id, between_open_and_lock):
    holder, late, newcomer = Lease("turn", run_id), Lease("turn", run_id), Lease("turn", run_id)
    assert holder.acquire()

    def meanwhile():
        holder.release()  # unlinks the file `late` has open, then lets go of its lock
        assert newcomer.acquire()  # creates a new file at the path and locks it

    between_open_and_lock(meanwhile)
    # late's flock on the old file succeeds, but that file is gone: the lease is the newcomer's
    assert not late.acquire() and late.fd is None
    assert _is_the_file_at(newcomer.fd, newcomer.path)
    assert not Lease("turn", run_id).acquire()
    newcomer.release()


def test_a_lease_whose_file_was_unlinked_retries_on_the_current_one(run_id, between_open_and_lock):
    holder, late = Lease("turn", run_id), Lease("turn", run_id)
    assert holder.acquire()
    between_open_and_lock(holder.release)  # the holder finishes; nobody else comes
    assert late.acquire()
    assert _is_the_file_at(late.fd, late.path)  # it holds the file at the path, so it excludes the next
    assert not Lease("turn", run_id).acquire()
    late.release()


def test_a_dead_holders_lease_is_abandoned(run_id):
    dead = Lease("sync", run_id)
    assert dead.acquire()
    os.close(dead.fd)  # as the kernel does when the process dies: the lock goes, the file stays
    with abandoned_lease("sync", run_id) as abandoned:
        assert abandoned is True
        assert not Lease("sync", run_id).acquire()  # held by the checker meanwhile
    assert not lease_path("sync", run_id).exists()


def test_a_live_holder_or_no_file_is_not_abandoned(run_id):
    with abandoned_lease("sync", run_id) as abandoned:
        assert abandoned is False  # no file: a worker elsewhere, or the run ended
    alive = Lease("sync", run_id)
    assert alive.acquire()
    with abandoned_lease("sync", run_id) as abandoned:
        assert abandoned is False
    assert lease_path("sync", run_id).exists()
    alive.release()


def test_a_file_unlinked_before_the_check_locked_it_is_not_abandoned(run_id, between_open_and_lock):
    holder, newcomer = Lease("eval", run_id), Lease("eval", run_id)
    assert holder.acquire()

    def meanwhile():
        holder.release()  # the run ends, and unlinks the file the checker has open
        assert newcomer.acquire()  # the run is started again (a resumed evaluation) with a new file

    between_open_and_lock(meanwhile)
    with abandoned_lease("eval", run_id) as abandoned:
        assert abandoned is False  # the old file's lock was free, but the run's live holder is the newcomer
    assert _is_the_file_at(newcomer.fd, newcomer.path)  # and its file was left alone
    newcomer.release()


def test_a_file_replaced_by_hand_is_not_the_lease(run_id, between_open_and_lock):
    # Another process unlinked the file and made a new one it holds, by hand, between our open and flock.
    path = lease_path("turn", run_id)
    late = Lease("turn", run_id)
    other = {}

    def meanwhile():
        path.unlink()
        other["fd"] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(other["fd"], fcntl.LOCK_EX | fcntl.LOCK_NB)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    between_open_and_lock(meanwhile)
    assert not late.acquire()
    os.close(other["fd"])
