"""Demo data for `make run`: built-in models, a RAG prompt template and a small working knowledge base.

Everything is created by name and only when missing: seeding again creates nothing twice, and never
changes (or recreates under another name) what a user has edited. The demo knowledge base is a directory
source over the repository's `data/samples/`, a RAG tool over it that answers extractively (so it works
with no LLM provider) and an agent on the built-in local chat model that uses that tool.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Agent, KnowledgeSource, LlmModel, PromptTemplate, RagTool, SyncRun
from app.services.llm_models import ensure_builtin_models

DEFAULT_RAG_TEMPLATE = {
    "name": "default-rag",
    "description": "Answer only from the retrieved context, cite sources as [n], say when the context is not enough.",
    "type": "rag",
    "template": (
        "Answer the question using only the numbered context passages below. Cite the passages you use "
        "as [1], [2], ... If the context does not contain the answer, say that you cannot answer from "
        "the available documents.\n\nContext:\n{{context}}\n\nQuestion: {{query}}\nAnswer:"
    ),
    "variables": ["context", "query"],
}
DEMO_SOURCE = "demo-docs"
DEMO_TOOL = "demo-docs"
DEMO_AGENT = "demo-assistant"
LOCAL_CHAT_MODEL = "local-extractive"
DEMO_SYSTEM_PROMPT = (
    "You answer questions about Magnet from its documentation, using the demo-docs tool. Cite the passages "
    "you use, and say so when the documentation does not answer the question."
)
SYNCED = ("completed", "completed_with_errors")
# How long `magnet seed` waits for a demo sync that another live worker is running before moving on.
WAIT_FOR_OTHER_WORKER_S = 300.0

Report = Callable[[str], None]


def samples_dir() -> Path:
    """The repository's data/samples, next to the `app` package (absent in an installed wheel)."""
    import app

    return Path(app.__file__).resolve().parent.parent / "data" / "samples"


def seed_demo_data(report: Report | None = None) -> list[str]:
    """Create what a fresh install needs to be useful; returns lines describing what it did.

    `report`, when given, gets each line as it happens (the demo sync takes a few seconds)."""
    from app.services import prompt_templates

    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if report is not None:
            report(line)

    ensure_builtin_models()
    say("built-in models: local-minilm (embedding), local-extractive (chat)")
    exists = db.session.execute(
        select(PromptTemplate.id).where(PromptTemplate.name == DEFAULT_RAG_TEMPLATE["name"])
    ).first()
    if not exists:
        prompt_templates.create_template(dict(DEFAULT_RAG_TEMPLATE))
        say("prompt template: default-rag")
    _seed_demo_knowledge(say)
    return lines


def _by_name(model, name: str):
    return db.session.execute(select(model).where(model.name == name)).scalar_one_or_none()


def demo_objects() -> tuple[RagTool | None, Agent | None]:
    """The demo RAG tool and agent, if they exist (for `magnet serve` to print how to call them)."""
    return _by_name(RagTool, DEMO_TOOL), _by_name(Agent, DEMO_AGENT)


def not_ready_reason(tool: RagTool) -> str | None:
    """Why the demo tool cannot answer yet (its index building, its source never synced), or None."""
    from app.services.tools import readiness

    state = readiness(tool)["status"]
    if state != "ready":
        return f"its index is {state}"
    sources = db.session.execute(
        select(KnowledgeSource.last_sync_status).where(KnowledgeSource.id.in_(tool.knowledge_source_ids))
    ).scalars().all()
    if not any(status in SYNCED for status in sources):
        return "its documents are not synced yet (run `magnet seed`)"
    return None


