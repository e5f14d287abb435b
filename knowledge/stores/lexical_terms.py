"""The one set of tokenisation rules for lexical search, on every database.

Both lexical indexes store and rank the terms made here (SQLite FTS5 over a pre-tokenised column,
PostgreSQL over a postings table), so an identifier, a number, a hyphenated or accented word is found the
same way whichever database a deployment uses. Before this, each database tokenised by its own rules:
PostgreSQL's ``english`` parser kept ``PRJ-0042`` as ``prj`` + ``-0042`` while the query looked for
``0042``, so ID-style questions found nothing there.

The rules, in order:

1. **Folding**: case-folded (``Straße`` -> ``strasse``), compatibility-decomposed (``ﬁ`` -> ``fi``,
   full-width digits -> ASCII), and accents dropped from Latin and Greek letters (``café`` -> ``cafe``).
   Other scripts keep their marks: in Cyrillic or Devanagari they make different letters.
2. **Words**: runs of letters, digits and marks. Everything else separates (spaces, punctuation, ``_``).
3. **Compounds**: words joined by ``-``, ``.``, ``/``, ``_`` (or a ``,`` between digits) also give the
   joined form, so ``PRJ-0042`` is ``prj``, ``0042`` *and* ``prj0042``; ``v2.3.1`` is ``v2``, ``3``,
   ``1``, ``v231``. The rare joined term ranks the exact identifier first, and ``e-mail`` finds ``email``.
4. **Stemming**: the Porter stemmer (Snowball's ``porter``, the algorithm SQLite FTS5's ``porter``
   tokenizer used here before), so ``refunds`` finds ``refund``. Terms with digits are left as they are
   (``1990s`` is not ``1990``). On SciFact (lexical nDCG@10) Porter beat Snowball ``english`` on both
   the train and the test queries (0.6897 vs 0.6840 train, 0.6916 vs 0.6897 test).
5. **Length**: terms are cut to ``MAX_TERM_CHARS`` characters (a database index entry has a size limit;
   the same cut applies to queries, so a long token still finds itself).

Queries go through the same rules, minus stopwords (documents keep them: they count toward length). A term
only ever contains letters, digits and marks, so no user input reaches a query parser as an operator.
"""
from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache

import regex
import Stemmer

# Bump when the rules above change: indexes stored with another version re-tokenise themselves on open.
TERMS_VERSION = 1
MAX_TERM_CHARS = 64
MAX_QUERY_TERMS = 64
# Both indexes order by the BM25 score rounded to this many decimals, then by insertion order: PostgreSQL
# may sum a score's terms in another order than SQLite, which can change its last bit and so a tie.
SCORE_DECIMALS = 9

# A small English stopword list: enough that "how do I reset the password" ranks on reset/password.
STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did",
    "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "just", "me", "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or",
    "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than",
    "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours"
})

_WORD = r"[\p{L}\p{N}\p{M}]+"
# A joiner only counts between two words: "v2.3.1" is one compound, "end. Next" is not.
_JOINER = r"(?:[-./_\u2010]|(?<=\p{N}),(?=\p{N}))"
_RUN = regex.compile(rf"{_WORD}(?:{_JOINER}{_WORD})*")
_WORD_RE = regex.compile(_WORD)
# Combining accents right after a Latin or Greek letter (after NFKD): these are the ones folded away.
_LATIN_GREEK_ACCENTS = regex.compile(
    r"(?<=[\p{Script=Latin}\p{Script=Greek}])[\u0300-\u036f]+"
)
_local = threading.local()  # a PyStemmer object is not thread-safe: one per thread


def fold(text: str) -> str:
    """Case-fold, decompose and drop Latin/Greek accents (rule 1); other marks are composed again."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", _LATIN_GREEK_ACCENTS.sub("", decomposed))


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    if any(ch.isdigit() for ch in word):
        return word[:MAX_TERM_CHARS]
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("porter")
    return stemmer.stemWord(word)[:MAX_TERM_CHARS]


def _words(text: str) -> list[tuple[str, bool]]:
    """Folded words in reading order as (word, is_compound); a compound follows its parts."""
    out: list[tuple[str, bool]] = []
    for run in _RUN.finditer(fold(text or "")):
        parts = _WORD_RE.findall(run.group())
        out.extend((p, False) for p in parts)
        if len(parts) > 1:
            out.append(("".join(parts), True))
    return out


def document_terms(text: str) -> list[str]:
    """Every term of a text to index, repeats kept (term frequency and length count them)."""
    return [_stem(w) for w, _ in _words(text)]


def informative_terms(terms: list[str], hits: dict[str, int], rows: int) -> list[str]:
    """The query terms worth matching on: a term in at least half of the index's chunks is left out when
    the query has a term in fewer (and in at least one).

    BM25's idf, as FTS5 computes it, is ``ln((N - n + 0.5) / (n + 0.5))`` floored at 1e-6: a term in half
    the chunks or more weighs at most 2.2e-6 in any chunk's score, yet matching on it makes every chunk
    that holds it a candidate, so a search costs a pass over most of the index (bench/scale.py: 3.3x
    slower at 100k chunks) for a ranking it cannot change beyond the sixth decimal. Worse, in hybrid
    search those near-zero matches pad the lexical list and get rank-fusion credit they did not earn.
    A query whose every term is that common (or absent) keeps all its terms, as before.
    """
    kept = [t for t in terms if 2 * hits.get(t, 0) < rows]
    return kept if any(hits.get(t, 0) for t in kept) else terms


def query_terms(text: str) -> list[str]:
    """The distinct terms of free user text to search for, stopwords removed, at most MAX_QUERY_TERMS.

    If every word is a stopword the stopwords are kept, so "to be or not to be" still searches for
    something. Compounds are never stopwords.
    """
    words = _words(text)
    kept = [w for w, compound in words if compound or w not in STOPWORDS] or [w for w, _ in words]
    return list(dict.fromkeys(_stem(w) for w in kept))[:MAX_QUERY_TERMS]
