"""Waiting at most so long for a call: the agent's tool calls and the evaluation runner's target calls."""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Overran(Exception):
    """The call did not return within its time."""


def run_with_timeout(func: Callable[[], T], seconds: float, *, name: str) -> T:
    """Run `func` in a thread and wait at most `seconds`; its result, or what it raised.

    A Python thread cannot be killed: one that overruns finishes in the background and its result is
    dropped (the call's own timeouts end it). The thread runs in a copy of the caller's context, so
    context variables (the usage ledger's metering tags) follow the call.
    """
    box: dict = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(func)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Overran(f"no result within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
