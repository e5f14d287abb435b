"""Server-sent events as Magnet streams them: each event named on its `event:` line and again in its
JSON `data:` (clients that read only `data:` lines, as most app SDKs do, still see the name)."""
from __future__ import annotations

import json
from typing import Any

DONE = "data: [DONE]\n\n"


def sse_event(event: dict[str, Any]) -> str:
    """One event from a dict with an "event" key."""
    return f"event: {event['event']}\ndata: {json.dumps(event, default=_plain)}\n\n"


def _plain(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is not None:  # datetimes as the API writes them: ISO 8601 UTC with Z
        return isoformat().replace("+00:00", "Z")
    return str(value)
