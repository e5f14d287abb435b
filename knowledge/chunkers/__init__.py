"""Chunkers: split parsed documents into token-bounded chunks."""
from __future__ import annotations

from knowledge.chunkers.markdown import MarkdownChunker
from knowledge.chunkers.token import RecursiveTokenChunker
from knowledge.types import Chunker

__all__ = ["CHUNKER_KINDS", "MarkdownChunker", "RecursiveTokenChunker", "make_chunker"]

CHUNKER_KINDS: dict[str, type[RecursiveTokenChunker]] = {
    "token": RecursiveTokenChunker,
    "markdown": MarkdownChunker,
}


def make_chunker(kind: str, chunk_size: int, chunk_overlap: int) -> Chunker:
    """A chunker of ``kind`` ("token" or "markdown"); ValueError for an unknown kind or bad sizes."""
    try:
        cls = CHUNKER_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown chunker kind {kind!r}; expected one of {sorted(CHUNKER_KINDS)}") from None
    return cls(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
