"""Markdown tables inside section text: found so that the chunker never cuts one mid-row.

A table that fits a chunk stays one piece. A larger one is cut into groups of whole rows, each group
filled as far as ``chunk_size`` allows and each repeating the header and divider lines, so every chunk
of it still says what its columns are. Greedy filling also means two groups never fit one chunk
together, so no chunk shows the header twice.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$")
_DIVIDER = re.compile(r"^[ \t]*\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*$")


def find_tables(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the Markdown tables in ``text`` (header line to last row)."""
    if "|" not in text:
        return []
    lines = text.split("\n")
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(lines) - 1:
        if _ROW.match(lines[i]) and _DIVIDER.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and _ROW.match(lines[j]):
                j += 1
            spans.append((starts[i], starts[j - 1] + len(lines[j - 1])))
            i = j
        else:
            i += 1
    return spans


def is_table_piece(piece: str) -> bool:
    return bool(_ROW.match(piece.strip().split("\n", 1)[0]))


def table_pieces(table: str, chunk_size: int, count: Callable[[str], int]) -> list[tuple[str, int]]:
    """``table`` (a span from :func:`find_tables`) as pieces of whole rows with the header repeated.

    Every piece after the first starts with a newline, so pieces joined in order read as lines.
    """
    n = count(table)
    if n <= chunk_size:
        return [(table, n)]
    lines = table.split("\n")
    header, rows = lines[:2], lines[2:]
    pieces: list[tuple[str, int]] = []
    group: list[str] = []
    group_tokens = 0
    for row in rows:
        candidate = "\n".join(header + group + [row])
        tokens = count(candidate)
        if group and tokens > chunk_size:
            pieces.append(("\n".join(header + group), group_tokens))
            group, tokens = [row], count("\n".join(header + [row]))
        else:
            group.append(row)
        group_tokens = tokens
    if group:
        pieces.append(("\n".join(header + group), group_tokens))
    return [(text if i == 0 else "\n" + text, k) for i, (text, k) in enumerate(pieces)]
