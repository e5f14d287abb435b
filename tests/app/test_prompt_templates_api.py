"""/api/prompt-templates: CRUD, placeholder validation, immutable versions, single-pass rendering."""
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import PromptTemplateVersion
from knowledge.tokenizer import count_tokens

BASE = "/api/prompt-templates"
GREETING = {
    "name": "greeting",
    "description": "Says hello",
    "type": "user",
    "template": "Hello {{name}}, welcome to {{ place }}!",
    "variables": ["name", "place"],
}
RAG = {
    "name": "rag-answer",
    "type": "rag",
    "template": "Context:\n{{context}}\n\nQuestion: {{query}}",
    "variables": ["context", "query"],
}


def create(api, **overrides):
    res = api.post(BASE, json={**GREETING, **overrides})
    assert res.status_code == 201, res.json
    return res.json["data"]


def error(res, status):
    assert res.status_code == status, res.json
    assert res.json["success"] is False
    return res.json["error"]


def test_create_and_get(api):
    data = create(api)
    assert data["id"].startswith("pt_")
    assert data["version"] == 1
    assert data["variables"] == ["name", "place"]
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    res = api.get(f"{BASE}/{data['id']}")
    assert res.status_code == 200
    assert res.json == {"success": True, "data": data}


def test_create_stores_version_1(api):
    template_id = create(api)["id"]
    res = api.get(f"{BASE}/{template_id}/versions/1")
    assert res.status_code == 200
    version = res.json["data"]
    assert version["version"] == 1 and version["template_id"] == template_id
    assert version["template"] == GREETING["template"] and version["name"] == "greeting"


def test_list_pagination_sort_and_type_filter(api):
    for name in ("charlie", "alpha", "bravo"):
        create(api, name=name)
    create(api, **RAG)
    res = api.get(f"{BASE}?sort=name&order=asc&limit=2")
    assert res.status_code == 200
    assert [t["name"] for t in res.json["data"]] == ["alpha", "bravo"]
    pagination = dict(res.json["pagination"])
    assert pagination.pop("next_cursor")  # a page follows
    assert pagination == {"page": 1, "limit": 2, "total": 4}
    page2 = api.get(f"{BASE}?sort=name&order=asc&limit=2&page=2").json["data"]
    assert [t["name"] for t in page2] == ["charlie", "rag-answer"]
    rag = api.get(f"{BASE}?type=rag").json
    assert [t["name"] for t in rag["data"]] == ["rag-answer"] and rag["pagination"]["total"] == 1
    newest_first = api.get(f"{BASE}").json["data"]
    assert [t["name"] for t in newest_first] == ["rag-answer", "bravo", "alpha", "charlie"]
    # updated_at sorts the most recently changed first
    alpha_id = next(t["id"] for t in newest_first if t["name"] == "alpha")
    assert api.put(f"{BASE}/{alpha_id}", json={"description": "changed"}).status_code == 200
    assert api.get(f"{BASE}?sort=updated_at").json["data"][0]["name"] == "alpha"


@pytest.mark.parametrize("query", ["sort=type", "type=assistant", "limit=101", "page=0"])
def test_bad_list_arguments_are_422(api, query):
    assert error(api.get(f"{BASE}?{query}"), 422)["code"] == "validation_failed"


def test_duplicate_name_is_409_on_create_and_update(api):
    create(api)
    assert error(api.post(BASE, json=GREETING), 409)["code"] == "duplicate_name"
    other = create(api, name="other")["id"]
    err = error(api.put(f"{BASE}/{other}", json={"name": "greeting"}), 409)
    assert err["code"] == "duplicate_name" and err["details"] == {"name": "greeting"}


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        ({"template": "Hi {{name}} from {{ city }}", "variables": ["name"]}, {"undeclared": ["city"]}),
        ({"template": "Hi {{name}}", "variables": ["name", "place", "mood"]}, {"unused": ["place", "mood"]}),
        ({"template": "Hi {{name}}", "variables": ["place"]}, {"undeclared": ["name"], "unused": ["place"]}),
        ({"type": "rag", "template": "Q: {{query}}", "variables": ["query"]}, {"required": ["context"]}),
        ({"type": "rag", "template": "nothing", "variables": []}, {"required": ["context", "query"]}),
        ({"template": "{{a}} {{a}}", "variables": ["a", "a"]}, {"duplicate": ["a"]}),
    ],
)
def test_placeholder_rules_are_422_naming_the_variables(api, overrides, details):
    err = error(api.post(BASE, json={**GREETING, **overrides}), 422)
    assert err["code"] == "validation_failed"
    assert err["details"] == details


