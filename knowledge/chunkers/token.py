"""Recursive token chunker: splits at the coarsest natural boundary that fits, measured in tokens."""
from __future__ import annotations

import bisect
import hashlib
import re
from collections import deque

from knowledge.chunkers.tables import find_tables, is_table_piece, table_pieces
from knowledge.tokenizer import count_tokens, get_encoding
from knowledge.types import Chunk, ParsedDocument, Section

MIN_CHUNK_SIZE = 16

# Coarsest first: paragraphs, lines, sentences, words. A cut is made where a separator starts, so the
# separator opens the next piece: pieces concatenate back to the exact original text, a chunk is a
# verbatim slice of its section, and (because cl100k pre-tokenizes " word" as one unit) a piece's own
# token count is almost exactly what it adds to a chunk.
SEPARATORS = (
    re.compile(r"[ \t]*\n[ \t]*\n\s*"),
    re.compile(r"[ \t]*\n\s*"),
    # After . ! ? (or one closing quote/bracket after them); CJK full stops need no space after them.
    re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+|(?<=[。！？])"),
    re.compile(r"\s+"),
)


def _join(pieces: list[tuple[str, int]]) -> str:
    return "".join(p for p, _ in pieces)


def _split_at(text: str, separator: re.Pattern[str]) -> list[str]:
    """Cut ``text`` where each match of ``separator`` starts; a whitespace-only tail joins its predecessor."""
    cuts = [0] + [m.start() for m in separator.finditer(text) if m.start() > 0] + [len(text)]
    pieces: list[str] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b <= a:
            continue
        if pieces and not text[a:b].strip():
            pieces[-1] += text[a:b]
        else:
            pieces.append(text[a:b])
    return pieces


