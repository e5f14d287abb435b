"""Every embedding and rerank call lands in the usage ledger, counted in the model's own word pieces.

Convention: a text's tokens are what the model reads, special tokens included: ``[CLS] text [SEP]`` for
the embedder, ``[CLS] query [SEP] passage [SEP]`` per pair for a cross-encoder, cut at the model's limit
(never reached by the short texts here), padding excluded. Expected values come from the models' own
Hugging Face tokenizers, independently of the code under test.

The embedding cache lives for the whole test session, so every text whose embedding is metered here is
used by no other test (a cached text is not embedded, and is metered as a cache hit).
"""
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, KnowledgeSource, UsageRecord
from tests.app.conftest import DOCS
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

QUERY = "how long do refunds take"  # used by no other test: its first search embeds it


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from knowledge.embedders.sentence_transformer import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)


def _pieces(tokenizer, text: str) -> int:
    return len(tokenizer(text)["input_ids"])  # [CLS] + word pieces + [SEP]


def _rows(**where) -> list[UsageRecord]:
    db.session.expire_all()
    query = select(UsageRecord).order_by(UsageRecord.created_at, UsageRecord.id)
    for name, value in where.items():
        query = query.where(getattr(UsageRecord, name) == value)
    return list(db.session.execute(query).scalars())


def _ready(api, path, body):
    res = api.post(path, json=body)
    assert res.status_code == 202, res.json
    tool = res.json["data"]
    state = wait_for(lambda: api.get(f"{path}/{tool['id']}").json["data"]["status"]["status"], lambda s: s != "building")
    assert state == "ready"
    return tool


def _embedding_model_id():
    from app.services.llm_models import default_model

    return default_model("embedding").id


def _admin_key_id():
    return db.session.execute(select(ApiKey.id).where(ApiKey.name == "test admin")).scalar_one()


def test_the_token_convention_by_hand(app, minilm_tokenizer):
    from app.services.engine import embedder_for
    from app.services.llm_models import default_model

    encoded = minilm_tokenizer(QUERY)
    assert minilm_tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == [
        "[CLS]", "how", "long", "do", "ref", "##unds", "take", "[SEP]"]
    assert embedder_for(default_model("embedding")).embedder.count_input_tokens([QUERY]) == 8


def test_query_embedding_is_one_row_and_a_repeat_is_a_free_cache_hit(app, api, synced, minilm_tokenizer):
    tool = _ready(api, "/api/retrieval-tools", {"name": "metered", "knowledge_source_id": synced["id"], "top_k": 2})
    assert api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": QUERY}).status_code == 200

    [row] = _rows(entity_id=tool["id"])
    assert (row.entity_type, row.operation, row.model_ref) == ("retrieval_tool", "embedding", _embedding_model_id())
    assert row.model_name == "all-MiniLM-L6-v2"
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (8, 0, 0)
    assert row.prompt_tokens == _pieces(minilm_tokenizer, QUERY)
    assert row.cost == 0.0 and row.latency_ms > 0 and row.details == {}
    assert row.api_key_id == _admin_key_id()

    # The same query again: its vector comes from the embedding cache, no model runs, nothing is billed.
    assert api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": QUERY}).status_code == 200
    first, again = _rows(entity_id=tool["id"])
    assert first.id == row.id
    assert (again.operation, again.prompt_tokens, again.cached_tokens, again.cost) == ("embedding", 0, 0, 0.0)
    assert again.details == {"cache_hit": True, "query_tokens": 8}


def test_rag_tool_query_is_metered_as_the_rag_tool(app, api, synced, minilm_tokenizer):
    query = "whom should I contact about an invoice problem"
    tool = _ready(api, "/api/rag-tools", {"name": "metered-rag", "knowledge_source_id": synced["id"], "top_k": 2})
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": query})
    assert res.status_code == 200, res.json

    [row] = _rows(entity_id=tool["id"], operation="embedding")
    assert (row.entity_type, row.model_ref) == ("rag_tool", _embedding_model_id())
    assert row.prompt_tokens == _pieces(minilm_tokenizer, query)
    assert row.api_key_id == _admin_key_id()


