"""Agents as code (POST /api/agents/sync, `magnet agents sync|export`) and the reports_to hierarchy."""
import json

import yaml
from click.testing import CliRunner
from flask.cli import ScriptInfo

from app.cli import main

DOCUMENT = """
agents:
  - name: support-lead
    role: Leads customer support
    soul: You lead the support team. Delegate billing questions.
    model: fake-gpt
    tools: [ask_agent, recall, remember]
    temperature: 0.1
  - name: billing
    role: Billing specialist
    system_prompt: You answer billing questions.
    model: fake-gpt
    tools: [kb]
    reports_to: support-lead
"""


def _cli(app, *args):
    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), catch_exceptions=False)
    return result


def _agents(api):
    return {a["name"]: a for a in api.get("/api/agents", query_string={"limit": 100}).json["data"]}


def test_hierarchy_links_by_name_or_id_and_refuses_cycles(api, chat_model):
    def make(name, **fields):
        res = api.post("/api/agents", json={"name": name, "model_id": chat_model["id"], **fields})
        assert res.status_code == 201, res.json
        return res.json["data"]

    ceo = make("ceo")
    cto = make("cto", reports_to="ceo")
    dev = make("dev", reports_to=cto["id"])
    assert (cto["reports_to"], dev["reports_to"]) == (ceo["id"], cto["id"])

    cycle = api.put(f"/api/agents/{ceo['id']}", json={"reports_to": "dev"})
    assert cycle.status_code == 422 and cycle.json["error"]["code"] == "hierarchy_cycle", cycle.json
    assert "ceo -> dev -> cto -> ceo" in cycle.json["error"]["message"]
    assert api.put(f"/api/agents/{dev['id']}", json={"reports_to": dev["id"]}).status_code == 422
    unknown = api.post("/api/agents", json={"name": "x", "model_id": chat_model["id"], "reports_to": "ghost"})
    assert unknown.status_code == 422 and "reports_to" in unknown.json["error"]["details"]["fields"]

    tree = api.get("/api/agents/hierarchy").json["data"]
    assert [(n["name"], [(r["name"], [d["name"] for d in r["reports"]]) for r in n["reports"]]) for n in tree] == [
        ("ceo", [("cto", ["dev"])])]
    # Deleting a manager leaves its reports at the top.
    assert api.delete(f"/api/agents/{cto['id']}").status_code == 200
    assert sorted(n["name"] for n in api.get("/api/agents/hierarchy").json["data"]) == ["ceo", "dev"]


def test_sync_checks_every_entry_before_changing_anything(api, chat_model, kb_tool):
    document = yaml.safe_load(DOCUMENT)
    document["agents"][1]["model"] = "no-such-model"
    document["agents"].append({"name": "intern", "tools": ["ghost-tool"], "reports_to": "nobody"})
    res = api.post("/api/agents/sync", json=document)
    assert res.status_code == 422, res.json
    fields = res.json["error"]["details"]["fields"]
    assert set(fields) == {"agents[1] (billing).model", "agents[2] (intern).tools", "agents[2] (intern).reports_to"}
    assert _agents(api) == {}  # nothing was created, not even the valid first entry

    schema_error = api.post("/api/agents/sync", json={"agents": [{"name": "x", "colour": "red"}]})
    assert schema_error.status_code == 422 and schema_error.json["success"] is False
    cycle = api.post("/api/agents/sync", json={"agents": [{"name": "a", "reports_to": "b"},
                                                          {"name": "b", "reports_to": "a"}]})
    assert cycle.status_code == 422 and "cycle" in json.dumps(cycle.json["error"]["details"])
    assert _agents(api) == {}


def test_sync_creates_updates_and_round_trips_through_export(api, app, chat_model, kb_tool, tmp_path):
    first = api.post("/api/agents/sync", json=yaml.safe_load(DOCUMENT))
    assert first.status_code == 200, first.json
    assert first.json["data"] == {"synced": 2, "created": 2, "updated": 0, "unchanged": 0,
                                  "agents": {"support-lead": "created", "billing": "created"}}
    agents = _agents(api)
    lead, billing = agents["support-lead"], agents["billing"]
    assert lead["system_prompt"] == "You lead the support team. Delegate billing questions."
    assert lead["tools"] == ["ask_agent", "recall", "remember"] and lead["model_id"] == chat_model["id"]
    assert billing["tools"] == [kb_tool["id"]] and billing["reports_to"] == lead["id"]

    # Through the CLI: the same document as YAML, changed in one place; then export and sync back.
    changed = yaml.safe_load(DOCUMENT)
    changed["agents"][1]["system_prompt"] = "You answer billing and invoicing questions."
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump(changed))
    result = _cli(app, "agents", "sync", str(tmp_path / "agents.yaml"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["agents"] == {"support-lead": "unchanged", "billing": "updated"}
    soul = api.get(f"/api/agents/{billing['id']}/soul").json["data"]
    assert [v["version"] for v in soul["versions"]] == [2, 1]

    exported = _cli(app, "agents", "export", str(tmp_path / "export.yaml"))
    assert exported.exit_code == 0, exported.output
    document = yaml.safe_load((tmp_path / "export.yaml").read_text())
    assert [a["name"] for a in document["agents"]] == ["billing", "support-lead"]
    assert document["agents"][0]["reports_to"] == "support-lead" and document["agents"][0]["tools"] == ["kb"]
    assert document["agents"][0]["model"] == "fake-gpt"
    again = _cli(app, "agents", "sync", str(tmp_path / "export.yaml"))
    assert json.loads(again.output)["unchanged"] == 2 and json.loads(again.output)["updated"] == 0
    assert api.get("/api/agents/export").json["data"] == document
    assert api.post("/api/agents/sync", json=api.get("/api/agents/export").json["data"]).json["data"]["unchanged"] == 2

    (tmp_path / "bad.yaml").write_text("agents: [ {name: x, model: nope} ]")
    bad = _cli(app, "agents", "sync", str(tmp_path / "bad.yaml"))
    assert bad.exit_code != 0 and "agents[0] (x).model" in bad.output
