"""Builds the knowledge engine's objects (embedder, stores, chunker) for a Magnet index.

Heavy objects are per process: the embedding model loads once (knowledge.embedders keeps it). The
embedding cache is shared by every index, so a text embedded for one index is never embedded again for
another: on PostgreSQL it is the `embedding_cache` table, shared by every node too; otherwise (one
machine) a SQLite file in the data dir.
"""
from __future__ import annotations

import threading

from flask import current_app
from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import KnowledgeIndex, LlmModel
from app.vectordb import chroma_client
from knowledge.chunkers import make_chunker
from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache
from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
from knowledge.embedders.sql_cache import SqlEmbeddingCache
from knowledge.pipeline import IndexTarget
from knowledge.stores import make_lexical_index
from knowledge.stores.chroma import ChromaVectorStore
from knowledge.types import LexicalIndex, VectorCache

_lock = threading.RLock()  # re-entrant: building an embedder builds the shared cache
# The local MiniLM reads at most 256 word pieces; this is its limit in the chunker's tokens too.
LOCAL_EMBEDDING_LIMIT = 256


def _shared(name: str, factory):
    app = current_app._get_current_object()
    key = f"magnet.{name}"
    if key not in app.extensions:
        with _lock:
            if key not in app.extensions:
                app.extensions[key] = factory()
    return app.extensions[key]


def embedding_cache() -> VectorCache:
    """The process's embedding cache: in the database when it is PostgreSQL (every node reaches it), else
    a SQLite file in the data dir (the single-machine default; safe to lose)."""
    config = current_app.extensions["magnet.config"]

    def build() -> VectorCache:
        if db.engine.dialect.name == "postgresql":
            return SqlEmbeddingCache(db.engine)  # the table is made by migration 0006_shared_state
        return EmbeddingCache(config.data_dir / "embedding-cache.db")

    return _shared("embedding_cache", build)


def can_embed(model: LlmModel) -> bool:
    """Whether Magnet can embed with this model: local embedding models only, for now."""
    return model.kind == "embedding" and model.provider == "local"


def embedder_for(model: LlmModel) -> CachedEmbedder:
    """The cached embedder of an embedding model. Local models run in-process with sentence-transformers."""
    if model.kind != "embedding":
        raise ValidationFailed(f"{model.name} is a {model.kind} model, not an embedding model.")
    if not can_embed(model):
        raise ValidationFailed(f"Embedding with provider {model.provider} is not supported yet; use a local model.")

    def build():
        path = None if model.is_builtin else model.model_id
        return CachedEmbedder(SentenceTransformerEmbedder(model_path=path, name=model.model_id), embedding_cache())

    return _shared(f"embedder.{model.id}", build)


def warm_up_embedders() -> list[str]:
    """Load the local embedding models that indexes use, so that the first query after a start does not
    wait seconds for a model load. Returns the names of the models loaded."""
    used = select(KnowledgeIndex.embedding_model_id).distinct()
    models = db.session.execute(
        select(LlmModel).where(LlmModel.id.in_(used), LlmModel.kind == "embedding", LlmModel.provider == "local")
    ).scalars().all()
    db.session.commit()  # nothing stays open during the load
    for model in models:
        embedder_for(model).warm_up()
    return [model.name for model in models]


def max_chunk_size(model: LlmModel) -> int:
    """The largest chunk_size an index on this model accepts: its input limit, so nothing is truncated."""
    return model.context_window or LOCAL_EMBEDDING_LIMIT


def collection_name(index: KnowledgeIndex) -> str:
    return f"magnet-{index.id}"


def index_target(index: KnowledgeIndex) -> IndexTarget:
    model = db.session.get(LlmModel, index.embedding_model_id)
    embedder = embedder_for(model)
    chunker = make_chunker(index.chunker, index.chunk_size, index.chunk_overlap)
    return IndexTarget(
        name=index.id,
        chunker=chunker,
        embedder=embedder,
        vectors=ChromaVectorStore(chroma_client(), collection_name(index)),
        lexical=make_lexical_index(db.engine, index.id),
    )


def index_storage(index: KnowledgeIndex) -> tuple[ChromaVectorStore, LexicalIndex]:
    """Where an index's vectors and lexical entries live: enough to drop them, no embedder needed."""
    return ChromaVectorStore(chroma_client(), collection_name(index)), make_lexical_index(db.engine, index.id)


def reranker_for(model: LlmModel):
    """A cross-encoder reranker from a `rerank` model whose model_id is a local path (no weights ship)."""
    from knowledge.rerank import CrossEncoderReranker

    if model is None or model.kind != "rerank" or model.provider != "local":
        raise ValidationFailed("Reranking needs a local rerank model whose model_id is a folder on this server.")
    return _shared(f"reranker.{model.id}", lambda: CrossEncoderReranker(model.model_id))
