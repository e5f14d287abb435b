"""The usage ledger: cost from the model's pricing, hand-computed."""
import pytest

from app.models import LlmModel, UsageRecord
from app.services.usage import Usage, cost_of, record_usage


def _model(**pricing):
    return LlmModel(name="m", provider="openai", model_id="gpt-x", kind="chat", **pricing)


def test_cost_uses_input_output_and_cached_prices():
    model = _model(input_per_1k=0.5, output_per_1k=1.5, cached_input_per_1k=0.05)
    # 1,000 prompt tokens of which 400 cached, 200 completion tokens:
    # 600 * 0.5/1000 + 400 * 0.05/1000 + 200 * 1.5/1000 = 0.3 + 0.02 + 0.3 = 0.62
    assert cost_of(model, Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)) == pytest.approx(0.62)


def test_cached_tokens_fall_back_to_input_price():
    model = _model(input_per_1k=2.0, output_per_1k=0.0, cached_input_per_1k=None)
    assert cost_of(model, Usage(prompt_tokens=500, cached_tokens=500)) == pytest.approx(1.0)


def test_free_and_unknown_models_cost_nothing():
    assert cost_of(None, Usage(prompt_tokens=10_000)) == 0.0
    assert cost_of(_model(input_per_1k=0.0, output_per_1k=0.0), Usage(prompt_tokens=10_000)) == 0.0


def test_record_usage_writes_one_row(app):
    from app.extensions import db

    model = _model(input_per_1k=1.0, output_per_1k=2.0)
    db.session.add(model)
    db.session.commit()
    record_usage(entity_type="rag_tool", entity_id="rag_1", operation="chat", model=model,
                 usage=Usage(prompt_tokens=300, completion_tokens=100), latency_ms=12.5, api_key_id="key_1")
    rows = db.session.execute(db.select(UsageRecord)).scalars().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.entity_type, row.entity_id, row.model_ref, row.model_name) == ("rag_tool", "rag_1", model.id, "gpt-x")
    assert row.cost == pytest.approx(0.5)  # 300 * 1/1000 + 100 * 2/1000
    assert row.created_at.tzinfo is not None
