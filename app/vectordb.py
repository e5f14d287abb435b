"""The process's Chroma client: embedded PersistentClient by default, HttpClient with MAGNET_CHROMA_URL."""
from __future__ import annotations

import threading

from flask import current_app

_lock = threading.Lock()


def chroma_client():
    """One client per app (Chroma clients are thread-safe and expensive to create)."""
    app = current_app._get_current_object()
    client = app.extensions.get("magnet.chroma")
    if client is None:
        with _lock:
            client = app.extensions.get("magnet.chroma")
            if client is None:
                from knowledge.stores.chroma import make_chroma_client

                config = app.extensions["magnet.config"]
                path = None if config.chroma_url else str(config.chroma_path)
                timeout = config.chroma_timeout_seconds if config.chroma_url else None
                # A server that is down raises StoreUnavailable (503) and nothing is cached: the next call
                # tries again, so Chroma coming back needs no restart here.
                client = make_chroma_client(path=path, url=config.chroma_url, timeout=timeout)
                app.extensions["magnet.chroma"] = client
    return client


class EmbeddedChromaBusy(RuntimeError):
    """A second web process tried to serve on the embedded Chroma another one already serves on."""


def hold_embedded_chroma(app) -> None:
    """Called as each web process starts: take an exclusive lock on the embedded Chroma directory, or refuse
    to start when another process holds it.

    The embedded Chroma serves one process only: several web processes on it (`gunicorn --workers 4`, two
    `magnet serve` on one data dir) would each keep their own index in memory and miss each other's writes.
    The kernel drops the lock when the process dies, however it dies. With MAGNET_CHROMA_URL there is no
    such limit and nothing is locked.
    """
    import fcntl
    import os

    config = app.extensions["magnet.config"]
    if config.chroma_url or app.extensions.get("magnet.chroma_lock") is not None:
        return
    config.chroma_path.mkdir(parents=True, exist_ok=True)
    path = config.chroma_path / "magnet-web.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedChromaBusy(
            f"Refusing to start: the embedded Chroma in {config.chroma_path} is already served by another web "
            f"process (pid {holder}). The embedded Chroma serves one process only: run a single web process "
            "(`magnet serve --workers 1`, or gunicorn with --workers 1), or set MAGNET_CHROMA_URL to a Chroma "
            "server to run several (see the README's Production section)."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    app.extensions["magnet.chroma_lock"] = fd  # held until the process exits
