"""Keyset (cursor) pagination next to page/limit: the same rows, nothing skipped or repeated when rows are
inserted between pages, clear errors for a bad cursor, and a documents list that is an index range scan
at any depth (bench/scale.py measures the time; this checks the query plan)."""
import pytest
from sqlalchemy import event

from app.extensions import db
from app.models import Document


def _keys(api, n: int, prefix: str = "k") -> None:
    for i in range(n):
        assert api.post("/api/keys", json={"name": f"{prefix}{i:02d}", "role": "viewer"}).status_code == 201


def _walk(api, query: str) -> list[list[str]]:
    """Every page of /api/keys by cursor: the names on each page."""
    pages, cursor = [], None
    while True:
        res = api.get(f"/api/keys?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert res.status_code == 200, res.json
        pages.append([k["name"] for k in res.json["data"]])
        cursor = res.json["pagination"]["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize("sort,order", [("name", "asc"), ("name", "desc"), ("created_at", "desc"),
                                        ("created_at", "asc")])
def test_cursor_pages_are_the_offset_pages(api, sort, order):
    _keys(api, 7)
    query = f"limit=3&sort={sort}&order={order}"
    by_offset = [[k["name"] for k in api.get(f"/api/keys?{query}&page={p}").json["data"]] for p in (1, 2, 3)]
    assert _walk(api, query) == by_offset  # 8 keys (7 + the fixture's admin key): 3 + 3 + 2
    assert sum(len(p) for p in by_offset) == 8


def test_pagination_reports_page_and_next_cursor(api):
    _keys(api, 4)
    first = api.get("/api/keys?limit=2&sort=name&order=asc").json["pagination"]
    assert first["page"] == 1 and first["total"] == 5 and first["next_cursor"]
    second = api.get(f"/api/keys?limit=2&sort=name&order=asc&cursor={first['next_cursor']}").json["pagination"]
    assert second["page"] == 2 and second["total"] == 5  # the page a cursor leads to, counted for clients
    third = api.get(f"/api/keys?limit=2&sort=name&order=asc&cursor={second['next_cursor']}").json["pagination"]
    assert third["page"] == 3 and third["next_cursor"] is None


def test_inserts_between_pages_never_skip_or_repeat_rows(api):
    """Newest first: rows created while a client pages go in front. Offset paging then shows the last row of
    page 1 again on page 2; the cursor continues exactly after the last row shown."""
    _keys(api, 6)
    query = "limit=3&sort=created_at&order=desc"
    page_1 = api.get(f"/api/keys?{query}").json
    names_1 = [k["name"] for k in page_1["data"]]
    _keys(api, 2, prefix="new")  # a concurrent writer
    by_cursor = api.get(f"/api/keys?{query}&cursor={page_1['pagination']['next_cursor']}").json
    by_offset = api.get(f"/api/keys?{query}&page=2").json
    names_2 = [k["name"] for k in by_cursor["data"]]
    assert not set(names_1) & set(names_2)
    assert set(names_1) & {k["name"] for k in by_offset["data"]}  # what the cursor avoids
    rest = _walk_from(api, query, by_cursor["pagination"]["next_cursor"])
    seen = names_1 + names_2 + rest
    assert len(seen) == len(set(seen)) == 7  # the 6 keys and the admin key: each exactly once, no "new*"


def _walk_from(api, query: str, cursor: str | None) -> list[str]:
    names = []
    while cursor:
        body = api.get(f"/api/keys?{query}&cursor={cursor}").json
        names += [k["name"] for k in body["data"]]
        cursor = body["pagination"]["next_cursor"]
    return names


def test_bad_cursors_are_422_with_the_field_named(api):
    _keys(api, 3)
    cursor = api.get("/api/keys?limit=1&sort=name&order=asc").json["pagination"]["next_cursor"]
    for query in ("cursor=not-a-cursor", "cursor=e30", f"cursor={cursor}",  # {} ; made for sort=name asc
                  f"sort=name&order=desc&cursor={cursor}", "cursor=" + "A" * 2001):
        res = api.get(f"/api/keys?limit=1&{query}")
        assert res.status_code == 422, (query, res.json)
        assert res.json["success"] is False and "cursor" in str(res.json["error"]["details"])


