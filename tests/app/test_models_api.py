"""/api/models: CRUD, write-only encrypted keys, one default per kind, built-ins."""
from sqlalchemy import text

from app.extensions import db
from app.services.llm_models import ensure_builtin_models

OPENAI_LIKE = {
    "name": "vllm-llama",
    "provider": "openai_compatible",
    "model_id": "meta-llama/Llama-3-8B",
    "endpoint": "http://127.0.0.1:8000/v1",
    "api_key": "sk-very-secret-value-1234",
    "kind": "chat",
    "context_window": 8192,
    "pricing": {"input_per_1k": 0.5, "output_per_1k": 1.5},
}


def test_create_returns_masked_key_and_stores_it_encrypted(api):
    res = api.post("/api/models", json=OPENAI_LIKE)
    assert res.status_code == 201, res.json
    data = res.json["data"]
    assert data["id"].startswith("model_")
    assert data["has_api_key"] is True
    assert "api_key" not in data
    assert "sk-very-secret-value-1234" not in res.get_data(as_text=True)
    assert data["api_key_masked"] == "****1234"
    assert data["pricing"] == {"input_per_1k": 0.5, "output_per_1k": 1.5, "cached_input_per_1k": None}
    assert data["created_at"].endswith("Z")

    stored = db.session.execute(text("SELECT api_key_encrypted FROM llm_models WHERE id = :id"), {"id": data["id"]}).scalar_one()
    assert "sk-very-secret" not in stored
    from app.crypto import decrypt

    assert decrypt(stored) == "sk-very-secret-value-1234"


def test_duplicate_name_is_409(api):
    assert api.post("/api/models", json=OPENAI_LIKE).status_code == 201
    res = api.post("/api/models", json=OPENAI_LIKE)
    assert res.status_code == 409
    assert res.json["error"]["code"] == "duplicate_name"


def test_openai_compatible_needs_endpoint(api):
    body = {k: v for k, v in OPENAI_LIKE.items() if k != "endpoint"}
    res = api.post("/api/models", json=body)
    assert res.status_code == 422
    assert "endpoint" in res.json["error"]["details"]["fields"]


def test_update_changes_only_sent_fields_and_can_clear_key(api):
    model_id = api.post("/api/models", json=OPENAI_LIKE).json["data"]["id"]
    res = api.put(f"/api/models/{model_id}", json={"pricing": {"input_per_1k": 0.25, "output_per_1k": 1.0}})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["pricing"]["input_per_1k"] == 0.25
    assert data["context_window"] == 8192 and data["has_api_key"] is True
    res = api.put(f"/api/models/{model_id}", json={"api_key": None})
    assert res.json["data"]["has_api_key"] is False and res.json["data"]["api_key_masked"] is None


def test_one_default_per_kind(api):
    ensure_builtin_models()
    builtin_chat = api.get("/api/models?kind=chat").json["data"]
    assert [m["is_default"] for m in builtin_chat] == [True]
    new_id = api.post("/api/models", json={**OPENAI_LIKE, "is_default": True}).json["data"]["id"]
    chat = {m["id"]: m["is_default"] for m in api.get("/api/models?kind=chat").json["data"]}
    assert chat[new_id] is True
    assert sum(chat.values()) == 1
    # the embedding default is untouched
    assert [m["is_default"] for m in api.get("/api/models?kind=embedding").json["data"]] == [True]


def test_builtins_exist_and_are_protected(api):
    ensure_builtin_models()
    ensure_builtin_models()  # idempotent
    models = api.get("/api/models?sort=name&order=asc").json["data"]
    assert [(m["name"], m["provider"], m["kind"]) for m in models] == [
        ("local-extractive", "local", "chat"),
        ("local-minilm", "local", "embedding"),
    ]
    builtin = models[0]["id"]
    assert api.delete(f"/api/models/{builtin}").status_code == 409
    res = api.put(f"/api/models/{builtin}", json={"provider": "openai"})
    assert res.status_code == 409 and res.json["error"]["code"] == "builtin_model"


def test_model_in_use_by_agent_cannot_be_deleted(api):
    from app.models import Agent

    model_id = api.post("/api/models", json=OPENAI_LIKE).json["data"]["id"]
    db.session.add(Agent(name="helpdesk", model_id=model_id))
    db.session.commit()
    res = api.delete(f"/api/models/{model_id}")
    assert res.status_code == 409
    assert res.json["error"]["details"]["agents"] == ["helpdesk"]


def test_delete_and_404(api):
    model_id = api.post("/api/models", json=OPENAI_LIKE).json["data"]["id"]
    res = api.delete(f"/api/models/{model_id}")
    assert res.status_code == 200 and res.json == {"success": True, "message": "model deleted"}
    res = api.get(f"/api/models/{model_id}")
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"


def test_local_model_rejects_api_key(api):
    res = api.post("/api/models", json={"name": "x", "provider": "local", "model_id": "/models/ce", "kind": "rerank", "api_key": "abc"})
    assert res.status_code == 422
