"""Heading-aware chunker for Markdown that may not have been sectioned by the Markdown loader."""
from __future__ import annotations

from knowledge.chunkers.token import RecursiveTokenChunker
from knowledge.loaders.markdown import split_markdown
from knowledge.types import Chunk, ParsedDocument, Section


class MarkdownChunker(RecursiveTokenChunker):
    """The token chunker, after cutting sections at Markdown headings.

    Sections from the Markdown loader already end at headings and pass through unchanged. A section
    without a heading path (Markdown that arrived as plain text, or as one block from a connector)
    is split at its headings first, so no chunk runs across a heading and each carries its path.
    Chunk text stays the original text.
    """

    def run(self, doc: ParsedDocument, *, document_id: str, source_id: str) -> list[Chunk]:
        """Chunk ``doc`` as RecursiveTokenChunker does, with sections cut at headings first."""
        sections: list[Section] = []
        for section in doc.sections:
            if section.heading_path:
                sections.append(section)
                continue
            parts, _ = split_markdown(section.text)
            sections.extend(
                Section(text=p.text, page=section.page, heading_path=p.heading_path, metadata=section.metadata)
                for p in parts
            )
        return self._chunk_sections(sections, document_id=document_id, source_id=source_id)
