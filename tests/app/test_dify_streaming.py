"""Dify's metadata conditions are checked row by row in Python: the documents must be streamed in batches,
never loaded all at once (a source may hold 400k documents; bench/scale.py)."""
from types import SimpleNamespace

from sqlalchemy.engine import Result

from app.extensions import db
from app.models import Document
from app.services import dify


def test_document_conditions_stream_the_documents(api, monkeypatch):
    source = api.post("/api/knowledge-sources", json={"name": "big", "type": "file"}).json["data"]
    db.session.add_all(Document(source_id=source["id"], external_id=f"d{i}/guide-{i}.md", name=f"guide-{i}.md",
                                status="indexed") for i in range(dify._STREAM_BATCH + 5))
    db.session.commit()
    monkeypatch.setattr(dify, "_STREAM_BATCH", 100)  # several batches from a small table

    def loaded_whole(self, *args, **kwargs):
        raise AssertionError("the documents were loaded all at once")

    monkeypatch.setattr(Result, "all", loaded_whole)
    conditions, logical = dify.parse({"conditions": [{"name": "name", "comparison_operator": "end with",
                                                      "value": "7.md"}]})
    ids = dify._document_ids(SimpleNamespace(knowledge_source_ids=[source["id"]]), conditions, logical)
    monkeypatch.undo()
    expected = db.session.execute(db.select(Document.id).where(Document.source_id == source["id"],
                                                               Document.name.like("%7.md"))).scalars().all()
    assert sorted(ids) == sorted(expected) and len(ids) == 100  # 7, 17, ..., 997