@pytest.mark.parametrize("template", ["", "   \n "])
def test_empty_template_is_rejected(api, template):
    err = error(api.post(BASE, json={**GREETING, "template": template, "variables": []}), 422)
    assert "template" in err["details"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GREETING, "colour": "red"}, "colour"),
        ({**GREETING, "type": "assistant"}, "type"),
        ({**GREETING, "name": 42}, "name"),
        ({**GREETING, "variables": "name"}, "variables"),
        ({**GREETING, "variables": ["name", "not an identifier"]}, "variables"),
        ({k: v for k, v in GREETING.items() if k != "template"}, "template"),
    ],
)
def test_unknown_fields_and_wrong_types_are_422(api, body, field):
    err = error(api.post(BASE, json=body), 422)
    assert err["code"] == "validation_failed"
    assert field in err["details"]["fields"]


def test_updates_make_versions_and_old_versions_never_change(api):
    template_id = create(api)["id"]
    res = api.put(f"{BASE}/{template_id}", json={"template": "Bye {{name}}, see you in {{place}}.", "type": "user"})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["version"] == 2 and data["description"] == "Says hello"  # untouched fields keep their value
    assert api.put(f"{BASE}/{template_id}", json={"description": None}).json["data"]["version"] == 3

    v1 = api.get(f"{BASE}/{template_id}/versions/1").json["data"]
    assert v1["template"] == GREETING["template"] and v1["description"] == "Says hello"
    v2 = api.get(f"{BASE}/{template_id}/versions/2").json["data"]
    assert v2["template"] == "Bye {{name}}, see you in {{place}}." and v2["description"] == "Says hello"
    v3 = api.get(f"{BASE}/{template_id}/versions/3").json["data"]
    assert v3["description"] is None

    listed = api.get(f"{BASE}/{template_id}/versions?limit=2").json
    assert [v["version"] for v in listed["data"]] == [3, 2]
    pagination = dict(listed["pagination"])
    assert pagination.pop("next_cursor")  # a page follows
    assert pagination == {"page": 1, "limit": 2, "total": 3}
    assert [v["version"] for v in api.get(f"{BASE}/{template_id}/versions?limit=2&page=2").json["data"]] == [1]


def test_update_without_changes_makes_no_version(api):
    created = create(api)
    res = api.put(f"{BASE}/{created['id']}", json={"name": "greeting", "variables": ["name", "place"]})
    assert res.status_code == 200
    assert res.json["data"]["version"] == 1 and res.json["data"]["updated_at"] == created["updated_at"]
    assert api.put(f"{BASE}/{created['id']}", json={}).json["data"]["version"] == 1
    assert api.get(f"{BASE}/{created['id']}/versions").json["pagination"]["total"] == 1


def test_update_is_validated_against_the_merged_template(api):
    template_id = create(api)["id"]
    err = error(api.put(f"{BASE}/{template_id}", json={"template": "Hi {{name}} {{mood}}"}), 422)
    assert err["details"] == {"undeclared": ["mood"], "unused": ["place"]}
    assert error(api.put(f"{BASE}/{template_id}", json={"template": ""}), 422)["code"] == "validation_failed"
    err = error(api.put(f"{BASE}/{template_id}", json={"nickname": "x"}), 422)
    assert "nickname" in err["details"]["fields"]
    assert api.get(f"{BASE}/{template_id}").json["data"]["version"] == 1


def test_type_cannot_change(api):
    template_id = create(api)["id"]
    err = error(api.put(f"{BASE}/{template_id}", json={"type": "system"}), 409)
    assert err["code"] == "immutable_field" and err["details"]["fields"] == ["type"]
    assert api.get(f"{BASE}/{template_id}").json["data"]["type"] == "user"


def test_render_counts_tokens_of_the_rendered_text(api):
    template_id = create(api)["id"]
    res = api.post(f"{BASE}/{template_id}/render", json={"variables": {"name": "Ada", "place": "Paris"}})
    assert res.status_code == 200, res.json
    expected = "Hello Ada, welcome to Paris!"
    assert res.json["data"] == {
        "text": expected,
        "token_count": count_tokens(expected),
        "version": 1,
        "template_id": template_id,
    }


def test_render_numbers_and_booleans_with_str(api):
    template_id = create(api, template="{{n}} {{x}} {{ok}}", variables=["n", "x", "ok"])["id"]
    res = api.post(f"{BASE}/{template_id}/render", json={"variables": {"n": 3, "x": 2.5, "ok": True}})
    assert res.json["data"]["text"] == "3 2.5 True"


def test_render_an_old_version(api):
    template_id = create(api)["id"]
    api.put(f"{BASE}/{template_id}", json={"template": "Bye {{name}}!", "variables": ["name"]})
    current = api.post(f"{BASE}/{template_id}/render", json={"variables": {"name": "Ada"}}).json["data"]
    assert current["text"] == "Bye Ada!" and current["version"] == 2
    res = api.post(f"{BASE}/{template_id}/render", json={"variables": {"name": "Ada", "place": "Rome"}, "version": 1})
    assert res.status_code == 200, res.json
    assert res.json["data"]["text"] == "Hello Ada, welcome to Rome!" and res.json["data"]["version"] == 1


