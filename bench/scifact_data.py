"""SciFact in BEIR layout: reading the corpus, queries and qrels, and chunking the corpus as the
benchmarks' indexes do."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from knowledge.types import ParsedDocument, Section


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_queries(root: Path) -> dict[str, str]:
    return {q["_id"]: q["text"] for q in read_jsonl(root / "queries.jsonl")}


def load_qrels(root: Path, split: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (root / "qrels" / f"{split}.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(qrels)


def document_text(doc: dict) -> str:
    return f"{doc.get('title', '')} {doc.get('text', '')}".strip()


def scifact_chunks(corpus_file: Path, chunker) -> Iterator[list]:
    """Each abstract's chunks, as IndexWriter makes them (ids document_id:ordinal; the chunker is
    deterministic), for writing a lexical index without the dense side."""
    for doc in read_jsonl(corpus_file):
        parsed = ParsedDocument(sections=[Section(text=document_text(doc))], title=doc.get("title"))
        yield chunker.run(parsed, document_id=doc["_id"], source_id="scifact")
