"""Indexes need a model Magnet can embed with; a source stays deletable whatever its indexes' models."""
from app.extensions import db
from app.models import LlmModel
from app.services.llm_models import ensure_builtin_models

OPENAI_EMBEDDING = {"name": "remote-embed", "provider": "openai", "model_id": "text-embedding-3-small",
                    "kind": "embedding"}


def _source(api) -> dict:
    return api.post("/api/knowledge-sources", json={"name": "files", "type": "file"}).json["data"]


def test_an_index_on_a_model_magnet_cannot_embed_with_is_refused_up_front(api):
    model = api.post("/api/models", json=OPENAI_EMBEDDING).json["data"]
    source = _source(api)
    res = api.post(f"/api/knowledge-sources/{source['id']}/indexes", json={"embedding_model_id": model["id"]})
    assert res.status_code == 422, res.json
    assert "embedding_model_id" in res.json["error"]["details"]["fields"]


def test_a_source_whose_index_model_can_no_longer_embed_is_still_deletable(api):
    ensure_builtin_models()
    model = api.post("/api/models", json={**OPENAI_EMBEDDING, "provider": "local", "model_id": "/nowhere"}).json["data"]
    source = _source(api)
    res = api.post(f"/api/knowledge-sources/{source['id']}/indexes", json={"embedding_model_id": model["id"]})
    assert res.status_code == 202, res.json
    db.session.get(LlmModel, model["id"]).provider = "openai"  # e.g. a model changed after the index was made
    db.session.commit()
    assert api.delete(f"/api/knowledge-sources/{source['id']}").status_code == 200
    assert api.get(f"/api/knowledge-sources/{source['id']}").status_code == 404