def test_a_lexical_search_embeds_nothing_and_records_nothing(app, api, synced):
    tool = _ready(api, "/api/retrieval-tools", {"name": "keywords", "knowledge_source_id": synced["id"], "mode": "lexical"})
    res = api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": "express delivery keywords only"})
    assert res.status_code == 200 and res.json["data"]["results"]
    assert _rows(entity_id=tool["id"]) == []


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A randomly initialised 2-layer BERT cross-encoder with a vocab of the test documents' words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-ce")
    words = re.findall(r"\w+", " ".join(DOCS.values()).lower())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=128).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(7)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def test_rerank_is_one_row_with_the_pairs_word_pieces(app, api, synced, tiny_cross_encoder, minilm_tokenizer):
    from transformers import BertTokenizer

    query = "what does express shipping cost in euros"
    res = api.post("/api/models", json={"name": "tiny-ce", "provider": "local", "kind": "rerank",
                                        "model_id": str(tiny_cross_encoder)})
    assert res.status_code == 201, res.json
    rerank_model = res.json["data"]
    tool = _ready(api, "/api/retrieval-tools", {"name": "reranked", "knowledge_source_id": synced["id"],
                                                "top_k": 2, "rerank_model_id": rerank_model["id"]})
    res = api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": query})
    assert res.status_code == 200, res.json

    embedding, rerank = _rows(entity_id=tool["id"])
    assert (embedding.operation, embedding.prompt_tokens) == ("embedding", _pieces(minilm_tokenizer, query))
    assert (rerank.operation, rerank.entity_type, rerank.model_ref) == ("rerank", "retrieval_tool", rerank_model["id"])
    assert rerank.latency_ms > 0 and rerank.api_key_id == _admin_key_id()
    # Every chunk of this small index is a candidate, and all of them (fewer than rerank_top_n) are scored.
    passages = list(_chunk_texts(synced["id"]).values())
    ce_tokenizer = BertTokenizer.from_pretrained(str(tiny_cross_encoder))
    expected = sum(len(ce_tokenizer(query, p)["input_ids"]) for p in passages)  # [CLS] q [SEP] p [SEP]
    assert rerank.details == {"pairs": len(passages)} == {"pairs": 3}
    assert rerank.prompt_tokens == expected


# -- sync ----------------------------------------------------------------------------------------------

HANDBOOK = {  # texts used by no other test, so none of their chunks is in the embedding cache yet
    "leave.md": "# Annual leave\n\nStaff accrue two and a half days of leave per month worked. Unused days "
                "expire at the end of March of the following year.",
    "expenses.txt": "Expense claims above four hundred kroner need a receipt and the approval of a line manager.",
}


