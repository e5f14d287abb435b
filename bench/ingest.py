"""Ingestion throughput on SciFact: raw model speed vs a first sync through Magnet, the re-sync, memory.

    .venv/bin/python bench/ingest.py --scifact /work/shared/datasets/scifact [--limit N] [--workdir DIR]

1. Writes the corpus as one text file per document (title + "\\n\\n" + text) into WORKDIR/corpus.
2. Raw: chunks those files with the default index's own loader and chunker, then times the embedding
   model's `encode` on exactly those chunk texts (the model is loaded and warmed first).
3. First sync: a fresh data dir (so the embedding cache is empty), migrated; a directory source over the
   folder; `start_sync` + `run_sync` in this process. Reports chunks/s and the ratio to raw (target >= 0.85).
4. Re-sync of the unchanged folder and its speed-up over the first sync (target >= 50x).
5. Resident memory sampled during the first sync, shown at 25/50/75/100% progress, and the peak.

WORKDIR (default bench/.work/ingest) is left behind with the synced data dir (bench/http_latency.py uses it);
its `corpus` and `data` folders are recreated on every run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

MARKER = ".magnet-bench-ingest"
RATIO_TARGET = 0.85
SPEEDUP_TARGET = 50.0


def write_corpus(scifact: Path, folder: Path, limit: int | None) -> int:
    folder.mkdir(parents=True)
    count = 0
    with open(scifact / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and count >= limit:
                break
            doc = json.loads(line)
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(doc["_id"]))
            (folder / f"{name}.txt").write_text(f"{doc.get('title') or ''}\n\n{doc.get('text') or ''}",
                                               encoding="utf-8")
            count += 1
    return count


def fresh_workdir(workdir: Path) -> tuple[Path, Path]:
    """WORKDIR/corpus and WORKDIR/data, both new; refuses to wipe a folder this bench did not make."""
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / MARKER
    if any(workdir.iterdir()) and not marker.exists():
        raise SystemExit(f"{workdir} is not empty and was not made by this benchmark; pass another --workdir")
    marker.touch()
    corpus, data = workdir / "corpus", workdir / "data"
    for folder in (corpus, data):
        shutil.rmtree(folder, ignore_errors=True)
    return corpus, data


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class MemorySampler:
    """Samples RSS and the run's progress (read from the database) every `interval` seconds."""

    app: object
    run_id: str
    interval: float = 0.2
    samples: list[tuple[int, float]] = field(default_factory=list)  # (documents_done, rss_mb)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        from sqlalchemy import select

        from app.extensions import db
        from app.models import SyncRun

        with self.app.app_context():
            while not self._stop.is_set():
                done = db.session.execute(select(SyncRun.documents_done).where(SyncRun.id == self.run_id)).scalar()
                db.session.commit()
                self.samples.append((done or 0, rss_mb()))
                self._stop.wait(self.interval)

    def at_progress(self, total: int) -> list[tuple[str, float]]:
        marks = []
        for pct in (25, 50, 75, 100):
            reached = [rss for done, rss in self.samples if done >= total * pct / 100]
            marks.append((f"{pct}%", reached[0] if reached else (self.samples[-1][1] if self.samples else 0.0)))
        return marks


def make_app(data_dir: Path):
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.services.llm_models import ensure_builtin_models

    # The corpus lies beside the data dir (fresh_workdir): the bench's only source root.
    app = create_app(Config(data_dir=data_dir, log_level="WARNING", source_roots=[data_dir.parent / "corpus"]))
    with app.app_context():
        upgrade()
        ensure_builtin_models()
    return app


def chunk_texts(corpus: Path, chunker) -> list[str]:
    """The chunk texts the pipeline will embed: each file through the same loader and chunker."""
    from knowledge.loaders import load_document

    texts = []
    for path in sorted(corpus.iterdir()):
        parsed = load_document(path.read_bytes(), path.name)
        texts.extend(c.text for c in chunker.run(parsed, document_id=path.stem, source_id="bench"))
    return texts


def raw_encode(texts: list[str], batch_size: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the bare model to embed `texts`, measured in a child process so that the
    memory the model and its outputs take there does not show in this process's RSS during the sync."""
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply(_raw_encode, (texts, batch_size))
    finally:  # close + join, not the context manager's terminate(), which leaks the pool's semaphore
        pool.close()
        pool.join()


def _raw_encode(texts: list[str], batch_size: int) -> tuple[float, float]:
    from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(batch_size=batch_size)._model.model  # loaded once per process
    model.encode(texts[:64], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                 show_progress_bar=False)  # warm-up: first-call allocations are not throughput
    started, cpu = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                 show_progress_bar=False)
    return time.perf_counter() - started, time.process_time() - cpu


