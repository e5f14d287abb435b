"""Leases that tell whether the process running a background run is still alive.

The process running a run holds an exclusive flock on data_dir/locks/<kind>-<run id>.lock for as long
as it runs. The kernel drops the lock when that process dies, however it dies (SIGKILL, OOM, power cut
of a container), so any process sharing the data dir can tell at once that a 'running' run is dead:
its lock file exists and nobody holds it. A run whose worker is elsewhere (Redis deployments) has no
lock file here and is judged by its heartbeat instead.

The heartbeat in the database (app.services.liveness) is the truth for every node and worker; a lease
only lets a process on the same machine (`magnet ingest` after a killed one, say) know at once instead
of after MAGNET_RUN_STALE_SECONDS.

A finished run's lock file is unlinked while its lock is still held, so none is left behind to look
abandoned. Whoever opened that file just before then locks a file that is no longer at the path (and a
newcomer may meanwhile create and lock a new one there), so a lock counts only when, once taken, the
file it is on is still the one at the path (`_is_current`); a stale one is let go and acquire() tries
again with the path's current file.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from flask import current_app

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no leases, heartbeats only
    fcntl = None


def lease_path(kind: str, run_id: str) -> Path:
    return current_app.extensions["magnet.config"].data_dir / "locks" / f"{kind}-{run_id}.lock"


class Lease:
    """Held by the process running a run; acquire() is False when another process or thread holds it."""

    def __init__(self, kind: str, run_id: str):
        self.path = lease_path(kind, run_id)
        self.fd: int | None = None

    def acquire(self) -> bool:
        if fcntl is None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:  # each retry means the file was unlinked after we opened it: its holder finished
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            if _is_current(fd, self.path):
                self.fd = fd
                return True
            os.close(fd)

    def release(self, remove: bool = True) -> None:
        if self.fd is None:
            return
        if remove:  # unlinked before the lock goes, so nobody finds a free lock of a finished run;
            # whoever locks the unlinked file afterwards sees it is no longer current (see acquire)
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self.fd)
        self.fd = None


@contextlib.contextmanager
def abandoned_lease(kind: str, run_id: str):
    """Yields True (holding the lock) if this run's lock file exists and no live process holds it."""
    if fcntl is None:
        yield False
        return
    path = lease_path(kind, run_id)
    try:
        fd = os.open(path, os.O_RDWR)  # never created here
    except OSError:
        yield False  # no lease on this machine: the worker is elsewhere, or the run just ended
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False  # held: the worker is alive
            return
        if not _is_current(fd, path):
            yield False  # the run ended (its file was unlinked), or a new holder has a new file
            return
        yield True
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not unlinked, nor replaced since)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (at_path.st_dev, at_path.st_ino)
