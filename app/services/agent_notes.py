"""An agent's memory notes: what it (or its operators) chose to keep across conversations.

Not app.runtime.memory, which is the conversation history a turn sees. Notes are rows (the truth, with
every change kept in agent_note_versions) and are indexed for search like documents are: embedded with
the default embedding model into a Chroma collection and into a lexical index, and found again with the
knowledge engine's hybrid Retriever filtered to the agent. Each agent holds at most
`agent_memory_max_notes` notes; a write that would go past it is refused whole (409 `memory_full`).

The index is written after the rows are committed (no transaction stays open during embedding); recall
only returns notes whose rows still exist and match the text indexed, so the rows stay the truth.
"""
from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.errors import Conflict, MagnetError, NotFound, ValidationFailed
from app.extensions import db
from app.models import AgentNote, AgentNoteVersion
from app.services import engine, llm_models
from app.vectordb import chroma_client
from knowledge.retrieval import Retriever
from knowledge.retrieval_settings import RetrievalSettings
from knowledge.stores import make_lexical_index
from knowledge.stores.chroma import ChromaVectorStore
from knowledge.tokenizer import count_tokens
from knowledge.types import Chunk

log = logging.getLogger(__name__)
LEXICAL_INDEX = "agent_memory"
MAX_KEY_CHARS = 200
MAX_TAGS = 20
DEFAULT_RECALL = 5


def _config():
    return current_app.extensions["magnet.config"]


def list_notes(agent_id: str) -> list[AgentNote]:
    from app.services.agents import get_agent

    agent = get_agent(agent_id)
    return db.session.execute(select(AgentNote).where(AgentNote.agent_id == agent.id)
                              .order_by(AgentNote.key)).scalars().all()


def memory_of(agent_id: str) -> dict:
    notes = list_notes(agent_id)
    return {"agent_id": agent_id, "notes": notes, "count": len(notes),
            "max_notes": _config().agent_memory_max_notes}


def history(agent_id: str, key: str | None = None) -> list[AgentNoteVersion]:
    from app.services.agents import get_agent

    agent = get_agent(agent_id)
    query = select(AgentNoteVersion).where(AgentNoteVersion.agent_id == agent.id)
    if key is not None:
        query = query.where(AgentNoteVersion.key == key)
    return db.session.execute(query.order_by(AgentNoteVersion.created_at.desc(),
                                             AgentNoteVersion.version.desc())).scalars().all()


def put_notes(agent_id: str, notes: list[dict], *, changed_by: str = "api") -> list[AgentNote]:
    """Create or replace notes by key, all or none; each real change is a new version of its note."""
    from app.services.agents import get_agent

    agent = get_agent(agent_id)
    _validate(notes)
    existing = {n.key: n for n in db.session.execute(select(AgentNote).where(AgentNote.agent_id == agent.id))
                .scalars()}
    new_keys = [n["key"] for n in notes if n["key"] not in existing]
    limit = _config().agent_memory_max_notes
    if len(existing) + len(new_keys) > limit:
        raise Conflict(f"The agent's memory is full: it holds {len(existing)} of at most {limit} notes, and "
                       f"{len(new_keys)} new would not fit. Delete notes or replace existing keys.",
                       code="memory_full", details={"max_notes": limit, "notes": len(existing),
                                                    "new_notes": len(new_keys)})
    changed = []
    for item in notes:
        tags = list(dict.fromkeys(item.get("tags") or []))
        note = existing.get(item["key"])
        if note is None:
            note = AgentNote(agent_id=agent.id, key=item["key"], text=item["text"], tags=tags, version=1)
            db.session.add(note)
            existing[note.key] = note
        elif note.text == item["text"] and note.tags == tags:
            continue
        else:
            note.text, note.tags, note.version = item["text"], tags, note.version + 1
        changed.append(note)
        db.session.add(AgentNoteVersion(agent_id=agent.id, key=note.key, version=note.version, action="put",
                                        text=note.text, tags=tags, changed_by=changed_by))
    db.session.commit()
    _index(agent.id, changed)
    return [existing[item["key"]] for item in notes]


def delete_note(agent_id: str, key: str, *, changed_by: str = "api") -> None:
    from app.services.agents import get_agent

    agent = get_agent(agent_id)
    note = db.session.execute(select(AgentNote).where(AgentNote.agent_id == agent.id, AgentNote.key == key)
                              ).scalar_one_or_none()
    if note is None:
        raise NotFound(f"Agent {agent.name} has no note '{key}'.", details={"key": key})
    db.session.add(AgentNoteVersion(agent_id=agent.id, key=key, version=note.version + 1, action="delete",
                                    text=None, tags=[], changed_by=changed_by))
    note_id = note.id
    db.session.delete(note)
    db.session.commit()
    unindex([note_id])


def note_ids(agent_id: str) -> list[str]:
    return list(db.session.execute(select(AgentNote.id).where(AgentNote.agent_id == agent_id)).scalars())


def unindex(ids: list[str]) -> None:
    """Remove notes from the search index (after their rows are gone). Best effort: an entry left behind
    is never recalled, since recall only returns notes whose rows exist."""
    if not ids:
        return
    try:
        vectors, lexical = _stores()
        vectors.delete_chunks(ids)
        lexical.delete_chunks(ids)
    except Exception:  # noqa: BLE001 - the deletion itself has succeeded; the log says what is left
        log.warning("could not remove %d memory notes from the index", len(ids), exc_info=True)


def count(agent_id: str) -> int:
    return db.session.execute(select(func.count()).select_from(AgentNote)
                              .where(AgentNote.agent_id == agent_id)).scalar_one()


