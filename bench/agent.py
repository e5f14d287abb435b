"""Agent runtime overhead on SciFact: a whole agent turn vs the retrieval it wraps.

    .venv/bin/python bench/agent.py --scifact /work/shared/datasets/scifact [--queries 100]

Uses the data dir bench/eval.py prepares (SciFact synced, a retrieval tool "scifact"); prepares it the
same way when missing. In one process, on the first N test queries, after one untimed pass that warms
the query-embedding cache (so every timed pass embeds nothing and the ratios show the runtime's own cost):

1. floor: `retrieval.search` of each query with the tool's settings, then the extractive answer over
   the passages found: the work any answer from the built-in model needs;
2. local agent: a turn of an agent on the built-in local model with that tool (new conversation, user
   message saved, tool call in its own thread, extractive answer with citations, assistant message,
   trace and ledger rows saved);
3. remote agent: a turn of an agent on an OpenAI-compatible model served by the fake LLM server on
   127.0.0.1 (the test suite's; it calls the tool, then answers), against a floor of the same search plus
   the same two chat completions made directly with the openai SDK.
Prints per-turn p50/p95 and the ratios turn / floor.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval import NAME, _magnet, prepare  # noqa: E402


def _timed(func, items) -> list[float]:
    durations = []
    for item in items:
        started = time.perf_counter()
        func(item)
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def _summary(name: str, ms: list[float], floor: list[float] | None = None) -> str:
    p50, p95 = statistics.median(ms), sorted(ms)[max(int(len(ms) * 0.95) - 1, 0)]
    line = f"{name:<34} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  total {sum(ms) / 1000:6.2f} s"
    if floor:
        line += f"  ratio {sum(ms) / sum(floor):.2f}x"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "eval")
    parser.add_argument("--embedding-cache", type=Path,
                        default=ROOT / "bench" / ".work" / "ingest" / "data" / "embedding-cache.db")
    args = parser.parse_args(argv)
    data_dir = args.workdir.resolve() / "data"
    prepare(args.scifact, data_dir, args.embedding_cache)
    _magnet(data_dir, "db", "upgrade")
    os.environ["MAGNET_DATA_DIR"] = str(data_dir)

    import openai
    from sqlalchemy import select

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import Agent, EvaluationCase, LlmModel
    from app.runtime.extractive import ExtractiveAnswerer
    from app.services import agents, conversations, evaluations, llm_models, retrieval, tools, turns
    from tests.support.fake_llm import FakeLLM, Reply, ToolCallReply

    app = create_app(Config.from_env())
    with app.app_context(), FakeLLM() as llm:
        llm_models.ensure_builtin_models()
        evaluation = evaluations.find_evaluation(NAME)
        tool = tools.get_tool("retrieval", evaluation.target_id)
        queries = [c.input for c in db.session.execute(select(EvaluationCase).where(
            EvaluationCase.evaluation_id == evaluation.id).order_by(EvaluationCase.ordinal)).scalars()][: args.queries]
        remote_model = db.session.execute(select(LlmModel).where(LlmModel.name == "bench-fake")).scalar_one_or_none()
        if remote_model is None:
            remote_model = llm_models.create_model({"name": "bench-fake", "provider": "openai_compatible",
                                                    "model_id": "fake-model", "kind": "chat", "endpoint": llm.base_url})
        remote_model.endpoint = llm.base_url  # a new port every run
        db.session.commit()

        def agent_named(name: str, model_id: str | None) -> Agent:
            found = db.session.execute(select(Agent).where(Agent.name == name)).scalar_one_or_none()
            return found or agents.create_agent({"name": name, "tools": [tool.id], "model_id": model_id})

        local = agent_named("bench-local", llm_models.default_model("chat").id)
        remote = agent_named("bench-remote", remote_model.id)
        local_id, remote_id = local.id, remote.id
        label = f"retrieval tool {tool.id} (top_k {(tool.retrieval or {}).get('top_k') or 5})"

        def search(query: str) -> None:
            retrieval.search(tool, query)

        def search_and_quote(query: str) -> None:
            result, _ = retrieval.search(tool, query)
            ExtractiveAnswerer().answer(query, [hit.text for hit in result.hits])

        def turn(agent_id: str):
            def run(query: str) -> None:
                conversation = conversations.create_conversation(agent_id, "bench")
                prepared = turns.prepare(conversation, query)
                message, _ = turns.execute(prepared, lambda event: None)
                assert message["status"] == "completed", message
            return run

        def script(query: str) -> None:
            llm.script(ToolCallReply("search", {"query": query}), Reply("The passages answer it [1]."))

        sdk = openai.OpenAI(base_url=llm.base_url, api_key="none", max_retries=0)

        def remote_floor(query: str) -> None:
            search(query)
            for _ in range(2):  # streamed, as the runtime asks for them
                for _chunk in sdk.chat.completions.create(model="fake-model", stream=True,
                                                          messages=[{"role": "user", "content": query}]):
                    pass

        for query in queries:  # warm: query embeddings cached, model loaded, SQLite pages read
            search(query)
        floor = _timed(search_and_quote, queries)
        local_ms = _timed(turn(local_id), queries)
        for query in queries:
            script(query)
        remote_turn = turn(remote_id)
        remote_ms = _timed(remote_turn, queries)
        for query in queries:
            script(query)
        remote_floor_ms = _timed(remote_floor, queries)

    print(f"{len(queries)} SciFact test queries, {label}, load average {os.getloadavg()[0]:.2f}")
    print(_summary("floor: search + extractive answer", floor))
    print(_summary("local agent turn", local_ms, floor))
    print(_summary("floor: search + 2 chat completions", remote_floor_ms))
    print(_summary("remote agent turn (tool + answer)", remote_ms, remote_floor_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
