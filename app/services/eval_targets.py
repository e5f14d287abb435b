"""Calling an evaluation's target for one test case, and what the case's scoring needs around it.

Each target type answers a case the way applications see it: a retrieval tool searches, a RAG tool
retrieves and answers (metered like any query), a prompt template is rendered with the case's input
and sent to a chat model. What came back becomes a `CaseOutput` for the metrics plus a JSON record.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import or_, select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Document, Evaluation, LlmModel, PromptTemplate
from app.services import indexes as index_service
from app.services import prompt_templates, rag, tools
from app.services.evaluations import _invalid, specs_of, target_of
from app.services.llm_models import default_model
from app.services.usage import Usage, record_usage
from evaluations import suite
from knowledge.embedders.usage import embed_with_usage

STORED_CONTENT_CHARS = 300  # per retrieved passage kept in a result: enough to read, not a copy of the index
STORED_CONTENT_HITS = 10


@dataclass
class Answered:
    """One call's outcome: the scoring input, the stored record, and what it cost."""

    output: suite.CaseOutput
    record: dict
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0


def _hit_keys(metadata: dict) -> tuple[str, ...]:
    return tuple(k for k in (metadata.get("chunk_id"), metadata.get("document_id"), metadata.get("source")) if k)


def _retrieved(results: list[dict]) -> tuple[list[suite.Hit], list[dict]]:
    hits, stored = [], []
    for i, result in enumerate(results):
        meta = result["metadata"]
        hits.append(suite.Hit(keys=_hit_keys(meta), score=float(result["score"]), content=result["content"]))
        entry = {"chunk_id": meta.get("chunk_id"), "document_id": meta.get("document_id"),
                 "external_id": meta.get("source"), "score": result["score"]}
        if i < STORED_CONTENT_HITS:
            entry["content"] = result["content"][:STORED_CONTENT_CHARS]
        stored.append(entry)
    return hits, stored


def _search(tool, query: str, top_k: int, filters: dict | None) -> rag.QueryRun:
    run = rag.QueryRun(tool=tool, query=query, api_key_id=None)
    rag.retrieve(run, top_k=top_k, filters=filters)
    return run


def answer_case(evaluation: Evaluation, case: dict, depth: int) -> Answered:
    """Run the target on one case. Raises MagnetError (or anything) on failure: the runner retries."""
    target = target_of(evaluation)
    if evaluation.type == "retrieval_tool":
        run = _search(target, case["input"], depth, case.get("filters"))
        hits, stored = _retrieved(run.results)
        return Answered(suite.CaseOutput(hits=hits), {"retrieved": stored})
    if evaluation.type == "rag_tool":
        return _answer_rag(target, case)
    if evaluation.type == "agent":
        return _answer_agent(evaluation, target, case)
    return _answer_prompt(evaluation, target, case)


def _answer_rag(tool, case: dict) -> Answered:
    run = _search(tool, case["input"], tool.retrieval.get("top_k") or 5, case.get("filters"))
    rag.answer(run)
    hits, stored = _retrieved(run.results)
    by_index = {c["result"]: hits[c["result"]].keys for c in run.citations}
    output = suite.CaseOutput(hits=hits, answer=run.answer, no_answer=run.answer is None,
                              cited=list(by_index.values()))
    record = {"answer": run.answer, "no_answer_reason": run.no_answer_reason, "citations": run.citations,
              "retrieved": stored}
    return Answered(output, record, run.usage, run.cost)


def _answer_agent(evaluation: Evaluation, agent, case: dict) -> Answered:
    """A case is the first message of a new conversation (user_id `evaluation:<id>`, so it can be told
    apart from real users'); the passages the agent's tools found are its retrieved list, in turn order."""
    from app.services import conversations, turns

    conversation = conversations.create_conversation(agent.id, f"evaluation:{evaluation.id}")
    turn = turns.prepare(conversation, case["input"])
    try:
        message, result = turns.execute(turn, lambda event: None)
    except turns.TurnFailed as failed:
        raise failed.error from None
    results = [{"content": p.text, "score": 1.0 / rank, "metadata": {
        "chunk_id": p.chunk_id, "document_id": p.document_id, "source": p.source}}
        for rank, p in enumerate(result.passages, start=1)]
    hits, stored = _retrieved(results)
    cited = [hits[c["index"] - 1].keys for c in message["citations"]]
    answer = None if message["no_answer"] else message["content"]
    output = suite.CaseOutput(hits=hits, answer=answer, no_answer=answer is None, cited=cited)
    record = {"answer": answer, "conversation_id": conversation.id, "message_id": message["id"],
              "citations": message["citations"], "tool_calls": message["tool_calls"], "retrieved": stored}
    usage = Usage(message["usage"]["prompt_tokens"], message["usage"]["completion_tokens"])
    return Answered(output, record, usage, message["usage"]["cost"])