def _sync(api, source_id):
    run = api.post(f"/api/knowledge-sources/{source_id}/sync").json["data"]
    done = wait_for(lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    return done


def _chunk_texts(source_id, external_id=None) -> dict[str, str]:
    """Every chunk of the source's default index (of one document if named): {chunk id: text}."""
    from app.models import Document
    from app.services import indexes

    db.session.expire_all()
    source = db.session.get(KnowledgeSource, source_id)
    docs = db.session.execute(select(Document).where(Document.source_id == source_id)).scalars()
    ids = [f"{d.id}:{n}" for d in docs if external_id in (None, d.external_id) for n in range(d.chunk_count)]
    found = indexes.target(indexes.indexes_of(source)[0]).vectors.get_chunks(ids)
    assert len(found) == len(ids)
    return {cid: text for cid, (text, _meta, _vec) in found.items()}


def test_a_sync_is_one_row_per_index_and_an_unchanged_resync_none(app, api, worker, tmp_path, minilm_tokenizer):
    folder = tmp_path / "handbook"
    folder.mkdir()
    for name, text in HANDBOOK.items():
        (folder / name).write_text(text)
    source = api.post("/api/knowledge-sources", json={
        "name": "handbook", "type": "directory", "configuration": {"path": str(folder)}}).json["data"]
    run = _sync(api, source["id"])

    [row] = _rows(entity_id=source["id"])
    chunks = _chunk_texts(source["id"])
    index = source_index(source["id"])
    assert (row.entity_type, row.operation, row.model_ref) == ("knowledge_source", "embedding", _embedding_model_id())
    assert row.details == {"sync_run_id": run["id"], "index_id": index, "chunks_embedded": len(chunks), "cache_hits": 0}
    assert all(_pieces(minilm_tokenizer, t) <= 256 for t in chunks.values())  # nothing truncated
    assert row.prompt_tokens == sum(_pieces(minilm_tokenizer, t) for t in chunks.values())
    assert (row.completion_tokens, row.cached_tokens, row.cost, row.api_key_id) == (0, 0, 0.0, None)
    assert row.latency_ms > 0

    _sync(api, source["id"])  # nothing changed: nothing embedded, no row
    assert [r.id for r in _rows(entity_id=source["id"])] == [row.id]

    (folder / "expenses.txt").write_text(HANDBOOK["expenses.txt"] + " Claims older than ninety days are refused.")
    changed = _sync(api, source["id"])
    first, second = _rows(entity_id=source["id"])
    assert first.id == row.id
    changed_chunks = _chunk_texts(source["id"], "expenses.txt")
    assert second.details == {"sync_run_id": changed["id"], "index_id": index,
                              "chunks_embedded": len(changed_chunks), "cache_hits": 0}
    assert second.prompt_tokens == sum(_pieces(minilm_tokenizer, t) for t in changed_chunks.values())


def source_index(source_id) -> str:
    from app.services import indexes

    return indexes.indexes_of(db.session.get(KnowledgeSource, source_id))[0].id


# -- the engine's counts, without the app --------------------------------------------------------------


def test_a_long_text_counts_what_the_model_reads(minilm_tokenizer):
    from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    long = "word " * 600
    assert _pieces(minilm_tokenizer, long) == embedder.count_tokens(long) == 602
    assert embedder.count_input_tokens([long, QUERY]) == 256 + 8  # the model truncates at 256


def test_cached_embedder_reports_each_calls_own_usage(minilm_tokenizer):
    from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache
    from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
    from knowledge.types import ModelUsage

    cached = CachedEmbedder(SentenceTransformerEmbedder(), EmbeddingCache(":memory:"))
    a, b, c = "annual leave accrues monthly", "receipts are required", "claims expire"
    _, usage = cached.embed([a, b, a])  # a repeated text is embedded once
    assert usage == ModelUsage(inputs=2, tokens=_pieces(minilm_tokenizer, a) + _pieces(minilm_tokenizer, b))
    _, usage = cached.embed([a, c], count_cached=True)
    assert usage == ModelUsage(inputs=1, tokens=_pieces(minilm_tokenizer, c), cache_hits=1,
                               cached_tokens=_pieces(minilm_tokenizer, a))


def test_an_embedder_that_cannot_count_is_estimated_with_cl100k():
    import numpy as np

    from knowledge.embedders.usage import embed_with_usage
    from knowledge.tokenizer import count_tokens
    from knowledge.types import ModelUsage

    class Plain:
        name = "plain"

        def run(self, texts):
            return np.ones((len(texts), 4), dtype=np.float32)

    vectors, usage = embed_with_usage(Plain(), ["hello world", "tiktoken is great!"])
    assert vectors.shape == (2, 4)
    assert usage == ModelUsage(inputs=2, tokens=count_tokens("hello world") + count_tokens("tiktoken is great!"),
                               estimated=True) == ModelUsage(inputs=2, tokens=2 + 6, estimated=True)


def test_an_index_built_from_stored_text_is_metered_like_a_sync(app, api, worker, tmp_path, minilm_tokenizer):
    from app.models import IndexedDocument
    from app.services import indexes

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "travel.md").write_text("# Travel\n\nTrains are booked in second class for trips under six hours; "
                                      "longer trips may be booked in first class with the approval of a director.")
    source = api.post("/api/knowledge-sources", json={
        "name": "policies", "type": "directory", "configuration": {"path": str(folder)}}).json["data"]
    _sync(api, source["id"])
    res = api.post(f"/api/knowledge-sources/{source['id']}/indexes", json={"chunk_size": 16, "chunk_overlap": 4})
    assert res.status_code == 202, res.json
    index_id = res.json["data"]["id"]
    wait_for(lambda: api.get(f"/api/knowledge-sources/{source['id']}/indexes/{index_id}").json["data"]["status"],
             lambda s: s == "ready")

    build = [r for r in _rows(entity_id=source["id"]) if r.details.get("index_build")]
    assert len(build) == 1 and build[0].details["index_id"] == index_id
    db.session.expire_all()
    counts = db.session.execute(select(IndexedDocument.document_id, IndexedDocument.chunk_count)
                                .where(IndexedDocument.index_id == index_id)).all()
    ids = [f"{doc}:{n}" for doc, count in counts for n in range(count)]
    texts = [text for text, _meta, _vec in indexes.target(db.session.get(indexes.KnowledgeIndex, index_id))
             .vectors.get_chunks(ids).values()]
    assert len(texts) > 1  # 16-token chunks: new texts, none of them in the embedding cache
    assert build[0].details["chunks_embedded"] == len(set(texts))
    assert build[0].prompt_tokens == sum(_pieces(minilm_tokenizer, t) for t in set(texts))


