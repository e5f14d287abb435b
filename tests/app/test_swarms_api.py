"""Swarm sessions through the API, run by the real job consumer: real agent turns (the local extractive model
and OpenAI-compatible models served by the scripted fake LLM server), saved, metered and synthesized."""
import json
import threading

import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import FakeLLM, GatedStream, Reply, Status

ENDED = ("completed", "failed", "cancelled")


@pytest.fixture
def llms():
    """Separate fake servers, so parallel members never take each other's scripted replies."""
    servers = [FakeLLM().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


def _model(api, name, server, pricing=(1.0, 2.0)):
    res = api.post("/api/models", json={
        "name": name, "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
        "endpoint": server.base_url, "api_key": "sk-test", "context_window": 16000,
        "pricing": {"input_per_1k": pricing[0], "output_per_1k": pricing[1]}})
    assert res.status_code == 201, res.json
    return res.json["data"]["id"]


def _agent(api, name, model="local-extractive", **extra):
    res = api.post("/api/agents", json={"name": name, "model_id": model, **extra})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _start(api, **body):
    res = api.post("/api/swarms", json=body)
    assert res.status_code == 202, res.json
    assert res.json["data"]["status"] in ("queued", "running", "completed")
    return res.json["data"]


def _get(api, swarm_id):
    return api.get(f"/api/swarms/{swarm_id}").json["data"]


def _finished(api, swarm_id):
    """The swarm once it has ended and no member turn is still running."""
    return wait_for(lambda: _get(api, swarm_id),
                    lambda s: s["status"] in ENDED and all(m["status"] != "running" for m in s["members"]))


def _ledger_cost(app, swarm_id):
    from app.services import swarms

    return swarms.ledger_cost(swarms.get_swarm(swarm_id))


def test_a_failing_member_is_recorded_and_the_others_go_on(api, worker, llms, app):
    broken_llm = llms[0]
    broken_llm.default = Status(401, "invalid api key")  # not retried: the member fails at once
    _agent(api, "alpha")
    _agent(api, "beta")
    _agent(api, "broken", _model(api, "broken-model", broken_llm))

    swarm = _start(api, goal="How long do refunds take?", agents=["alpha", "beta", "broken"])
    assert [m["status"] for m in swarm["members"]] == ["pending"] * 3 or swarm["status"] != "queued"
    done = _finished(api, swarm["id"])

    assert done["status"] == "completed", done
    by_name = {m["agent_name"]: m for m in done["members"]}
    assert by_name["alpha"]["status"] == by_name["beta"]["status"] == "completed"
    assert by_name["alpha"]["result"] and by_name["alpha"]["progress"] == 1.0
    failed = by_name["broken"]
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["error"]["code"] == "agent_error" and "401" in failed["error"]["message"]
    # The synthesis is the merge of the two answers, and names the member that failed and why.
    assert done["synthesis_by"] == "merge"
    assert "[1] alpha" in done["synthesis"] and "[2] beta" in done["synthesis"]
    assert "Member broken failed (round 1)" in done["synthesis"] and "401" in done["synthesis"]
    assert [c["agent_name"] for c in done["citations"]] == ["alpha", "beta"]
    assert done["progress"]["members_failed"] == 1 and done["progress"]["percent"] == 100.0
    assert "1 member turn(s) failed" in done["message"]
    # Each member worked in its own conversation, where its turn is saved like any other.
    conversation = api.get(f"/api/conversations/{failed['conversation_id']}").json["data"]
    assert conversation["agent_id"] == failed["agent_id"]
    assert [m["status"] for m in conversation["messages"]] == ["completed", "failed"]
    assert len({m["conversation_id"] for m in done["members"]}) == 3


def test_the_coordinator_plans_and_its_synthesis_cites_member_results(api, worker, llms, app):
    coordinator_llm, member_llm, _ = llms
    coordinator_llm.script(
        Reply(json.dumps(["Find the refund delay.", "Find the shipping delay."]), prompt_tokens=100),
        Reply("Refunds take fourteen days [1] and parcels ship in three days [2].", prompt_tokens=200))
    member_llm.default = Reply("Member finding.", prompt_tokens=50)
    members_model = _model(api, "member-model", member_llm)
    _agent(api, "lead", _model(api, "lead-model", coordinator_llm))
    first, second = _agent(api, "refunds", members_model), _agent(api, "shipping", members_model)

    swarm = _start(api, goal="Summarise our delays.", agents=[first["id"], second["name"]], coordinator="lead")
    done = _finished(api, swarm["id"])

    assert done["status"] == "completed", done
    assert [m["subtask"] for m in done["members"]] == ["Find the refund delay.", "Find the shipping delay."]
    assert done["synthesis_by"] == "coordinator" and done["coordinator_name"] == "lead"
    assert done["synthesis"] == "Refunds take fourteen days [1] and parcels ship in three days [2]."
    ids = {m["agent_name"]: m["id"] for m in done["members"]}
    assert done["citations"] == [
        {"index": 1, "member_id": ids["refunds"], "agent_name": "refunds", "round": 1, "cited": True},
        {"index": 2, "member_id": ids["shipping"], "agent_name": "shipping", "round": 1, "cited": True}]
    # The coordinator saw each member's result under the number it cites.
    synthesis_prompt = json.dumps(coordinator_llm.posts[1].body["messages"])
    assert "[1] refunds (Find the refund delay.)" in synthesis_prompt and "Member finding." in synthesis_prompt
    # Each member was asked its own part, in its own turn.
    asked = sorted(json.dumps(r.body["messages"]) for r in member_llm.posts)
    assert len(asked) == 2 and "Find the refund delay." in asked[0] and "Find the shipping delay." in asked[1]
    # Metered: the members' and the coordinator's turns are in the ledger, through the swarm's conversations.
    assert all(m["cost"] > 0 for m in done["members"])
    assert done["cost"] == pytest.approx(_ledger_cost(app, swarm["id"])) and done["cost"] > sum(
        m["cost"] for m in done["members"])
    coordination = api.get(f"/api/conversations/{done['coordinator_conversation_id']}").json["data"]
    assert coordination["message_count"] == 4  # the plan and the synthesis, asked and answered


def test_later_rounds_show_members_the_previous_answers(api, worker, llms):
    member_llm = llms[0]
    member_llm.default = Reply("An answer.")
    model = _model(api, "round-model", member_llm)
    _agent(api, "one", model)
    _agent(api, "two", model)
    done = _finished(api, _start(api, goal="Plan the offsite.", agents=["one", "two"], max_rounds=2)["id"])

    assert done["status"] == "completed" and done["progress"]["rounds_done"] == 2
    assert [(m["round"], m["status"]) for m in done["members"]] == [(1, "completed")] * 2 + [(2, "completed")] * 2
    assert len(member_llm.posts) == 4
    later = json.dumps(member_llm.posts[-1].body["messages"])
    assert "Round 2 of 2" in later and "one: An answer." in later and "two: An answer." in later
    assert {c["round"] for c in done["citations"]} == {2}


def test_cancel_mid_run_starts_nothing_more_and_keeps_the_running_turn(api, worker, llms):
    member_llm, gate = llms[0], threading.Event()
    member_llm.default = GatedStream("Partial answer that waits for the gate to open.", gate, after_words=2)
    model = _model(api, "gated-model", member_llm)
    for name in ("first", "second", "third"):
        _agent(api, name, model)
    swarm = _start(api, goal="Write it up.", agents=["first", "second", "third"], max_parallel=1, max_rounds=2)
    try:
        running = wait_for(lambda: _get(api, swarm["id"]),
                           lambda s: s["members"][0]["status"] == "running" and len(member_llm.posts) == 1)
        assert running["status"] == "running" and running["members"][0]["progress"] == 0.5

        res = api.post(f"/api/swarms/{swarm['id']}/cancel")
        assert res.status_code == 202 and res.json["data"]["cancel_requested"] is True
        cancelled = wait_for(lambda: _get(api, swarm["id"]), lambda s: s["status"] == "cancelled")
        assert cancelled["status"] == "cancelled" and cancelled["stop_reason"] == "cancelled"
        assert [m["status"] for m in cancelled["members"]] == ["running", "cancelled", "cancelled"]
        assert cancelled["synthesis"] is None
    finally:
        gate.set()
    done = _finished(api, swarm["id"])
    # The turn already running ended and was kept; nothing else ran, no round 2, no synthesis.
    assert done["status"] == "cancelled" and done["members"][0]["status"] == "completed"
    assert len(done["members"]) == 3 and len(member_llm.posts) == 1 and done["synthesis"] is None
    again = api.post(f"/api/swarms/{swarm['id']}/cancel")
    assert again.status_code == 409 and again.json["error"]["code"] == "swarm_finished"


def test_a_spent_budget_stops_further_members_and_rounds(api, worker, llms, app):
    member_llm = llms[0]
    member_llm.default = Reply("Costly answer.", prompt_tokens=1000)  # 1.0 USD of prompt at 1.0 per 1k
    model = _model(api, "priced-model", member_llm)
    for name in ("a1", "a2", "a3"):
        _agent(api, name, model)
    swarm = _start(api, goal="Spend.", agents=["a1", "a2", "a3"], max_parallel=1, max_rounds=3, budget_usd=0.5)
    done = _finished(api, swarm["id"])

    assert done["status"] == "completed" and done["stop_reason"] == "budget_exhausted", done
    assert done["message"].startswith("Budget exhausted: spent 1.00")
    statuses = [(m["round"], m["status"]) for m in done["members"]]
    assert statuses == [(1, "completed"), (1, "skipped"), (1, "skipped")]
    assert {m["error"]["code"] for m in done["members"][1:]} == {"budget_exhausted"}
    assert len(member_llm.posts) == 1
    assert done["cost"] == pytest.approx(_ledger_cost(app, swarm["id"])) and done["cost"] > 0.5
    assert "Member a2 skipped (round 1)" in done["synthesis"]


def test_list_filters_paginates_and_deletes(api, worker):
    for name in ("x1", "x2", "x3"):
        _agent(api, name)
    first = _finished(api, _start(api, goal="One.", agents=["x1", "x2"])["id"])
    second = _finished(api, _start(api, goal="Two.", agents=["x2", "x3"])["id"])

    page = api.get("/api/swarms?limit=1&order=asc")
    assert page.status_code == 200 and {k: v for k, v in page.json["pagination"].items() if k != "next_cursor"} == {
        "page": 1, "limit": 1, "total": 2} and page.json["pagination"]["next_cursor"]
    assert [s["id"] for s in page.json["data"]] == [first["id"]] and "members" not in page.json["data"][0]
    assert [s["id"] for s in api.get("/api/swarms?agent=x3").json["data"]] == [second["id"]]
    x1 = api.get("/api/agents").json["data"]
    x1_id = next(a["id"] for a in x1 if a["name"] == "x1")
    assert [s["id"] for s in api.get(f"/api/swarms?agent={x1_id}").json["data"]] == [first["id"]]
    assert api.get("/api/swarms?status=running").json["data"] == []
    assert api.get("/api/swarms?status=bogus").status_code == 422

    res = api.delete(f"/api/swarms/{first['id']}")
    assert res.status_code == 200 and res.json == {"success": True, "message": "swarm deleted"}
    assert api.get(f"/api/swarms/{first['id']}").status_code == 404
    conversation = first["members"][0]["conversation_id"]
    assert api.get(f"/api/conversations/{conversation}").status_code == 404


def test_roles_viewer_reads_operator_acts(api, worker, make_key):
    for name in ("r1", "r2"):
        _agent(api, name)
    swarm = _finished(api, _start(api, goal="Roles.", agents=["r1", "r2"])["id"])
    viewer, operator = make_key("viewer"), make_key("operator")
    assert api.get(f"/api/swarms/{swarm['id']}", key=viewer).status_code == 200
    assert api.get("/api/swarms", key=viewer).status_code == 200
    for path in ("/api/swarms", f"/api/swarms/{swarm['id']}/cancel", f"/api/swarms/{swarm['id']}/share"):
        denied = api.post(path, key=viewer, json={"goal": "x", "agents": ["r1", "r2"]} if path == "/api/swarms" else {})
        assert denied.status_code == 403 and denied.json["error"]["code"] == "insufficient_role", path
    assert api.post(f"/api/swarms/{swarm['id']}/share", key=operator, json={}).status_code == 201
    assert api.delete(f"/api/swarms/{swarm['id']}", key=viewer).status_code == 403
    assert api.delete(f"/api/swarms/{swarm['id']}", key=operator).status_code == 200


def _error(res, status):
    assert res.status_code == status, res.json
    assert res.json["success"] is False and set(res.json["error"]) == {"code", "message", "details"}
    return res.json["error"]


def test_bad_input_is_refused_in_the_error_envelope(api, app):
    _agent(api, "solo")
    _agent(api, "pair")
    _agent(api, "asleep", status="inactive")
    base = {"goal": "Do it.", "agents": ["solo", "pair"]}

    error = _error(api.post("/api/swarms", json={**base, "agents": ["solo", "agent_nope", "ghost"]}), 422)
    assert error["code"] == "unknown_agents" and error["details"]["unknown_agents"] == ["agent_nope", "ghost"]
    assert "agents" in _error(api.post("/api/swarms", json={**base, "agents": ["solo"]}), 422)["details"]["fields"]
    assert _error(api.post("/api/swarms", json={**base, "agents": ["solo", "solo"]}), 422)["details"][
        "duplicate_agents"] == ["solo"]
    for budget in (-1, 0, "lots", 1e12):
        assert "budget_usd" in _error(api.post("/api/swarms", json={**base, "budget_usd": budget}), 422)[
            "details"]["fields"], budget
    limit = app.extensions["magnet.config"].swarm_max_parallel
    error = _error(api.post("/api/swarms", json={**base, "max_parallel": limit + 1}), 422)
    assert "max_parallel" in error["details"]["fields"]
    assert "goal" in _error(api.post("/api/swarms", json={"agents": ["solo", "pair"]}), 422)["details"]["fields"]
    assert "max_rounds" in _error(api.post("/api/swarms", json={**base, "max_rounds": 0}), 422)["details"]["fields"]
    assert "extra" in _error(api.post("/api/swarms", json={**base, "extra": 1}), 422)["details"]["fields"]
    assert _error(api.post("/api/swarms", json={**base, "coordinator": "nobody"}), 422)["code"] == "unknown_agents"
    assert _error(api.post("/api/swarms", json={**base, "agents": ["solo", "asleep"]}), 409)["code"] == "agent_inactive"
    assert _error(api.get("/api/swarms/swarm_missing"), 404)["code"] == "not_found"
    assert _error(api.post("/api/swarms/swarm_missing/cancel"), 404)["code"] == "not_found"
    assert _error(api.post("/api/swarms/swarm_missing/share", json={}), 404)["code"] == "not_found"
    assert api.get("/api/swarms").json["data"] == []  # nothing refused was saved


def test_the_periodic_tick_fails_a_swarm_without_heartbeat_and_redelivers_a_lost_message(api, worker, app):
    """A swarm whose worker is elsewhere (no lease here) and silent past MAGNET_RUN_STALE_SECONDS is failed
    by the tick; a queued swarm whose queue message was lost is delivered again and runs."""
    from datetime import timedelta

    from app.extensions import db
    from app.models import Swarm, SwarmMember, utcnow
    from app.services import periodic

    for name in ("s1", "s2"):
        _agent(api, name)
    silent = _finished(api, _start(api, goal="Silent.", agents=["s1", "s2"])["id"])
    long_ago = utcnow() - timedelta(seconds=app.extensions["magnet.config"].run_stale_seconds + 60)
    row = db.session.get(Swarm, silent["id"])
    row.status, row.heartbeat_at, row.finished_at, row.created_at = "running", long_ago, None, long_ago
    member = db.session.get(SwarmMember, silent["members"][1]["id"])
    member.status = "running"
    lost_message = Swarm(goal="Queued, message lost.", agents=row.agents, created_at=long_ago)
    db.session.add(lost_message)
    db.session.flush()
    for position, agent in enumerate(row.agents):
        db.session.add(SwarmMember(swarm_id=lost_message.id, position=position, agent_id=agent["id"],
                                   agent_name=agent["name"], conversation_id=agent["conversation_id"],
                                   subtask=lost_message.goal))
    db.session.commit()

    lost_id = lost_message.id
    reaped = periodic.reap_lost_runs()
    assert reaped["failed_swarms"] == [silent["id"]]
    failed = _get(api, silent["id"])
    assert failed["status"] == "failed" and failed["stop_reason"] == "worker_lost"
    assert failed["members"][1]["status"] == "failed" and failed["members"][1]["error"]["code"] == "worker_lost"

    def fresh():  # the rows this test wrote stay in its session: read them anew each time
        db.session.expire_all()
        return _get(api, lost_id)

    assert wait_for(fresh, lambda s: s["status"] in ENDED)["status"] == "completed"


def test_a_coordinator_on_the_local_model_cannot_plan_so_members_get_the_goal(api, worker):
    for name in ("plain1", "plain2", "quoter"):
        _agent(api, name)
    done = _finished(api, _start(api, goal="What is our VPN rule?", agents=["plain1", "plain2"],
                                 coordinator="quoter")["id"])
    assert done["status"] == "completed" and done["coordinator_name"] == "quoter"
    assert [m["subtask"] for m in done["members"]] == ["What is our VPN rule?"] * 2
    assert done["synthesis_by"] == "merge" and "cannot plan" in done["message"]
    assert done["synthesis"].startswith("Answers of 2 agents to: What is our VPN rule?")