def _prompt_variable(evaluation: Evaluation, template: PromptTemplate) -> str:
    chosen = evaluation.settings.get("variable")
    if chosen:
        if chosen not in template.variables:
            raise _invalid("settings.variable", [f"'{chosen}' is not a variable of {template.name}"])
        return chosen
    for name in ("input", "query", "question"):
        if name in template.variables:
            return name
    if len(template.variables) == 1:
        return template.variables[0]
    raise _invalid("settings.variable", [f"{template.name} has several variables; name the one the case input fills"])


def answer_model(evaluation: Evaluation) -> LlmModel:
    """The chat model a prompt-template evaluation sends its rendered prompts to."""
    model_id = evaluation.settings.get("model_id")
    model = db.session.get(LlmModel, model_id) if model_id else default_model("chat")
    if model is None or model.provider == "local":
        raise _invalid("settings.model_id", ["prompt template evaluations need a generative chat model "
                                             "(the local extractive model only quotes retrieved passages)"])
    return model


def _answer_prompt(evaluation: Evaluation, template: PromptTemplate, case: dict) -> Answered:
    from app.runtime.llm_types import ChatMessage
    from app.runtime.providers import client_for

    values = {str(k): v for k, v in (case.get("metadata") or {}).get("variables", {}).items()}
    values[_prompt_variable(evaluation, template)] = case["input"]
    rendered = prompt_templates.render_template(template.id, values)
    model = answer_model(evaluation)
    db.session.commit()  # no transaction open during the provider call
    result = client_for(model, timeout=evaluation.settings.get("timeout_s")).complete(
        [ChatMessage(role="user", content=rendered["text"])], temperature=0.0)
    record = record_usage(entity_type="evaluation", entity_id=evaluation.id, operation="chat", model=model,
                          usage=result.usage, latency_ms=result.latency_ms, details={"case_id": case["id"]})
    answer = result.text.strip() or None
    output = suite.CaseOutput(answer=answer, no_answer=answer is None)
    return Answered(output, {"answer": answer, "prompt_version": rendered["version"]}, result.usage, record.cost)


# -- judges --------------------------------------------------------------------------------------------


def judge_model(evaluation: Evaluation) -> LlmModel:
    model_id = evaluation.settings.get("judge_model_id")
    model = db.session.get(LlmModel, model_id) if model_id else default_model("chat")
    if model is None or model.provider == "local":
        raise ValidationFailed(
            "Judge metrics need a generative chat model: add one (POST /api/models) and name it in "
            "settings.judge_model_id, or make it the default chat model.",
            details={"fields": {"settings.judge_model_id": ["no generative chat model to judge with"]}})
    return model


class MeteredEmbedder:
    """semantic_similarity's embedder, metered: one ledger row per call (entity `evaluation`), counting
    the texts actually embedded (the embedding cache serves repeated answers and golds for free)."""

    def __init__(self, embedder, model_id: str, evaluation_id: str):
        self.embedder, self.model_id, self.evaluation_id = embedder, model_id, evaluation_id

    def run(self, texts):
        started = time.perf_counter()
        vectors, used = embed_with_usage(self.embedder, texts)
        if used.tokens:
            details = {"texts_embedded": used.inputs - used.cache_hits, "cache_hits": used.cache_hits,
                       **({"tokens_estimated": True} if used.estimated else {})}
            record_usage(entity_type="evaluation", entity_id=self.evaluation_id, operation="embedding",
                         model=db.session.get(LlmModel, self.model_id), usage=Usage(prompt_tokens=used.tokens),
                         latency_ms=round((time.perf_counter() - started) * 1000, 1), details=details)
        return vectors


class MeteredJudge:
    """`complete(prompt) -> text` for the judges, adding each call's tokens and cost to a tally."""

    def __init__(self, evaluation: Evaluation, case_id: str):
        from app.runtime.providers import client_for

        self.model = judge_model(evaluation)
        self.client = client_for(self.model, timeout=evaluation.settings.get("timeout_s"))
        self.evaluation_id, self.case_id = evaluation.id, case_id
        self.usage, self.cost = Usage(), 0.0

    def __call__(self, prompt: str) -> str:
        from app.runtime.llm_types import ChatMessage

        db.session.commit()
        result = self.client.complete([ChatMessage(role="user", content=prompt)], temperature=0.0)
        record = record_usage(entity_type="evaluation", entity_id=self.evaluation_id, operation="judge",
                              model=self.model, usage=result.usage, latency_ms=result.latency_ms,
                              details={"case_id": self.case_id})
        self.usage = Usage(prompt_tokens=self.usage.prompt_tokens + result.usage.prompt_tokens,
                           completion_tokens=self.usage.completion_tokens + result.usage.completion_tokens)
        self.cost += record.cost
        return result.text