def test_semantic_similarity_in_an_evaluation_is_metered(app, api, synced, worker, minilm_tokenizer):
    tool = _ready(api, "/api/rag-tools", {"name": "similar", "knowledge_source_ids": [synced["id"]],
                                          "answer_mode": "extractive", "top_k": 2})
    gold = "Parcels leave the warehouse within three working days."  # used by no other test
    evaluation = api.post("/api/evaluations", json={
        "name": "similarity", "type": "rag_tool", "target_id": tool["id"], "metrics": ["semantic_similarity"],
        "settings": {"concurrency": 1, "retries": 0},
        "test_cases": [{"input": "When do parcels ship?", "expected_output": gold}]}).json["data"]
    run = api.post(f"/api/evaluations/{evaluation['id']}/run").json["data"]
    done = wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    [result] = api.get(f"/api/evaluations/{evaluation['id']}/results").json["data"]["results"]
    rows = _rows(entity_type="evaluation", operation="embedding")
    assert len(rows) == 1 and rows[0].entity_id == evaluation["id"]
    # The answer and the gold are embedded together. The gold is new; the extractive answer may have been
    # embedded by an earlier test, and then it is a cache hit that costs nothing.
    hits = rows[0].details["cache_hits"]
    assert hits in (0, 1) and rows[0].details["texts_embedded"] == 2 - hits
    paid = [gold] if hits else [result["answer"], gold]
    assert rows[0].prompt_tokens == sum(_pieces(minilm_tokenizer, t) for t in paid)


def test_counting_tokens_does_not_load_the_model(minilm_tokenizer):
    from knowledge.embedders import sentence_transformer as st

    # A device key no other test loads a model under: counting must leave it unloaded (metering a query
    # served from the embedding cache would otherwise cost a model load).
    embedder = st.SentenceTransformerEmbedder(device="cpu:counting-only")
    assert embedder.count_input_tokens([QUERY, "word " * 600]) == _pieces(minilm_tokenizer, QUERY) + 256
    assert ((embedder.model_path, "cpu:counting-only") in st._MODELS) is False
