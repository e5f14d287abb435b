"""Evaluation overhead on SciFact: a retrieval evaluation of the 300 test queries vs the bare work.

    .venv/bin/python bench/eval.py --scifact /work/shared/datasets/scifact

1. Imports SciFact with `magnet eval import-beir` into WORKDIR/data (a source of 5,183 files synced
   through the normal pipeline, a retrieval tool with default settings, an evaluation of the test
   queries). `--embedding-cache FILE` seeds the data dir's embedding cache (e.g. the one bench/ingest.py
   left in bench/.work/ingest/data), so the import re-embeds nothing it already embedded.
2. Times `run_evaluation` of that suite in this process (the API's own runner: target calls, scoring,
   one stored result per case, aggregates with bootstrap CIs).
3. Times the floor in the same process right after: for each query, the uncached query embedding, the
   Chroma query and the lexical query, called directly at the depth the evaluation retrieves.
Target (issue 5): evaluation time <= 2x the floor. Also prints nDCG@10 with its 95% CI.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NAME = "scifact"


def _magnet(data_dir: Path, *args: str) -> None:
    env = {**os.environ, "MAGNET_DATA_DIR": str(data_dir), "MAGNET_LOG_LEVEL": "WARNING"}
    subprocess.run([str(Path(sys.executable).parent / "magnet"), *args], env=env, check=True)


def prepare(scifact: Path, data_dir: Path, cache: Path | None) -> None:
    if (data_dir / ".imported").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if cache and cache.exists() and not (data_dir / "embedding-cache.db").exists():
        shutil.copy(cache, data_dir / "embedding-cache.db")
    _magnet(data_dir, "db", "upgrade")
    _magnet(data_dir, "eval", "import-beir", str(scifact), "--name", NAME)
    (data_dir / ".imported").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "eval")
    parser.add_argument("--embedding-cache", type=Path,
                        default=ROOT / "bench" / ".work" / "ingest" / "data" / "embedding-cache.db")
    args = parser.parse_args(argv)
    data_dir = args.workdir.resolve() / "data"
    prepare(args.scifact, data_dir, args.embedding_cache)
    os.environ["MAGNET_DATA_DIR"] = str(data_dir)

    from sqlalchemy import select

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import EvaluationCase
    from app.services import eval_runs, evaluations, retrieval, tools
    from knowledge.retrieval import RetrievalSettings

    app = create_app(Config.from_env())
    with app.app_context():
        evaluation = evaluations.find_evaluation(NAME)
        tool = tools.get_tool("retrieval", evaluation.target_id)
        retriever = retrieval.retriever_for(tool)
        cases = [c.input for c in db.session.execute(
            select(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation.id)).scalars()]
        retriever.search(cases[0], RetrievalSettings())  # warm: model, snapshot, SQLite page cache

        run = eval_runs.start_run(evaluation.id, trigger="cli")
        depth = run.target_snapshot["retrieval_depth"]
        started = time.perf_counter()
        eval_runs.run_evaluation(run.id)
        eval_seconds = time.perf_counter() - started
        db.session.expire_all()
        run = eval_runs.get_run(run.id)

        vectors, lexical = retriever.indexes[0]
        model = retriever.embedder.embedder  # the bare model behind the embedding cache: uncached queries
        candidate_k = max(depth, RetrievalSettings().candidate_k)
        started = time.perf_counter()
        for text in cases:
            vector = model.run([text])[0]
            vectors.query(vector, candidate_k)
            lexical.query(text, candidate_k)
        floor_seconds = time.perf_counter() - started

    ndcg = run.metrics["ndcg@10"]
    print(f"evaluation {evaluation.id}: {run.status}, {run.cases_done} cases, {run.cases_failed} failed, "
          f"concurrency {evaluation.settings['concurrency']}, retrieval depth {depth}")
    print(f"nDCG@10 {ndcg['score']:.4f}  95% CI [{ndcg['ci_low']:.4f}, {ndcg['ci_high']:.4f}]  "
          f"(covered {ndcg['covered']}/{ndcg['total']})")
    for name, agg in run.metrics.items():
        print(f"  {name:<10} {agg['score']:.4f}")
    print(f"evaluation run: {eval_seconds:.1f} s; floor (uncached query embedding + Chroma + lexical at k="
          f"{candidate_k}, sequential): {floor_seconds:.1f} s; ratio {eval_seconds / floor_seconds:.2f}x "
          f"(target <= 2x); load average {os.getloadavg()[0]:.2f}")
    return 0 if run.status == "completed" and eval_seconds <= 2 * floor_seconds else 1


if __name__ == "__main__":
    raise SystemExit(main())