# -- what a run freezes and checks up front -----------------------------------------------------------


def snapshot(evaluation: Evaluation) -> dict:
    """Everything needed to explain a run's numbers later: target settings, indexes, models, metrics."""
    target = target_of(evaluation)
    shot: dict = {"type": evaluation.type, "target_id": target.id, "target_name": target.name,
                  "metrics": evaluation.metrics, "thresholds": evaluation.thresholds,
                  "settings": evaluation.settings, "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if evaluation.type in ("rag_tool", "retrieval_tool"):
        shot["tool"] = {f: getattr(target, f) for f in ("knowledge_source_ids", *tools.INDEX_FIELDS)}
        shot["tool"]["retrieval"] = dict(target.retrieval or {})
        found = tools.tool_indexes(target)
        held = index_service.contents(found)  # as the index is, however it was filled (sync or build)
        shot["indexes"] = [{"id": i.id, "source_id": i.source_id, "status": i.status,
                            "documents": held[i.id]["documents"], "chunks": held[i.id]["chunks"],
                            "progress": {"done": held[i.id]["documents"], "total": held[i.id]["expected"]},
                            "built_at": _iso(i.updated_at)}
                           for i in found]
        shot["embedding_model"] = _model_brief(target.embedding_model_id)
        shot["retrieval_depth"] = suite.retrieval_depth(specs_of(evaluation), target.retrieval.get("top_k") or 5)
    if evaluation.type == "rag_tool":
        shot["tool"].update(answer_mode=target.answer_mode, prompt_template_id=target.prompt_template_id)
        shot["chat_model"] = _model_brief(target.model_id)
        if target.prompt_template_id:
            template = db.session.get(PromptTemplate, target.prompt_template_id)
            shot["prompt_version"] = template.version if template else None
    if evaluation.type == "agent":
        shot["agent"] = {f: getattr(target, f) for f in (
            "system_prompt", "role", "tools", "temperature", "max_tokens", "max_iterations", "tool_timeout_seconds",
            "turn_timeout_seconds", "memory_messages", "status")}
        shot["chat_model"] = _model_brief(target.model_id)
    if evaluation.type == "prompt_template":
        shot["prompt_version"] = target.version
        shot["template"] = target.template
        shot["chat_model"] = _model_brief(answer_model(evaluation).id)
    if any(s.family == "judge" for s in specs_of(evaluation)):
        shot["judge_model"] = _model_brief(judge_model(evaluation).id)
    return shot


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _model_brief(model_id: str | None) -> dict | None:
    model = db.session.get(LlmModel, model_id) if model_id else None
    if model is None:
        return None
    return {"id": model.id, "name": model.name, "provider": model.provider, "model_id": model.model_id}


def check_ready(evaluation: Evaluation) -> None:
    """A tool whose index is still building cannot be evaluated yet (409 with its progress)."""
    if evaluation.type in ("rag_tool", "retrieval_tool"):
        from app.services.retrieval import retriever_for

        retriever_for(target_of(evaluation))
    elif evaluation.type == "agent":
        from app.runtime.providers import client_for
        from app.services.turns import model_of

        client_for(model_of(target_of(evaluation)))
    elif evaluation.type == "prompt_template":
        answer_model(evaluation)
        _prompt_variable(evaluation, target_of(evaluation))


def known_source_ids(evaluation: Evaluation, expected: set[str]) -> set[str]:
    """Which expected source ids match a document (id, path or URL) or a chunk of the target's sources."""
    if not expected or evaluation.type not in ("rag_tool", "retrieval_tool"):
        return set(expected)
    source_ids = target_of(evaluation).knowledge_source_ids
    doc_ids = {e.split(":", 1)[0] for e in expected}
    known: set[str] = set()
    as_list = list(expected | doc_ids)
    for start in range(0, len(as_list), 500):
        batch = as_list[start:start + 500]
        rows = db.session.execute(
            select(Document.id, Document.external_id).where(
                Document.source_id.in_(source_ids), or_(Document.id.in_(batch), Document.external_id.in_(batch)))
        ).all()
        for row in rows:
            known.update((row.id, row.external_id))
    # A chunk id "doc_x:3" is known when its document is (its ordinal is checked by the retrieval itself).
    return {e for e in expected if e in known or e.split(":", 1)[0] in known}
