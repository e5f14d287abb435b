"""Read a BEIR dataset folder (corpus, queries, qrels) for one split, as evaluation test cases.

The corpus is streamed, never loaded whole; qrels keep graded judgments, grade 0 included (judged
non-relevant). Problems are ``TestSetError``s naming the file and line.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluations.case_fields import TestSetError, _FieldError, _parse_input, _source_id, _type
from evaluations.testsets import _SPLIT_NAME, _Errors, _number


@dataclass(frozen=True)
class BeirSet:
    """A BEIR dataset folder, read for one split: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

    ``queries`` holds only the queries judged in the split (BEIR's queries.jsonl mixes all splits).
    ``qrels`` is ``{query_id: {doc_id: grade}}`` with integer grades as in TREC qrels (what
    ``evaluations.metrics.retrieval`` and pytrec_eval take); grade 0 rows are kept, meaning *judged
    non-relevant*. The corpus is not loaded: ``iter_corpus`` streams it, as corpora run to millions of
    documents.
    """

    folder: Path
    split: str
    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int | float]]

    def iter_corpus(self) -> Iterator[tuple[str, str, str]]:
        """(doc_id, title, text) per document, streamed; a bad line raises ``TestSetError`` at that line."""
        for number, line in _lines(self.corpus_path):
            if not line.strip():
                continue
            where = {"file": str(self.corpus_path), "line": number}
            doc = _beir_object(line, where)
            doc_id = _beir_id(doc, where)
            title, text = doc.get("title") or "", doc.get("text") or ""
            if not isinstance(title, str) or not isinstance(text, str):
                raise TestSetError.single("title and text must be strings", **where)
            yield doc_id, title, text

    def test_cases(self) -> list[dict[str, Any]]:
        """One normalised case per judged query, sources with their grades (0 = judged non-relevant)."""
        return [
            {
                "input": text,
                "expected_output": None,
                "expected_sources": [{"id": doc, "grade": float(g)} for doc, g in self.qrels[qid].items()],
                "expected_no_answer": False,
                "metadata": {"beir_query_id": qid},
                "filters": None,
            }
            for qid, text in self.queries.items()
        ]


def read_beir(folder: Path | str, split: str = "test") -> BeirSet:
    """Read a BEIR folder's queries and qrels for ``split``; the corpus is only checked to exist.

    Raises ``TestSetError`` naming the file (and line) for a missing file, a bad qrels or queries line,
    and for judged queries that queries.jsonl lacks.
    """
    folder = Path(folder)
    if not _SPLIT_NAME.match(split):
        raise TestSetError.single(f"invalid split name '{split}'")  # it becomes part of a path
    corpus, queries_path, qrels_path = (folder / "corpus.jsonl", folder / "queries.jsonl",
                                        folder / "qrels" / f"{split}.tsv")
    for path in (corpus, queries_path):
        if not path.is_file():
            raise TestSetError.single(f"{path.name} not found in {folder}", file=str(path))
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise TestSetError.single(
            f"qrels/{split}.tsv not found in {folder}; splits available: {', '.join(available) or 'none'}",
            file=str(qrels_path))
    qrels = _read_qrels(qrels_path)
    queries = _read_queries(queries_path, qrels)
    return BeirSet(folder=folder, split=split, corpus_path=corpus, queries=queries, qrels=qrels)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) per line, streamed. Decoded line by line (a BOM dropped) so that a
    non-UTF-8 byte is reported at its own line, not somewhere in the decoder's read-ahead."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise TestSetError.single("not valid UTF-8", file=str(path), line=number) from None


def _read_qrels(path: Path) -> dict[str, dict[str, int | float]]:
    """``query-id<TAB>corpus-id<TAB>score`` rows; the header is optional. Negative grades (TREC's
    "junk" levels) are read as 0, judged non-relevant, so they never become negative gains."""
    errors = _Errors()
    qrels: dict[str, dict[str, int | float]] = {}
    for number, line in _lines(path):
        if errors.full:
            break
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 3 or not parts[0] or not parts[1]:
            errors.add("expected 'query-id<TAB>corpus-id<TAB>score'", file=str(path), line=number)
            continue
        qid, doc, score = parts
        grade = _qrel_grade(score)
        if grade is None:
            if number == 1:
                continue  # the header line ("query-id  corpus-id  score"), which BEIR files start with
            errors.add(f"score '{score}' is not a number", file=str(path), line=number)
            continue
        judged = qrels.setdefault(qid, {})
        if doc in judged and judged[doc] != grade:
            errors.add(f"'{qid}' -> '{doc}' is judged twice, {judged[doc]} and {grade}",
                       file=str(path), line=number)
            continue
        judged[doc] = grade
    errors.raise_if_any()
    if not qrels:
        raise TestSetError.single("no judgments", file=str(path))
    return qrels


def _qrel_grade(score: str) -> int | float | None:
    try:
        grade: int | float = int(score)
    except ValueError:
        value = _number(score)
        if value is None:
            return None
        grade = value
    return max(grade, 0)


def _read_queries(path: Path, qrels: Mapping[str, Any]) -> dict[str, str]:
    """The judged queries, streamed (queries.jsonl may hold every split's queries)."""
    errors = _Errors()
    queries: dict[str, str] = {}
    for number, line in _lines(path):
        if errors.full:
            break
        if not line.strip():
            continue
        where = {"file": str(path), "line": number}
        try:
            obj = _beir_object(line, where)
            qid = _beir_id(obj, where)
        except TestSetError as exc:
            errors.add(exc.errors[0]["message"], field=exc.errors[0]["field"], **where)
            continue
        if qid not in qrels:
            continue
        try:
            queries[qid] = _parse_input("text", obj.get("text"))
        except _FieldError as exc:
            errors.add(f"query '{qid}' text {exc.message}", field="text", **where)
    missing = [qid for qid in qrels if qid not in queries]
    if missing and not errors.items:
        shown = ", ".join(f"'{q}'" for q in missing[:10])
        errors.add(f"{len(missing)} judged queries are not in queries.jsonl: {shown}"
                   + (", ..." if len(missing) > 10 else ""), file=str(path))
    errors.raise_if_any()
    return queries


def _beir_object(line: str, where: dict[str, Any]) -> Mapping[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TestSetError.single(f"invalid JSON: {exc.msg} (column {exc.colno})", **where) from None
    if not isinstance(obj, Mapping):
        raise TestSetError.single(f"expected a JSON object, got {_type(obj)}", **where)
    return obj


def _beir_id(obj: Mapping[str, Any], where: dict[str, Any]) -> str:
    try:
        return _source_id(obj.get("_id"))
    except _FieldError:
        raise TestSetError.single("missing or invalid '_id'", field="_id", **where) from None
