"""Chunkers: token limits, overlap, section boundaries and chunk identity."""
from __future__ import annotations

import hashlib
import re

import pytest

from knowledge.chunkers import MarkdownChunker, RecursiveTokenChunker, make_chunker
from knowledge.loaders import load_document
from knowledge.tokenizer import count_tokens
from knowledge.types import ParsedDocument, Section

SENTENCES = [
    f"Sentence {i} explains how the {['parser', 'indexer', 'ranker', 'embedder'][i % 4]} handles "
    f"case number {i * 7} without surprises." for i in range(60)
]
# Six paragraphs of ten sentences; each paragraph (~150 tokens) is larger than the chunks below.
ESSAY = "\n\n".join(" ".join(SENTENCES[p * 10:(p + 1) * 10]) for p in range(6))


def _chunks(text: str, size: int, overlap: int, chunker_cls=RecursiveTokenChunker):
    doc = ParsedDocument(sections=[Section(text=text)])
    return chunker_cls(size, overlap).run(doc, document_id="doc_1", source_id="src_1")


def _overlap(a: str, b: str) -> str:
    """Longest suffix of ``a`` that is a prefix of ``b``."""
    for n in range(min(len(a), len(b)), 0, -1):
        if a.endswith(b[:n]):
            return b[:n]
    return ""


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("size, overlap", [(16, 0), (16, 15), (100, 99)])
def test_valid_sizes(size, overlap):
    chunker = RecursiveTokenChunker(size, overlap)
    assert (chunker.chunk_size, chunker.chunk_overlap) == (size, overlap)


@pytest.mark.parametrize("size, overlap, message", [
    (15, 0, "chunk_size must be"),
    (0, 0, "chunk_size must be"),
    (64, 64, "chunk_overlap must be"),
    (64, 100, "chunk_overlap must be"),
    (64, -1, "chunk_overlap must be"),
])
def test_invalid_sizes(size, overlap, message):
    with pytest.raises(ValueError, match=message):
        RecursiveTokenChunker(size, overlap)


def test_make_chunker():
    assert type(make_chunker("token", 128, 16)) is RecursiveTokenChunker
    markdown = make_chunker("markdown", 256, 32)
    assert type(markdown) is MarkdownChunker and markdown.chunk_size == 256 and markdown.chunk_overlap == 32
    with pytest.raises(ValueError, match="unknown chunker kind 'semantic'"):
        make_chunker("semantic", 128, 16)
    with pytest.raises(ValueError, match="chunk_overlap"):
        make_chunker("markdown", 128, 128)


@pytest.mark.parametrize("size, overlap", [(64, 16), (40, 39), (16, 8), (200, 50)])
def test_chunks_respect_size_and_count_tokens_exactly(size, overlap):
    chunks = _chunks(ESSAY, size, overlap)
    assert len(chunks) >= count_tokens(ESSAY) // size
    for c in chunks:
        assert c.token_count == count_tokens(c.text) <= size
        assert c.text == c.text.strip() and c.text in ESSAY  # verbatim slices of the section
    # Nothing is lost: every sentence is in some chunk.
    assert all(any(s in c.text for c in chunks) for s in SENTENCES)


def test_chunks_are_filled_greedily_at_sentence_boundaries():
    chunks = _chunks(ESSAY, 64, 0)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.text.endswith(".")  # never cut inside a sentence
        next_sentence = re.match(r".+?\.(?=\s|$)", b.text).group(0)
        assert count_tokens(a.text + " " + next_sentence) > 64  # the next sentence did not fit


def test_overlap_is_present_and_made_of_whole_sentences():
    chunks = _chunks(ESSAY, 64, 24)
    overlapping = 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = _overlap(a.text, b.text).strip()
        if shared:
            overlapping += 1
            assert re.fullmatch(r"(Sentence \d+ [^.]+\.\s*)+", shared)  # whole sentences only
            assert all(s in SENTENCES for s in re.findall(r"Sentence \d+ [^.]+\.", shared))
            assert count_tokens(shared) <= 24
    # Sentences are ~17 tokens, so one fits in 24 tokens of overlap at every boundary.
    assert overlapping == len(chunks) - 1


def test_overlap_comes_from_the_end_of_a_paragraph_larger_than_it():
    # Paragraphs of ~170 tokens: one per chunk; the overlap is the last sentence(s) of the previous one.
    chunks = _chunks(ESSAY, 200, 30)
    assert len(chunks) == 6
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = _overlap(a.text, b.text).strip()
        assert re.fullmatch(r"(Sentence \d+ [^.]+\.\s*)+", shared)
        assert 0 < count_tokens(shared) <= 30
        assert b.text.startswith(shared) and a.text.endswith(shared)


def test_without_overlap_nothing_is_repeated_or_lost():
    chunks = _chunks(ESSAY, 50, 0)
    assert _squash(" ".join(c.text for c in chunks)) == _squash(ESSAY)


