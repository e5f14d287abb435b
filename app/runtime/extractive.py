"""The built-in local "model": answers by quoting the passages that best match the query.

It needs no external service and no weights, so a fresh install can answer RAG queries out of the box
and tests can run a whole query path offline. It does not write; it picks sentences:

1. split every passage into sentences, leaving out headings and lead-ins ending in ":";
2. score each sentence against the query with BM25 (each sentence is a "document"; the collection is
   all sentences of all passages, so a word that appears everywhere counts for little), on lower-cased
   word tokens with stopwords removed and a light suffix stemmer;
3. multiply by a small position prior: passages come ranked by retrieval and the first sentences of a
   passage tend to state its point, so earlier wins when scores are close;
4. keep up to `max_sentences` sentences scoring at least a fraction of the best one, best first (equal
   scores keep reading order), each followed by a citation marker `[n]`, n the 1-based passage index.

When no sentence shares a content word with the query the answer is ("", []): callers say "no answer"
rather than quoting something unrelated.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.runtime.llm_types import ChatMessage, ChatResult, Done, TextDelta, ToolSpec, Usage
from knowledge.tokenizer import count_tokens

__all__ = ["ExtractiveAnswerer", "LocalExtractiveClient", "content_terms", "split_sentences"]

# English function words plus question verbs ("tell me", "explain"): they say how to answer, not what.
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your yours
yourself yourselves tell please give show explain describe know many much also may might must shall us"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace, or at a
# line break: passages from PDFs and slides often have list items and headings without punctuation.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n+\s*")
_TRAILING_PUNCT = re.compile(r"([.!?]+[\"')\]]*)$")
_HEADING = re.compile(r"#{1,6}\s")  # a Markdown heading line
BM25_K1, BM25_B = 1.2, 0.75
# Sentences below this share of the best score are noise next to it, not extra support.
RELATIVE_FLOOR = 0.35


def _stem(word: str) -> str:
    """Fold the commonest English inflections so "capitals" matches "capital" and "runs" "running".
    Deliberately light: a wrong merge costs more than a missed one in a quoting answerer."""
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + replacement
    return word


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed word tokens of `text` without stopwords (repeats kept, for term counts)."""
    return [_stem(w) for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def split_sentences(passage: str) -> list[str]:
    """The sentences of a passage, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(passage) if s and s.strip()]


@dataclass(frozen=True)
class _Candidate:
    passage: int  # 0-based here; cited 1-based
    position: int  # sentence index inside its passage
    sentence: str
    terms: Counter


class ExtractiveAnswerer:
    """Pick the sentences of `passages` that best answer a query; see the module docstring."""

    def __init__(self, max_sentences: int = 3):
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.max_sentences = max_sentences

    def answer(self, query: str, passages: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
        """(text with [n] markers, citations); ("", []) when nothing in the passages matches the query.

        Each citation is `{"index": n, "sentence": ..., "passage": n}`: `index` is the number in the
        marker, which is the 1-based index of the quoted passage in `passages`.
        """
        query_terms = set(content_terms(query))
        candidates = self._candidates(passages)
        if not query_terms or not candidates:
            return "", []
        scored = self._score(query_terms, candidates)
        if not scored:
            return "", []
        best = scored[0][0]
        chosen, seen = [], set()
        for score, cand in scored:
            key = " ".join(cand.sentence.lower().split())
            if score < best * RELATIVE_FLOOR or key in seen:
                continue  # the same sentence in two passages (overlapping chunks) is quoted once
            seen.add(key)
            chosen.append(cand)
            if len(chosen) == self.max_sentences:
                break
        text = " ".join(_with_marker(c.sentence, c.passage + 1) for c in chosen)
        citations = [{"index": c.passage + 1, "sentence": c.sentence, "passage": c.passage + 1} for c in chosen]
        return text, citations

    @staticmethod
    def _candidates(passages: Sequence[str]) -> list[_Candidate]:
        return [
            _Candidate(p, s, sentence, Counter(content_terms(sentence)))
            for p, passage in enumerate(passages)
            for s, sentence in enumerate(split_sentences(passage or ""))
            if _says_something(sentence)
        ]

    @staticmethod
    def _score(query_terms: set[str], candidates: list[_Candidate]) -> list[tuple[float, _Candidate]]:
        """(score, candidate) for every sentence sharing a query term, best first, ties in reading order."""
        n = len(candidates)
        avg_len = sum(sum(c.terms.values()) for c in candidates) / n or 1.0
        df = Counter(term for c in candidates for term in set(c.terms) if term in query_terms)
        scored = []
        for order, cand in enumerate(candidates):
            length = sum(cand.terms.values())
            bm25 = 0.0
            for term in query_terms & cand.terms.keys():
                tf = cand.terms[term]
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                bm25 += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / avg_len))
            if bm25 <= 0:
                continue
            prior = 1 + 0.10 / (1 + cand.passage) + 0.05 / (1 + cand.position)
            scored.append((bm25 * prior, order, cand))
        scored.sort(key=lambda item: (-item[0], item[1]))  # `order` keeps ties stable
        return [(score, cand) for score, _, cand in scored]


def _says_something(sentence: str) -> bool:
    """A heading ("## Roles") or a lead-in ("Each key has one of three roles:") names a topic without
    saying anything about it: quoted alone it answers nothing, though it shares the query's words."""
    return not (_HEADING.match(sentence) or sentence.rstrip().endswith(":"))


def _with_marker(sentence: str, n: int) -> str:
    """Put the marker before the final punctuation ("... capital [1].") so it reads as part of the
    sentence it supports."""
    match = _TRAILING_PUNCT.search(sentence)
    if match:
        return f"{sentence[: match.start()]} [{n}]{match.group(1)}"
    return f"{sentence} [{n}]"


class LocalExtractiveClient:
    """`ChatClient` adapter over `ExtractiveAnswerer`, used for provider "local" chat models.

    The query is the content of the last `user` message. The passages are NOT parsed out of the prompt:
    the caller passes them as `context_passages` (the retrieved chunk texts, in rank order, so that the
    markers [n] match the caller's own numbering). Without passages the answer is empty. Tools,
    temperature and max_tokens are accepted for interface compatibility and ignored: quoting calls no
    tools and has nothing to sample. Usage is counted with the cl100k tokenizer; the built-in model's
    pricing is zero, so its cost is 0.
    """

    model_name = "extractive"

    def __init__(self, answerer: ExtractiveAnswerer | None = None, model_name: str = "extractive"):
        self.answerer = answerer or ExtractiveAnswerer()
        self.model_name = model_name

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        context_passages: Sequence[str] | None = None,
    ) -> ChatResult:
        started = time.monotonic()
        query = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        passages = list(context_passages or [])
        text, citations = self.answerer.answer(query, passages)
        usage = Usage(
            prompt_tokens=count_tokens(query) + sum(count_tokens(p) for p in passages),
            completion_tokens=count_tokens(text),
        )
        return ChatResult(
            text=text,
            tool_calls=[],
            usage=usage,
            finish_reason="stop",
            model=self.model_name,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
            citations=citations,
            usage_estimated=True,
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        context_passages: Sequence[str] | None = None,
    ) -> Iterator[TextDelta | Done]:
        """The answer as one delta per quoted sentence, then Done."""
        result = self.complete(messages, context_passages=context_passages)
        # Rebuilt from the citations exactly as `answer` joined them, so the deltas concatenate to the text.
        pieces = [_with_marker(c["sentence"], c["index"]) for c in result.citations or []]
        for i, piece in enumerate(pieces):
            yield TextDelta(piece if i == len(pieces) - 1 else piece + " ")
        yield Done(result)