def test_cursor_of_a_tampered_value_type_is_422_not_500(api):
    import base64
    import json

    for value in (12, None, True, "yesterday", "2026-12-07T10:00:00"):  # the last one is naive
        raw = json.dumps({"p": 2, "s": "created_at", "o": "desc", "v": value, "i": "key_x"}).encode()
        res = api.get(f"/api/keys?cursor={base64.urlsafe_b64encode(raw).decode()}")
        assert res.status_code == 422, (value, res.json)
    for value in (10**30, float("nan")):  # a numeric sort column (prompt template versions) gets these
        raw = json.dumps({"p": 2, "s": "ordinal", "o": "asc", "v": value, "i": "x"}).encode()
        assert _number_cursor_status(raw) == 422
    raw = json.dumps({"p": 2, "s": "created_at", "o": "desc", "v": "0001-01-01T00:00:00+14:00", "i": "k"}).encode()
    assert api.get(f"/api/keys?cursor={base64.urlsafe_b64encode(raw).decode()}").status_code == 422
    raw = json.dumps({"p": 2, "s": "name", "o": "asc", "v": "a\u0000b", "i": "key_x"}).encode()
    assert api.get(f"/api/keys?sort=name&order=asc&cursor={base64.urlsafe_b64encode(raw).decode()}").status_code == 422


def test_openapi_documents_cursor_and_next_cursor(api):
    spec = api.get("/api/openapi.json").json
    params = {p["name"] for p in spec["paths"]["/api/knowledge-sources/{source_id}/documents"]["get"]["parameters"]}
    assert {"page", "limit", "cursor"} <= params
    assert "next_cursor" in spec["components"]["schemas"]["Pagination"]["properties"]


def _source_with_documents(api, n: int) -> str:
    source = api.post("/api/knowledge-sources", json={"name": "many", "type": "file"}).json["data"]
    db.session.add_all(Document(source_id=source["id"], external_id=f"f{i}/f{i}", name=f"f{i}", status="indexed")
                       for i in range(n))
    db.session.commit()
    return source["id"]


def test_documents_list_pages_by_cursor_in_the_same_order(api):
    source_id = _source_with_documents(api, 25)
    url = f"/api/knowledge-sources/{source_id}/documents?limit=10"
    by_offset = [d["id"] for p in (1, 2, 3) for d in api.get(f"{url}&page={p}").json["data"]]
    by_cursor, cursor = [], None
    while True:
        body = api.get(url + (f"&cursor={cursor}" if cursor else "")).json
        by_cursor += [d["id"] for d in body["data"]]
        if not (cursor := body["pagination"]["next_cursor"]):
            break
    assert by_cursor == by_offset and len(set(by_cursor)) == 25


def test_documents_cursor_page_is_an_index_range_scan(api, app):
    """The statement a cursor page runs reads ix_documents_source_created in order: no sort of the source's
    documents (a temporary B-tree), so its cost does not grow with the source (0017_scale)."""
    source_id = _source_with_documents(api, 3)
    cursor = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=1").json["pagination"]["next_cursor"]
    statements = []

    def capture(conn, cursor_, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM documents" in statement \
                and "count(" not in statement:
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert api.get(f"/api/knowledge-sources/{source_id}/documents?limit=1&cursor={cursor}").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = statements[-1]
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = " | ".join(row[-1] for row in rows)
            assert "TEMP B-TREE" not in plan, plan
        else:  # a few rows would be read sequentially; forbid that to see whether the index can serve it
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_sort = off")
            plan = " | ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "Sort" not in plan, plan
    assert "ix_documents_source_created" in plan, plan


def test_a_documents_page_never_reads_the_documents_text(api):
    """A page lists 20 documents; their stored text (every section of a 500-page PDF) is not part of the
    listing, so it is not read: a page costs the same whatever the documents hold."""
    source_id = _source_with_documents(api, 3)
    for document in db.session.query(Document).filter_by(source_id=source_id):
        document.sections = [{"text": "x" * 100_000, "page": 1, "heading_path": [], "metadata": {}}]
    db.session.commit()
    selects = []

    def capture(conn, cursor_, statement, parameters, context, executemany):
        if "FROM documents" in statement:
            selects.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        body = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=2").json
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(body["data"]) == 2
    assert selects and not [s for s in selects if "sections" in s], selects
    # The text is still there for what needs it (a new index re-chunks from it).
    document = db.session.get(Document, body["data"][0]["id"])
    assert len(document.sections[0]["text"]) == 100_000


def _number_cursor_status(raw: bytes) -> int:
    """The status a cursor gets on a list sorted by an integer column, checked at the decoder the lists use."""
    import base64

    from app.common.pagination import decode_cursor
    from app.errors import ValidationFailed
    from app.models import EvaluationCase

    try:
        decode_cursor(base64.urlsafe_b64encode(raw).decode(), {"sort": "ordinal", "order": "asc"},
                      EvaluationCase.ordinal)
    except ValidationFailed as exc:
        return exc.status
    return 200
