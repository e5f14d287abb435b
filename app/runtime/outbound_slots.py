"""A process-wide bound on request threads waiting for outbound calls.

A slow upstream (an API tool, an LLM provider, an agent's tool) holds the request thread that called it.
Unbounded, fifty such requests hold every thread of a web process and nothing else is answered, health
checks included. So a request takes a slot before it calls out, and when none is free it is refused at
once (429 `busy`, with Retry-After) instead of queueing behind the slow ones. Background work (syncs,
evaluation runs) is not counted: it runs on the job queue's own bounded threads, and refusing it would
only fail a job that could as well wait.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, has_request_context

from app.errors import RateLimited

RETRY_AFTER_SECONDS = 2


class OutboundBusy(RateLimited):
    """Every outbound slot of this process is taken; the client should retry shortly."""

    code = "busy"
    retry_after = RETRY_AFTER_SECONDS


class OutboundSlots:
    """At most `limit` callers at once; a caller that finds none free is refused, never kept waiting."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"MAGNET_OUTBOUND_CONCURRENCY must be at least 1, got {limit}")
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_use = 0

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise OutboundBusy(
                f"The server is busy with {self.limit} outbound calls already; {what} was not started. "
                f"Retry in a few seconds.",
                details={"limit": self.limit, "retry_after_seconds": RETRY_AFTER_SECONDS},
            )
        with self._lock:
            self.in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._free.release()


@contextmanager
def outbound_slot(what: str) -> Iterator[None]:
    """Hold one of the process's outbound slots around a call made for a web request; outside a request
    (a job, the CLI) this does nothing."""
    slots = current_app.extensions.get("magnet.outbound_slots") if has_request_context() else None
    if slots is None:
        yield
        return
    with slots.slot(what):
        yield
