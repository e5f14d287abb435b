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
                client = make_chroma_client(path=path, url=config.chroma_url)
                app.extensions["magnet.chroma"] = client
    return client