def _validate(notes: list[dict]) -> None:
    """Every problem of every note, named by its position and field, before anything changes."""
    max_chars = _config().agent_memory_max_note_chars
    problems: dict[str, list[str]] = {}
    seen: set[str] = set()
    for i, item in enumerate(notes):
        key, text, tags = item.get("key"), item.get("text"), item.get("tags") or []
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
            problems[f"notes[{i}].key"] = [f"a non-empty string of at most {MAX_KEY_CHARS} characters"]
        elif key in seen:
            problems[f"notes[{i}].key"] = [f"'{key}' is given twice"]
        else:
            seen.add(key)
        if not isinstance(text, str) or not text.strip():
            problems[f"notes[{i}].text"] = ["a non-empty string"]
        elif len(text) > max_chars:
            problems[f"notes[{i}].text"] = [f"at most {max_chars} characters (MAGNET_AGENT_MEMORY_MAX_NOTE_CHARS)"]
        if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(
                isinstance(t, str) and 0 < len(t) <= 100 for t in tags):
            problems[f"notes[{i}].tags"] = [f"at most {MAX_TAGS} strings of 1 to 100 characters"]
    if problems:
        raise ValidationFailed("Some notes are not valid: " + "; ".join(f"{k}: {v[0]}" for k, v in problems.items()),
                               details={"fields": problems})


# -- the search index ----------------------------------------------------------------------------------

def _embedder_and_model():
    """The default embedding model and its embedder. Without a usable one it is a 409: the request is
    fine, the installation's configuration cannot serve it (an admin sets another default model)."""
    model = llm_models.default_model("embedding")
    if model is None:
        raise Conflict("Agent memory needs a default embedding model; none is configured.",
                       code="no_default_model")
    if not engine.can_embed(model):
        raise Conflict(f"Agent memory embeds with the default embedding model, {model.name}, whose provider "
                       f"{model.provider} Magnet cannot embed with yet; make a local model the default.",
                       code="embedding_model_unusable", details={"model_id": model.id})
    return engine.embedder_for(model), model


@contextmanager
def _model_failures(model):
    """A default embedding model that cannot be loaded or run (a local path with no model, say) is the
    installation's problem, told as a 409 like an unusable provider; Magnet's own errors pass through."""
    try:
        yield
    except MagnetError:
        raise
    except Exception as exc:
        log.warning("agent memory: embedding model %s failed: %s", model.id, exc)
        raise Conflict(f"Agent memory could not embed with the default embedding model, {model.name}: "
                       f"{type(exc).__name__}. Make a working local model the default.",
                       code="embedding_model_unusable", details={"model_id": model.id}) from exc


def _stores(model=None):
    model = model or _embedder_and_model()[1]
    # One collection per embedding model: vectors of two models must never share one.
    return (ChromaVectorStore(chroma_client(), f"magnet-agent-memory-{model.id}"),
            make_lexical_index(db.engine, LEXICAL_INDEX))


def _text(note: AgentNote) -> str:
    return f"{note.key}: {note.text}"


def _chunk(note: AgentNote) -> Chunk:
    text = _text(note)
    return Chunk(id=note.id, document_id=note.id, source_id=note.agent_id, ordinal=0, text=text,
                 token_count=count_tokens(text), content_hash=hashlib.sha256(text.encode()).hexdigest(),
                 metadata={"agent_id": note.agent_id, "key": note.key})


def _index(agent_id: str, notes: list[AgentNote]) -> None:
    if not notes:
        return
    chunks = [_chunk(n) for n in notes]
    db.session.commit()
    embedder, model = _embedder_and_model()
    vectors, lexical = _stores(model)
    with _model_failures(model):
        embeddings = embedder.run([c.text for c in chunks])
    vectors.upsert(chunks, embeddings)
    lexical.upsert(chunks)


def recall(agent_id: str, query: str, k: int = DEFAULT_RECALL) -> list[dict[str, Any]]:
    """The agent's notes most relevant to `query`, best first: hybrid (semantic + lexical) search."""
    if not query.strip() or count(agent_id) == 0:
        return []
    notes = {n.id: n for n in db.session.execute(select(AgentNote).where(AgentNote.agent_id == agent_id)).scalars()}
    db.session.commit()  # no transaction open while searching
    embedder, model = _embedder_and_model()
    retriever = Retriever(embedder, [_stores(model)])
    with _model_failures(model):
        result = retriever.search(query, RetrievalSettings(mode="hybrid", top_k=k, candidate_k=max(50, k)),
                                  filters={"agent_id": agent_id})
    found = []
    for hit in result.hits:
        note = notes.get(hit.chunk_id)
        if note is not None and hit.text == _text(note):  # a stale index entry is not a memory
            found.append({"key": note.key, "text": note.text, "tags": note.tags, "score": round(hit.score, 4),
                          "updated_at": note.updated_at})
    return found


def prompt_section(agent_id: str, query: str) -> str | None:
    """The most relevant notes for this message, as many as fit `agent_memory_prompt_tokens`; None when
    there are none. A memory that cannot be searched now (the vector store down) leaves the turn without
    it rather than failing it."""
    budget = _config().agent_memory_prompt_tokens
    try:
        notes = recall(agent_id, query, k=DEFAULT_RECALL)
    except Exception:  # noqa: BLE001 - the turn goes on without memory; the log says why
        log.warning("agent %s: memory could not be searched for the prompt", agent_id, exc_info=True)
        return None
    header = "Notes from your memory that may be relevant (saved earlier with the remember tool):"
    used, lines = count_tokens(header), []
    for note in notes:
        line = f"- {note['key']}: {note['text']}"
        cost = count_tokens(line)
        if used + cost > budget:
            break
        used += cost
        lines.append(line)
    return "\n".join([header, *lines]) if lines else None