def test_render_missing_and_unexpected_variables(api):
    template_id = create(api)["id"]
    err = error(api.post(f"{BASE}/{template_id}/render", json={"variables": {"name": "Ada"}}), 422)
    assert err["details"] == {"missing": ["place"]}
    body = {"variables": {"name": "Ada", "place": "Paris", "mood": "happy", "age": 36}}
    err = error(api.post(f"{BASE}/{template_id}/render", json=body), 422)
    assert err["details"] == {"unexpected": ["age", "mood"]}


def test_render_is_a_single_pass(api):
    template_id = create(api)["id"]
    values = {"name": "{{place}}", "place": "{{ name }} and \\1"}
    res = api.post(f"{BASE}/{template_id}/render", json={"variables": values})
    assert res.json["data"]["text"] == "Hello {{place}}, welcome to {{ name }} and \\1!"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"variables": {"name": None, "place": "x"}}, "variables"),
        ({"variables": {"name": ["Ada"], "place": "x"}}, "variables"),
        ({"variables": {"name": {"first": "Ada"}, "place": "x"}}, "variables"),
        ({"variables": ["Ada", "x"]}, "variables"),
        ({"variables": {"name": "Ada", "place": "x"}, "version": "1"}, "version"),
        ({"variables": {"name": "Ada", "place": "x"}, "version": 0}, "version"),
        ({"variables": {"name": "Ada", "place": "x"}, "format": "chat"}, "format"),
    ],
)
def test_render_wrong_types_are_422(api, body, field):
    template_id = create(api)["id"]
    err = error(api.post(f"{BASE}/{template_id}/render", json=body), 422)
    assert field in err["details"]["fields"]


def test_not_found(api):
    template_id = create(api)["id"]
    assert error(api.get(f"{BASE}/pt_missing"), 404)["code"] == "not_found"
    assert error(api.put(f"{BASE}/pt_missing", json={"description": "x"}), 404)["code"] == "not_found"
    assert error(api.delete(f"{BASE}/pt_missing"), 404)["code"] == "not_found"
    assert error(api.get(f"{BASE}/pt_missing/versions"), 404)["code"] == "not_found"
    assert error(api.get(f"{BASE}/{template_id}/versions/2"), 404)["details"]["version"] == 2
    assert error(api.post(f"{BASE}/pt_missing/render", json={"variables": {}}), 404)["code"] == "not_found"
    body = {"variables": {"name": "Ada", "place": "x"}, "version": 7}
    assert error(api.post(f"{BASE}/{template_id}/render", json=body), 404)["code"] == "not_found"


def test_delete_removes_the_versions(api):
    template_id = create(api)["id"]
    api.put(f"{BASE}/{template_id}", json={"description": "v2"})
    res = api.delete(f"{BASE}/{template_id}")
    assert res.status_code == 200 and res.json == {"success": True, "message": "prompt template deleted"}
    assert error(api.get(f"{BASE}/{template_id}"), 404)["code"] == "not_found"
    remaining = db.session.execute(
        select(func.count()).select_from(PromptTemplateVersion).where(PromptTemplateVersion.template_id == template_id)
    ).scalar_one()
    assert remaining == 0


def test_viewer_can_read_but_not_write(api, make_key):
    template_id = create(api)["id"]
    viewer = make_key("viewer")
    assert api.get(BASE, key=viewer).status_code == 200
    assert api.get(f"{BASE}/{template_id}", key=viewer).status_code == 200
    assert api.get(f"{BASE}/{template_id}/versions", key=viewer).status_code == 200
    assert api.get(f"{BASE}/{template_id}/versions/1", key=viewer).status_code == 200
    writes = [
        ("post", BASE, {**GREETING, "name": "new"}),
        ("put", f"{BASE}/{template_id}", {"description": "x"}),
        ("delete", f"{BASE}/{template_id}", None),
        ("post", f"{BASE}/{template_id}/render", {"variables": {"name": "Ada", "place": "x"}}),
    ]
    for method, path, body in writes:
        err = error(getattr(api, method)(path, key=viewer, json=body), 403)
        assert err["code"] == "insufficient_role"
    operator = make_key("operator")
    assert api.post(BASE, key=operator, json={**GREETING, "name": "by-operator"}).status_code == 201
    assert error(api.client.get(BASE), 401)["code"] == "missing_api_key"


def test_seed_creates_the_default_rag_template(app):
    from app.services.seed import seed_demo_data

    assert "prompt template: default-rag" in seed_demo_data()
    assert "prompt template: default-rag" not in seed_demo_data()  # idempotent
