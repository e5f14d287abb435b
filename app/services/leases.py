"""Leases that tell whether the process running a background run is still alive.

The process running a run holds an exclusive flock on data_dir/locks/<kind>-<run id>.lock for as long
as it runs. The kernel drops the lock when that process dies, however it dies (SIGKILL, OOM, power cut
of a container), so any process sharing the data dir can tell at once that a 'running' run is dead:
its lock file exists and nobody holds it. A run whose worker is elsewhere (Redis deployments) has no
lock file here and is judged by its heartbeat instead.
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self, remove: bool = True) -> None:
        if self.fd is None:
            return
        if remove:  # unlinked before the lock goes, so nobody finds a free lock of a finished run
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
        yield True
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        os.close(fd)
