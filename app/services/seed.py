"""Demo data for `make run`: built-in models and a ready-to-use RAG prompt template. Idempotent."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import PromptTemplate
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


def seed_demo_data() -> list[str]:
    """Create what a fresh install needs to be useful; returns lines describing what it did."""
    from app.services import prompt_templates

    lines = []
    ensure_builtin_models()
    lines.append("built-in models: local-minilm (embedding), local-extractive (chat)")
    exists = db.session.execute(
        select(PromptTemplate.id).where(PromptTemplate.name == DEFAULT_RAG_TEMPLATE["name"])
    ).first()
    if not exists:
        prompt_templates.create_template(dict(DEFAULT_RAG_TEMPLATE))
        lines.append("prompt template: default-rag")
    return lines
