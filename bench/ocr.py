"""OCR on a scanned corpus: pages/s, share of the sync's time, and character error rate against known text.

    .venv/bin/python bench/ocr.py --scifact /work/shared/datasets/scifact [--documents 6 --pages 2]

Makes the corpus itself: SciFact abstracts rendered as letter pages at 150 dpi (DejaVu Sans 12 pt, 1-bit,
like an office scanner), saved as PDFs with no text layer, one "Page n of m" text stamp per page like an
electronically filed scan (tests/fixtures/documents/make_fixtures.py draws them). Then a directory source
syncs the folder through the real app (start_sync + run_sync in this process, OCR "auto") and the run's
`timings` give OCR's share. The character error rate compares each page's OCR text (stamp line removed)
with the text drawn on it, both lower-cased with whitespace collapsed (Levenshtein / reference length).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import make_app  # noqa: E402
from tests.fixtures.documents.make_fixtures import STAMP, render_page, scanned_pdf  # noqa: E402

LINES_PER_PAGE = 38  # 70-character lines of 12 pt text between one-inch margins


def char_error_rate(recognised: str, truth: str) -> tuple[int, int]:
    """(edit distance, reference length) on lower-cased text with whitespace collapsed."""
    a, b = " ".join(recognised.lower().split()), " ".join(truth.lower().split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1], len(b)


def write_corpus(scifact: Path, folder: Path, documents: int, pages: int) -> dict[str, list[str]]:
    """PDFs of rendered abstracts; returns the text drawn on each page (title + body lines), per file."""
    folder.mkdir(parents=True)
    truth: dict[str, list[str]] = {}
    with (scifact / "corpus.jsonl").open() as f:
        for line in f:
            if len(truth) == documents:
                break
            doc = json.loads(line)
            lines = textwrap.wrap(doc["text"], width=70)
            if len(lines) < LINES_PER_PAGE * (pages - 1) + 5:
                continue  # too short to fill the pages asked for
            title = " ".join(doc["title"].split()[:6])
            page_texts, images = [], []
            for p in range(pages):
                body = " ".join(lines[p * LINES_PER_PAGE:(p + 1) * LINES_PER_PAGE])
                images.append(render_page(title, body))
                page_texts.append(f"{title} {' '.join(textwrap.wrap(body, width=70))}")
            name = f"scan_{doc['_id']}.pdf"
            (folder / name).write_bytes(scanned_pdf(images, STAMP))
            truth[name] = page_texts
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--pages", type=int, default=2, help="pages per document")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "ocr")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    corpus, data_dir = workdir / "corpus", workdir / "data"
    truth = write_corpus(args.scifact, corpus, args.documents, args.pages)
    data_dir.mkdir(parents=True)
    pages = sum(len(p) for p in truth.values())
    print(f"corpus: {len(truth)} scanned PDFs, {pages} pages, {sum(f.stat().st_size for f in corpus.iterdir())} "
          f"bytes; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    app = make_app(data_dir)
    from app.extensions import db
    from app.models import Document, SyncRun
    from app.services.knowledge_sources import create_source
    from app.services.sync import run_sync, start_sync
    from knowledge import ocr

    with app.app_context():
        source = create_source({"name": "scans", "type": "directory", "configuration": {"path": str(corpus)}},
                               role="admin")
        ocr.warm_up()  # model loading is once per worker process, not per sync: kept out of the timing
        run_id = start_sync(source.id, trigger="bench").id
        started = time.perf_counter()
        run_sync(run_id)
        wall = time.perf_counter() - started
        run = db.session.get(SyncRun, run_id)
        timings, status = dict(run.timings or {}), run.status
        documents = db.session.execute(db.select(Document)).scalars().all()
        errors = total = 0
        confidences = []
        for document in documents:
            for section, expected in zip(document.sections, truth[document.external_id], strict=True):
                text = section["text"].split("\n", 1)[1] if "\n" in section["text"] else ""
                e, n = char_error_rate(text, expected)
                errors, total = errors + e, total + n
                confidences.append(section["metadata"].get("ocr_confidence") or 0)
        statuses = sorted({d.status for d in documents})

    print(f"sync: {status} in {wall:.1f} s; documents {statuses}; timings {json.dumps(timings)}")
    print(f"OCR: {timings['ocr_pages']} pages in {timings['ocr']:.1f} s = {timings['ocr_pages'] / timings['ocr']:.2f} "
          f"pages/s ({timings['ocr'] / timings['ocr_pages']:.1f} s/page); share of the sync's wall time "
          f"{timings['ocr'] / wall:.0%} (parse incl. OCR {timings['parse'] / wall:.0%}, embed "
          f"{timings['embed'] / wall:.0%}, write {timings['write'] / wall:.0%})")
    print(f"character error rate: {errors}/{total} = {errors / total:.2%} (target < 5%); mean confidence "
          f"{sum(confidences) / len(confidences):.3f}; load average after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