def test_paragraph_breaks_are_preferred():
    paragraphs = [" ".join(SENTENCES[i * 2:i * 2 + 2]) for i in range(8)]  # ~34 tokens each
    chunks = _chunks("\n\n".join(paragraphs), 80, 0)
    for c in chunks:
        assert all(part in paragraphs for part in c.text.split("\n\n"))
    assert [len(c.text.split("\n\n")) for c in chunks] == [2, 2, 2, 2]


def test_text_without_separators_is_cut_at_tokens():
    blob = "".join(f"{i:05d}abcdefXYZ" for i in range(2000))  # one 28k-character "word"
    chunks = _chunks(blob, 100, 0)
    assert all(c.token_count == count_tokens(c.text) <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == blob
    assert len(chunks) >= count_tokens(blob) // 100


def test_cjk_text_is_split_at_full_stops():
    text = "".join(f"这是第{i}个测试句子，用来检查中文分块。" for i in range(100))
    chunks = _chunks(text, 40, 0)
    assert all(c.token_count <= 40 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_chunk_identity_fields():
    doc = ParsedDocument(sections=[
        Section(text="First section. " * 30, page=1, heading_path=("A",), metadata={"row": 1}),
        Section(text="   \n\t  "),
        Section(text="Second section text.", page=2, heading_path=("A", "B")),
    ])
    chunks = RecursiveTokenChunker(32, 8).run(doc, document_id="doc_9", source_id="ks_3")
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.id == f"doc_9:{c.ordinal}"
        assert (c.document_id, c.source_id) == ("doc_9", "ks_3")
        assert c.content_hash == hashlib.sha256(c.text.encode("utf-8")).hexdigest()
    last = chunks[-1]
    assert (last.text, last.page, last.heading_path, last.metadata) == ("Second section text.", 2, ("A", "B"), {})
    assert all(c.metadata == {"row": 1} and c.page == 1 for c in chunks[:-1])
    chunks[0].metadata["x"] = 1
    assert doc.sections[0].metadata == {"row": 1}  # chunks get their own copy


def test_empty_document_gives_no_chunks():
    doc = ParsedDocument(sections=[Section(text=""), Section(text=" \n ")])
    assert RecursiveTokenChunker(64, 8).run(doc, document_id="d", source_id="s") == []


def test_special_token_text_is_chunked_like_any_text():
    chunks = _chunks("Models end with <|endoftext|> and <|fim_prefix|> markers. " * 20, 32, 0)
    assert all(c.token_count == count_tokens(c.text) <= 32 for c in chunks)


def test_real_pdf_chunks_never_span_pages(pdf_bytes):
    doc = load_document(pdf_bytes("598us1r3_j4ek.pdf"), "cruz.pdf")
    pages = {s.page: s.text for s in doc.sections}
    chunks = RecursiveTokenChunker(128, 32).run(doc, document_id="doc_cruz", source_id="ks_1")
    assert {c.page for c in chunks} == set(range(1, 25))
    for c in chunks:
        assert c.text in pages[c.page]
        assert c.token_count == count_tokens(c.text) <= 128
    page_2 = [c for c in chunks if c.page == 2]
    assert "CRUZ v. ARIZONA" in page_2[0].text
    assert sum(bool(_overlap(a.text, b.text).strip()) for a, b in zip(page_2, page_2[1:], strict=False)) >= 1


def test_markdown_chunker_splits_plain_text_at_headings():
    text = "Intro.\n\n# Guide\n\nGuide text.\n\n## Setup\n\n" + " ".join(SENTENCES[:12]) + "\n\n# FAQ\n\nAnswers."
    doc = load_document(text.encode(), "guide.txt")  # the text loader knows nothing of headings
    chunks = MarkdownChunker(64, 16).run(doc, document_id="d", source_id="s")
    paths = [c.heading_path for c in chunks]
    assert paths[0] == () and paths[1] == ("Guide",) and paths[-1] == ("FAQ",)
    assert {p for p in paths} == {(), ("Guide",), ("Guide", "Setup"), ("FAQ",)}
    for c in chunks:
        assert len(re.findall(r"^#", c.text, flags=re.M)) <= 1  # never across a heading
        assert c.token_count <= 64
    setup = [c for c in chunks if c.heading_path == ("Guide", "Setup")]
    assert len(setup) > 1 and setup[0].text.startswith("## Setup")


def test_markdown_chunker_keeps_loader_sections():
    text = "# Guide\n\n" + " ".join(SENTENCES[:12]) + "\n\n## Setup\n\nRun it."
    doc = load_document(text.encode(), "guide.md")
    md = MarkdownChunker(64, 16).run(doc, document_id="d", source_id="s")
    token = RecursiveTokenChunker(64, 16).run(doc, document_id="d", source_id="s")
    assert [(c.text, c.heading_path) for c in md] == [(c.text, c.heading_path) for c in token]
    assert md[-1].heading_path == ("Guide", "Setup")