def _seed_demo_knowledge(say: Report) -> None:
    from app.services.agents import create_agent
    from app.services.knowledge_sources import create_source
    from app.services.tools import create_tool

    folder = samples_dir()
    if not folder.is_dir():
        say(f"demo knowledge base: skipped, {folder} does not exist (Magnet is installed as a package, "
            "not run from a checkout); connect your own documents with `magnet ingest DIR`")
        return
    local_chat = _by_name(LlmModel, LOCAL_CHAT_MODEL)
    source = _by_name(KnowledgeSource, DEMO_SOURCE)
    if source is None:
        try:
            source = create_source({
                "name": DEMO_SOURCE, "type": "directory", "configuration": {"path": str(folder)},
                "description": "Magnet's own short guides (data/samples), the demo knowledge base.",
            }, role="admin")
        except ValidationFailed as exc:  # MAGNET_SOURCE_ROOTS leaves the samples out: the admin's choice
            say(f"demo knowledge base: skipped, {exc.message}")
            return
        say(f"knowledge source: {DEMO_SOURCE} ({source.id}) over {folder}")
    tool = _by_name(RagTool, DEMO_TOOL)
    if tool is None:
        tool = create_tool("rag", {
            "name": DEMO_TOOL, "knowledge_source_ids": [source.id], "answer_mode": "extractive",
            "model_id": local_chat.id if local_chat else None,
            "description": "Answers questions about Magnet by quoting its documentation (no LLM needed).",
        })
        say(f"RAG tool: {DEMO_TOOL} ({tool.id}), extractive answers")
    if _by_name(Agent, DEMO_AGENT) is None:
        body = {"name": DEMO_AGENT, "description": "Answers questions about Magnet from the demo docs.",
                "system_prompt": DEMO_SYSTEM_PROMPT, "tools": [tool.id], "topics": ["magnet"]}
        if local_chat is not None:
            body["model_id"] = local_chat.id
        agent = create_agent(body)
        say(f"agent: {DEMO_AGENT} ({agent.id}) with the {DEMO_TOOL} tool")
    # Only a source that is still ours (same folder) and never synced successfully is synced here: a
    # user's later changes to it, and its later syncs, are theirs.
    if source.last_sync_status not in SYNCED and (source.configuration or {}).get("path") == str(folder):
        _sync_inline(source, say)


def _sync_inline(source: KnowledgeSource, say: Report) -> None:
    """Sync the demo source in this process, before `magnet serve` starts.

    Why inline rather than only queued for the worker: the curls `magnet serve` prints must work the
    moment they are printed, and a queued sync would still be waiting for the consumer (which starts
    after gunicorn forks, then loads the embedding model) or, with --workers > 1 and Redis, for a
    `magnet worker` that may not be running yet. This is what `magnet ingest` does too: start_sync
    records the run (and queues it, harmlessly: a worker that gets the job later finds it no longer
    queued and does nothing), then run_sync claims and runs it here. If a live worker claimed it first,
    we wait for that worker instead. Seeding runs before serving, so the embedded Chroma is never
    written by two processes at once.
    """
    from app.errors import Conflict
    from app.services.sync import run_sync, start_sync

    try:
        run_id = start_sync(source.id, trigger="seed").id
    except Conflict as exc:
        run_id = (exc.details or {}).get("run_id")
        if not run_id:
            raise
    files = sum(1 for path in Path(source.configuration["path"]).rglob("*") if path.is_file())
    say(f"syncing {source.name} ({files} files; the first sync loads the embedding model)…")
    started = time.monotonic()
    run_sync(run_id)  # a no-op when another worker already claimed the run
    run = _wait_until_done(run_id)
    if run is None:  # deleted meanwhile, with its source
        return
    if run.status in ("queued", "running"):
        say(f"  {source.name}: the sync is still running in another worker; the demo is ready when it ends")
        return
    summary = f"  {source.name}: sync {run.status} in {time.monotonic() - started:.1f} s, {run.added} documents added"
    if run.failed or run.message:
        summary += f", {run.failed} failed" + (f" ({run.message})" if run.message else "")
    say(summary)


def _wait_until_done(run_id: str) -> SyncRun | None:
    """The run once it has ended, or as it is after WAIT_FOR_OTHER_WORKER_S (None if it was deleted)."""
    deadline = time.monotonic() + WAIT_FOR_OTHER_WORKER_S
    while True:
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
        if run is None or run.status not in ("queued", "running") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)
