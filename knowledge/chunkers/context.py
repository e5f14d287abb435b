"""Contextual chunk headers: the document title and section path written in front of each chunk's text.

A chunk in the middle of a long document ("The window is 30 days.") loses what it is about; with the
header ("Pricing handbook > Billing > Refunds") the embedding and the keyword index see it again. This is
an option measured on SciFact (bench/README.md), not the default: see there for the numbers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from knowledge.tokenizer import count_tokens
from knowledge.types import Chunk, Chunker, ParsedDocument

SEPARATOR = " > "


def context_header(title: str | None, heading_path: tuple[str, ...]) -> str:
    """``Title > Heading > Sub-heading``, without a heading that repeats the one before it (or the title)."""
    parts: list[str] = []
    for part in (title, *heading_path):
        part = " ".join((part or "").split())
        if part and (not parts or parts[-1].lower() != part.lower()):
            parts.append(part)
    return SEPARATOR.join(parts)


@dataclass
class ContextChunker:
    """Wraps a chunker: each chunk's text starts with its header, unless it already starts with its last part
    (the first chunk of a section usually begins with the section's own heading, or the title)."""

    inner: Chunker

    @property
    def chunk_size(self) -> int:
        return self.inner.chunk_size

    @property
    def chunk_overlap(self) -> int:
        return self.inner.chunk_overlap

    def run(self, doc: ParsedDocument, *, document_id: str, source_id: str) -> list[Chunk]:
        chunks = self.inner.run(doc, document_id=document_id, source_id=source_id)
        for chunk in chunks:
            header = context_header(doc.title, chunk.heading_path)
            if not header or chunk.text.lower().startswith(header.rsplit(SEPARATOR, 1)[-1].lower()):
                continue
            chunk.text = f"{header}\n\n{chunk.text}"
            chunk.token_count = count_tokens(chunk.text)
            chunk.content_hash = hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
        return chunks
