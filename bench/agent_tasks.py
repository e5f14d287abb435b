"""What a task adds over the bare agent turn it runs: the bookkeeping of app.services.task_runner.

    .venv/bin/python bench/agent_tasks.py [--turns 50]

Self-contained: a fresh data dir (SQLite, SQLite job queue), an agent on an OpenAI-compatible model
served by the test suite's fake LLM server on 127.0.0.1 (it answers at once), no tools. In one process,
after one untimed warm-up of each:

1. bare turn: a new conversation, the user's message, the turn, the assistant's message and ledger row
   (what `POST /api/conversations/{id}/messages` does);
2. task, inline: create the task (row + dispatch onto the job queue), claim it within the bounds, run it
   (lease, heartbeat thread, the turn in a watched thread of its own, ledger rows tagged with the task),
   record the result: everything a worker does, minus waiting for the queue;
3. task, queued: create the task and wait (polling every 5 ms) until a real job consumer in this process
   has completed it: adds the queue's pickup delay.
Prints per-run p50/p95 and the ratios against the bare turn.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent import _summary, _timed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="magnet-bench-tasks-"))

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.jobs import start_consumer, stop_consumer
    from app.models import AgentTask
    from app.services import agents, conversations, llm_models, task_runner, tasks, turns
    from tests.support.fake_llm import FakeLLM, Reply

    app = create_app(Config(data_dir=work, outbound_allowlist=["127.0.0.1"]))
    with app.app_context(), FakeLLM(default=Reply("Done.")) as llm:
        upgrade()
        model = llm_models.create_model({"name": "bench-fake", "provider": "openai_compatible",
                                         "model_id": "fake-model", "kind": "chat", "endpoint": llm.base_url})
        inline_agent = agents.create_agent({"name": "bench-inline", "model_id": model.id})
        queued_agent = agents.create_agent({"name": "bench-queued", "model_id": model.id})
        inline_id, queued_id = inline_agent.id, queued_agent.id

        def bare(n: int) -> None:
            conversation = conversations.create_conversation(inline_id, "bench")
            message, _ = turns.execute(turns.prepare(conversation, f"Report {n}\n\nDo it."), lambda event: None)
            assert message["status"] == "completed", message

        def task_inline(n: int) -> None:
            # No consumer runs yet: the job create_task queues waits, and the worker's steps run here.
            task = tasks.create_task({"agent_id": inline_id, "title": f"Report {n}", "instructions": "Do it."})
            claimed = task_runner.claim_next(inline_id)
            assert claimed == task.id
            task_runner.run_claimed(claimed)
            assert db.session.get(AgentTask, claimed).status == "completed"

        def task_queued(n: int) -> None:
            task_id = tasks.create_task({"agent_id": queued_id, "title": f"Report {n}", "instructions": "Do it."}).id
            while db.session.execute(db.select(AgentTask.status).where(AgentTask.id == task_id)).scalar() != "completed":
                db.session.commit()
                time.sleep(0.005)
            db.session.commit()

        runs = list(range(args.turns))
        bare(-1)
        task_inline(-1)
        bare_ms = _timed(bare, runs)
        inline_ms = _timed(task_inline, runs)
        consumer = start_consumer(app, workers=2)
        try:
            task_queued(-1)
            queued_ms = _timed(task_queued, runs)
        finally:
            stop_consumer(consumer)

    print(f"{args.turns} runs each, fake OpenAI-compatible model answering at once, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(_summary("bare agent turn", bare_ms))
    print(_summary("task, run inline (worker's steps)", inline_ms, bare_ms))
    print(_summary("task, through the job queue", queued_ms, bare_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