class RecursiveTokenChunker:
    """Chunks of at most ``chunk_size`` cl100k tokens with about ``chunk_overlap`` tokens of overlap.

    Text is split at paragraph breaks, then line breaks, then sentence ends, then spaces, and as a
    last resort at token boundaries, only as far as needed for every piece to fit; pieces are then
    merged greedily. Overlap is made of whole trailing pieces of the previous chunk, so it never cuts
    a sentence in half. Chunks never span two Sections, so their page and heading path are exact.
    Markdown tables are never cut mid-row; a large one is cut into row groups that repeat its header.
    """

    def __init__(self, chunk_size: int = 512, chunk_overlap: int = 64) -> None:
        if not isinstance(chunk_size, int) or chunk_size < MIN_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be an integer >= {MIN_CHUNK_SIZE} tokens, got {chunk_size!r}")
        if not isinstance(chunk_overlap, int) or not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap must be an integer >= 0 and smaller than chunk_size ({chunk_size}), "
                f"got {chunk_overlap!r}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def warm_up(self) -> None:
        """Load the tokenizer now rather than on the first document."""
        get_encoding()

    def run(self, doc: ParsedDocument, *, document_id: str, source_id: str) -> list[Chunk]:
        """Chunk every section of ``doc``; ids are ``f"{document_id}:{ordinal}"``, ordinals from 0."""
        return self._chunk_sections(doc.sections, document_id=document_id, source_id=source_id)

    def _chunk_sections(self, sections: list[Section], *, document_id: str, source_id: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in sections:
            for text, token_count in self._split_counted(section.text):
                ordinal = len(chunks)
                chunks.append(Chunk(
                    id=f"{document_id}:{ordinal}",
                    document_id=document_id,
                    source_id=source_id,
                    ordinal=ordinal,
                    text=text,
                    token_count=token_count,
                    content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    page=section.page,
                    heading_path=section.heading_path,
                    metadata=dict(section.metadata),
                ))
        return chunks

    def split_text(self, text: str) -> list[str]:
        """Split one section's text into chunk texts (stripped, non-empty, each <= chunk_size tokens)."""
        return [chunk for chunk, _ in self._split_counted(text)]

    def _split_counted(self, text: str) -> list[tuple[str, int]]:
        if not text.strip():
            return []
        return self._merge(self._structured_pieces(text))

    def _structured_pieces(self, text: str) -> list[tuple[str, int]]:
        """Pieces of ``text``, with each Markdown table cut only between rows (knowledge.chunkers.tables)."""
        spans = find_tables(text)
        if not spans:
            return self._pieces(text, 0)
        pieces: list[tuple[str, int]] = []
        position = 0
        for start, end in spans:
            if start > position:
                pieces.extend(self._pieces(text[position:start], 0))
            pieces.extend(table_pieces(text[start:end], self.chunk_size, count_tokens))
            position = end
        if position < len(text):
            pieces.extend(self._pieces(text[position:], 0))
        return pieces

    def _pieces(self, text: str, level: int) -> list[tuple[str, int]]:
        """Pieces of ``text`` with their token counts, cut at the coarsest separator that makes them fit."""
        # A token is rarely longer than a few characters, so a long text needs no counting to know it is
        # too big; splitting one that would have fitted costs nothing, the merge puts it back together.
        n = count_tokens(text) if len(text) <= 16 * self.chunk_size else self.chunk_size + 1
        if n <= self.chunk_size:
            return [(text, n)]
        if level >= len(SEPARATORS):
            return self._split_tokens(text)
        pieces: list[tuple[str, int]] = []
        for piece in _split_at(text, SEPARATORS[level]):
            pieces.extend(self._pieces(piece, level + 1))
        return pieces

    def _split_tokens(self, text: str) -> list[tuple[str, int]]:
        """Last resort for a "word" longer than a chunk (a URL, base64): cut at token boundaries.

        Each piece's count is that of the piece stripped, which is exact for a chunk of that piece alone.
        """
        enc = get_encoding()
        tokens = enc.encode_ordinary(text)
        _, offsets = enc.decode_with_offsets(tokens)  # character offset where each token starts
        pieces: list[tuple[str, int]] = []
        start = 0  # character offset
        while start < len(text):
            end_token = bisect.bisect_left(offsets, start) + self.chunk_size
            end = max(offsets[end_token] if end_token < len(offsets) else len(text), start + 1)
            # Re-tokenising a slice can take a token or two more than the window it came from; counted
            # stripped, as a chunk made of the slice alone will be stored.
            while (n := count_tokens(text[start:end].strip())) > self.chunk_size and end - start > 1:
                end -= 1
            pieces.append((text[start:end], n))
            start = end
        return pieces

    def _merge(self, pieces: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Greedy merge of pieces into chunks, carrying whole trailing pieces as overlap.

        Piece counts are estimates of what a piece adds to a chunk (exact up to a token at some
        boundaries); whatever the estimate cannot settle, and every emitted chunk, is counted exactly.
        """
        size = self.chunk_size
        chunks: list[tuple[str, int]] = []
        queue = deque(pieces)
        current: list[tuple[str, int]] = []
        carried = 0  # leading pieces of ``current`` that are overlap from the previous chunk
        total = 0
        while queue or len(current) > carried:
            if queue:
                piece, n = queue[0]
                if not current or total + n <= size:
                    fits, new_total = True, total + n
                elif total + n - len(current) > size:  # over by more than estimates can be off
                    fits = False
                else:
                    new_total = count_tokens((_join(current) + piece).strip())
                    fits = new_total <= size
                if fits:
                    current.append(queue.popleft())
                    total = new_total
                    continue
                if len(current) == carried:  # the overlap alone leaves no room for the next piece
                    current.pop(0)
                    carried -= 1
                    total = sum(k for _, k in current)
                    continue
            given_back = self._emit(current, carried, chunks)
            queue.extendleft(reversed(given_back))
            current = self._overlap(current) if queue else []
            carried = len(current)
            total = sum(k for _, k in current)
        return [(text, n) for text, n in chunks if text]

    def _emit(self, current: list[tuple[str, int]], carried: int, chunks: list[tuple[str, int]]) -> list:
        """Append ``current`` to ``chunks`` as one chunk, trimmed in place until its exact count fits.

        Returns the new pieces given back for the next chunk. When only one new piece is left,
        overlap pieces are dropped instead; a lone piece that still does not fit (stripping its
        leading space can cost a token) is cut at token boundaries.
        """
        given_back: list[tuple[str, int]] = []
        while True:
            text = _join(current).strip()
            n = count_tokens(text)
            if n <= self.chunk_size:
                chunks.append((text, n))
                return given_back
            if len(current) - carried > 1:
                given_back.insert(0, current.pop())
            elif carried:
                current.pop(0)
                carried -= 1
            else:
                chunks.extend((piece.strip(), n) for piece, n in self._split_tokens(text))
                return given_back

    def _overlap(self, emitted: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The longest run of trailing pieces whose tokens add up to at most ``chunk_overlap``.

        Nothing is carried after a table: its rows repeated under the next piece's header would be noise.
        """
        if emitted and is_table_piece(emitted[-1][0]):
            return []
        kept: list[tuple[str, int]] = []
        total = 0
        for piece, size in reversed(emitted):
            if total + size > self.chunk_overlap:
                break
            kept.insert(0, (piece, size))
            total += size
        if kept or not emitted or not self.chunk_overlap:
            return kept
        # The last piece alone is longer than the overlap (a whole paragraph, say): carry its last
        # lines, sentences or words instead, so consecutive chunks still share some context.
        return self._tail(emitted[-1][0])

    def _tail(self, text: str) -> list[tuple[str, int]]:
        for separator in SEPARATORS[1:]:
            parts = _split_at(text, separator)
            kept: list[tuple[str, int]] = []
            total = 0
            for part in reversed(parts[1:]):  # never the whole piece
                n = count_tokens(part)
                if total + n > self.chunk_overlap:
                    break
                kept.insert(0, (part, n))
                total += n
            if kept:
                return kept
        return []
