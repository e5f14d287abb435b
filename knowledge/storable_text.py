"""Text no database can store: NUL characters (PostgreSQL text and JSONB cannot hold them) and lone UTF-16
surrogates (JSON can spell "\\ud800", but it is not Unicode text and fails to encode for SQLite and
PostgreSQL alike). One rule for the web layer (every request) and the evaluation engine (test-set files).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NUL = "\x00"


def is_storable(text: str) -> bool:
    """Whether a database can store `text`: no NUL, no lone surrogate."""
    if NUL in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_path(data: Any) -> str | None:
    """Where the first key or string of `data` (nested objects and lists) that cannot be stored is, as a
    path like `attachments[0].filename` ("(value)" for `data` itself); None when everything can be stored."""
    stack = [("", data)]  # iterative: a deeply nested value must not hit the recursion limit
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and not is_storable(value):
            return path or "(value)"
        if isinstance(value, Mapping):
            for key, item in value.items():
                child = f"{path}.{printable(str(key))}" if path else printable(str(key))
                if isinstance(key, str) and not is_storable(key):
                    return child
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def printable(text: str) -> str:
    """`text` safe to show in a message: NUL and lone surrogates spelled as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace(NUL, "\\u0000")