def timed_sync(app, source_id: str, sample: bool):
    from app.extensions import db
    from app.models import SyncRun
    from app.services.sync import run_sync, start_sync

    with app.app_context():
        run_id = start_sync(source_id, trigger="bench").id
    sampler = MemorySampler(app, run_id) if sample else None
    started, cpu = time.perf_counter(), time.process_time()
    with app.app_context():
        if sampler:
            with sampler:
                run_sync(run_id)
        else:
            run_sync(run_id)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        run = db.session.get(SyncRun, run_id)
        counts = {k: getattr(run, k) for k in ("status", "added", "updated", "unchanged", "deleted", "failed")}
    return seconds, cpu, counts, sampler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact", type=Path, required=True, help="folder with the BEIR corpus.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "ingest")
    args = parser.parse_args(argv)

    corpus, data_dir = fresh_workdir(args.workdir.resolve())
    documents = write_corpus(args.scifact, corpus, args.limit)
    print(f"corpus: {documents} documents in {corpus}")

    app = make_app(data_dir)
    with app.app_context():
        from app.extensions import db
        from app.models import Document
        from app.services import indexes
        from app.services.knowledge_sources import create_source

        source = create_source({"name": "scifact", "type": "directory", "configuration": {"path": str(corpus)}},
                               role="admin")
        source_id = source.id
        target = indexes.target(indexes.indexes_of(source)[0])
        cache = target.embedder.cache
        assert cache.count() == 0, "the embedding cache must be empty for the first sync"
        batch_size = target.embedder.embedder.batch_size
        texts = chunk_texts(corpus, target.chunker)
    print(f"chunks: {len(texts)} ({len(set(texts))} distinct), chunker {type(target.chunker).__name__} "
          f"size {target.chunker.chunk_size} overlap {target.chunker.chunk_overlap}; torch threads "
          f"{_torch_threads()}, {os.cpu_count()} CPUs")

    with app.app_context():  # load the model here too, outside the timed sync (not through the cache)
        target.embedder.embedder.run(texts[:64])
        assert cache.count() == 0
    rss_before, load_before = rss_mb(), _load()
    raw_seconds, raw_cpu = raw_encode(texts, batch_size)
    raw_rate = len(texts) / raw_seconds
    print(f"raw encode: {raw_seconds:.1f}s")

    first_seconds, first_cpu, first_counts, sampler = timed_sync(app, source_id, sample=True)
    with app.app_context():
        chunks = db.session.execute(db.select(db.func.sum(Document.chunk_count))).scalar() or 0
        stored = target.vectors.count()
    first_rate = chunks / first_seconds
    print(f"first sync: {first_seconds:.1f}s {first_counts}")

    again_seconds, again_cpu, again_counts, _ = timed_sync(app, source_id, sample=False)
    print(f"re-sync: {again_seconds:.2f}s {again_counts}")

    ratio, speedup = first_rate / raw_rate, first_seconds / again_seconds
    rows = [
        ("raw model.encode", "-", len(texts), raw_seconds, raw_cpu, raw_rate, ""),
        ("first sync (end to end)", documents, chunks, first_seconds, first_cpu, first_rate,
         f"ratio to raw {ratio:.2f} (target >= {RATIO_TARGET}) {'OK' if ratio >= RATIO_TARGET else 'LOW'}; "
         f"by CPU time {(raw_cpu / len(texts)) / (first_cpu / max(chunks, 1)):.2f}"),
        ("re-sync, unchanged", documents, 0, again_seconds, again_cpu, None,
         f"speed-up {speedup:.0f}x (target >= {SPEEDUP_TARGET:.0f}x) {'OK' if speedup >= SPEEDUP_TARGET else 'LOW'}"),
    ]
    print()
    print(f"{'stage':<26}{'docs':>7}{'chunks':>9}{'wall s':>10}{'CPU s':>10}{'chunks/s':>10}  notes")
    for name, docs, n, seconds, cpu, rate, note in rows:
        shown = f"{rate:.1f}" if rate is not None else "-"
        print(f"{name:<26}{docs!s:>7}{n:>9}{seconds:>10.2f}{cpu:>10.2f}{shown:>10}  {note}")
    print()
    print(f"load average (1 min) before / after: {load_before} / {_load()}; other processes on the machine "
          "slow the wall-clock figures, the CPU-time ratio is less sensitive to them")
    marks = "  ".join(f"{pct}: {mb:.0f} MB" for pct, mb in sampler.at_progress(documents))
    print(f"RSS during the first sync: {marks}  (model loaded, before: {rss_before:.0f} MB, peak: {peak_rss_mb():.0f} MB)")
    print(f"stores: Chroma {stored} chunks; first sync {first_counts['status']}, added {first_counts['added']}; "
          f"re-sync unchanged {again_counts['unchanged']}")
    ok = (first_counts["status"] == "completed" and stored == chunks == len(texts)
          and again_counts["unchanged"] == documents)
    if not ok:
        print("MISMATCH: the sync did not index exactly the chunks measured raw", file=sys.stderr)
    return 0 if ok else 1


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
