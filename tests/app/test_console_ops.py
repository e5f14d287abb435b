"""The console's pages for features merged after it: the review queue (hand-off requests and evaluation review
items), the agent's operations (tasks, heartbeat, memory, messages, presence), swarms, and a run's human
review. Roles as the API's (a viewer cannot see the review queue, a reviewer sees only it), real data
created through the API, and CSRF on writes from a signed-in browser."""
import re

import pytest

from tests.app.test_console import _write_actions
from tests.app.test_handoff_contract import OWNER, _account, open_registration  # noqa: F401 (fixture)
from tests.app.test_human_review import JUDGE_RATINGS, _run, judged_suite  # noqa: F401 (fixture)
from tests.app.users_support import admin_client, csrf, user_client


@pytest.fixture
def keys(make_key):
    return {role: make_key(role) for role in ("viewer", "reviewer", "operator", "admin")}


def _get(client, path, key):
    return client.get(path, headers={"X-API-Key": key})


def _agent(api, name, **extra):
    res = api.post("/api/agents", json={"name": name, "model_id": "local-extractive", **extra})
    assert res.status_code == 201, res.json
    return res.json["data"]


@pytest.fixture
def handoff(client, open_registration):  # noqa: F811 (the fixture imported above)
    """A hand-off request made through the /api/v1 contract, as an outside agent makes one."""
    key = _account(client)["api_key"]
    res = client.post("/api/v1/request", headers={"Authorization": f"Bearer {key}"}, json={
        "title": "Book a table", "instructions": f"Book a table for two at 8pm.\n{OWNER}",
        "objective": "A confirmed booking", "max_minutes": 30})
    assert res.status_code == 201, res.json
    return res.json["data"]


@pytest.mark.parametrize("path, least", [("/review", "reviewer"), ("/swarms", "viewer"), ("/agents", "viewer")])
def test_each_new_page_renders_for_its_least_role_and_is_refused_below_it(client, keys, path, least):
    assert client.get(path).status_code == 302  # signed out: to the sign-in page
    assert _get(client, path, keys[least]).status_code == 200
    below = {"reviewer": "viewer", "viewer": "reviewer"}[least]  # reviewer is a side role: no viewer pages
    refused = _get(client, path, keys[below])
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    for role in ("operator", "admin"):
        assert _get(client, path, keys[role]).status_code == 200


def test_the_review_nav_entry_shows_only_to_roles_that_can_use_it(client, keys):
    assert 'id="nav-review"' not in _get(client, "/agents", keys["viewer"]).text
    assert 'id="nav-review"' in _get(client, "/agents", keys["operator"]).text
    reviewer = _get(client, "/review", keys["reviewer"]).text
    assert 'id="nav-review"' in reviewer and 'href="/sources"' not in reviewer  # only what it can open
    assert _get(client, "/sources", keys["reviewer"]).status_code == 403
    home = _get(client, "/", keys["reviewer"])  # a reviewer's home is the queue
    assert home.status_code == 302 and home.headers["Location"] == "/review"
    assert _get(client, "/", keys["viewer"]).status_code == 200


def test_a_contract_handoff_request_shows_in_the_queue_and_its_page(client, keys, handoff, api):
    queue = _get(client, "/review", keys["reviewer"]).text
    assert f'data-review-item="{handoff["id"]}"' in queue and "Book a table" in queue
    assert f'/review/tasks/{handoff["id"]}' in queue
    assert "Book a table" not in _get(client, "/review?status=COMPLETED", keys["reviewer"]).text
    assert "Book a table" not in _get(client, "/review?kind=evaluation_review", keys["reviewer"]).text
    assert "Book a table" not in _get(client, "/review?overdue=yes", keys["reviewer"]).text
    assert "Book a table" in _get(client, "/review?overdue=no&status=PENDING&kind=handoff", keys["reviewer"]).text
    assert "Book a table" in _get(client, "/review?status=bogus", keys["reviewer"]).text  # unknown: no filter

    path = f"/review/tasks/{handoff['id']}"
    page = _get(client, path, keys["reviewer"]).text
    assert "Book a table for two at 8pm." in page and "A confirmed booking" in page
    assert ("POST", f"/api/review/tasks/{handoff['id']}/claim") in _write_actions(page)
    # The page's claim button, then its forms, sent as the console sends them (the reviewer's key).
    reviewer = {"X-API-Key": keys["reviewer"]}
    assert client.post(f"/api/review/tasks/{handoff['id']}/claim", json={}, headers=reviewer).status_code == 200
    page = _get(client, path, keys["reviewer"]).text
    actions = _write_actions(page)
    assert ("POST", f"/api/review/tasks/{handoff['id']}/complete") in actions
    assert ("POST", f"/api/review/tasks/{handoff['id']}/messages") in actions
    assert client.post(f"/api/review/tasks/{handoff['id']}/messages", json={"content": "Which restaurant?"},
                       headers=reviewer).status_code == 201
    done = client.post(f"/api/review/tasks/{handoff['id']}/complete", json={"result": "Booked at Luigi's"},
                       headers=reviewer)
    assert done.status_code == 200, done.json
    page = _get(client, path, keys["reviewer"]).text
    assert "Which restaurant?" in page and "Booked at Luigi&#39;s" in page and "COMPLETED" in page
    assert 'id="complete-form"' not in page and 'id="claim-task"' not in page
    assert re.search(r"<td>claimed</td>", page) and re.search(r"<td>completed</td>", page)
    assert _get(client, path, keys["viewer"]).status_code == 403
    assert _get(client, "/review/tasks/hreq_nope", keys["reviewer"]).status_code == 404


def test_the_agent_page_shows_its_tasks_memory_messages_and_presence(client, keys, api):
    # Paused, so that its task stays pending: the suite's job consumer (session-wide once any test has used
    # it) would otherwise run the task before the page is read.
    scout = _agent(api, "scout", status="inactive")
    _agent(api, "writer")
    task = api.post("/api/tasks", json={"agent_id": scout["id"], "title": "Summarise the week",
                                        "instructions": "Summarise what changed.", "priority": "high"})
    assert task.status_code == 201, task.json
    put = api.put(f"/api/agents/{scout['id']}/memory", json={"notes": [{"key": "tone", "text": "Be terse."}]})
    assert put.status_code == 200, put.json
    sent = api.post("/api/agents/message", json={"from": "writer", "to": "scout", "content": "Draft ready?"})
    assert sent.status_code == 201, sent.json

    listing = _get(client, "/agents", keys["viewer"]).text
    assert 'data-presence="' in listing
    path = f"/agents/{scout['id']}"
    operator = _get(client, path, keys["operator"]).text
    assert f'data-task="{task.json["data"]["id"]}"' in operator and "Summarise the week" in operator
    assert 'data-note="tone"' in operator and "Be terse." in operator
    assert "Draft ready?" in operator and 'id="agent-presence"' in operator
    assert "Summarise the week" in operator.split('id="pending-tasks"')[1].split("</dd>")[0]  # heartbeat
    actions = _write_actions(operator)
    for action in [("POST", "/api/tasks"), ("POST", f"/api/tasks/{task.json['data']['id']}/execute"),
                   ("POST", f"/api/tasks/{task.json['data']['id']}/cancel"),
                   ("PUT", f"/api/agents/{scout['id']}/memory"), ("DELETE", f"/api/agents/{scout['id']}/memory/tone"),
                   ("POST", "/api/agents/message"), ("POST", f"/api/agents/{scout['id']}/heartbeat")]:
        assert action in actions, action
    viewer = _get(client, path, keys["viewer"]).text
    assert "Summarise the week" in viewer and "Be terse." in viewer and _write_actions(viewer) == []
    for method, action in actions:  # what the operator's forms send, with the viewer's key: refused
        res = client.open(action, method=method, json={}, headers={"X-API-Key": keys["viewer"]})
        assert res.status_code == 403, (method, action, res.status_code)
    # The memory form's body ({"notes": [fields]}, data-wrap) and the delete button, as the console sends them.
    operator_key = {"X-API-Key": keys["operator"]}
    assert client.put(f"/api/agents/{scout['id']}/memory", headers=operator_key, json={
        "notes": [{"key": "audience", "text": "Engineers.", "tags": ["who"]}]}).status_code == 200
    assert client.delete(f"/api/agents/{scout['id']}/memory/tone", headers=operator_key).status_code == 200
    page = _get(client, path, keys["viewer"]).text
    assert 'data-note="audience"' in page and 'data-note="tone"' not in page
    assert client.post(f"/api/tasks/{task.json['data']['id']}/cancel", headers=operator_key).status_code == 200
    assert "cancelled" in _get(client, path, keys["viewer"]).text


def test_the_swarm_pages_show_a_swarm_and_offer_cancel_and_share_to_operators(client, keys, api):
    _agent(api, "alpha")
    _agent(api, "beta")
    res = api.post("/api/swarms", json={"goal": "Compare the two refund policies", "agents": ["alpha", "beta"]})
    assert res.status_code == 202, res.json
    swarm = res.json["data"]
    listing = _get(client, "/swarms", keys["viewer"]).text
    assert "Compare the two refund policies" in listing and f"/swarms/{swarm['id']}" in listing
    page = _get(client, f"/swarms/{swarm['id']}", keys["operator"]).text
    assert "Compare the two refund policies" in page
    actions = _write_actions(page)
    assert ("POST", f"/api/swarms/{swarm['id']}/share") in actions
    if swarm["status"] in ("queued", "running"):
        assert ("POST", f"/api/swarms/{swarm['id']}/cancel") in actions
    assert _write_actions(_get(client, f"/swarms/{swarm['id']}", keys["viewer"]).text) == []
    share = client.post(f"/api/swarms/{swarm['id']}/share", json={"expires_in": 3600},
                        headers={"X-API-Key": keys["operator"]})
    assert share.status_code == 201, share.json
    assert share.json["data"]["id"] in _get(client, f"/swarms/{swarm['id']}", keys["viewer"]).text
    assert _get(client, "/swarms/swarm_nope", keys["viewer"]).status_code == 404


def test_a_signed_in_reviewer_works_the_queue_and_writes_need_the_csrf_token(app, handoff):
    admin = admin_client(app)
    reviewer = user_client(app, admin, "rita@example.com", "reviewer")
    assert reviewer.get("/review").status_code == 200
    assert reviewer.get("/sources").status_code == 403
    assert reviewer.get("/agents").status_code == 403
    claim = f"/api/review/tasks/{handoff['id']}/claim"
    assert reviewer.post(claim, json={}).status_code == 403
    assert reviewer.post(claim, json={}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert reviewer.post(claim, json={}, headers=csrf(reviewer)).status_code == 200
    page = reviewer.get(f"/review/tasks/{handoff['id']}").text
    assert "IN_PROGRESS" in page and 'id="complete-form"' in page
    # a reviewer cannot write where only operators may (the sources page's forms)
    assert reviewer.post("/api/knowledge-sources", json={"name": "x", "type": "file"},
                         headers=csrf(reviewer)).status_code == 403


@pytest.mark.slow
def test_a_runs_human_review_and_the_review_item_page(client, keys, api, llm, judged_suite):  # noqa: F811
    evaluation = judged_suite
    run = _run(api, llm, evaluation)
    path = f"/evaluations/{evaluation['id']}/runs/{run['id']}"
    page = _get(client, path, keys["operator"]).text
    assert "No case of this run is under human review." in page
    assert ("POST", f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/reviews") in _write_actions(page)
    assert 'id="review-create"' not in _get(client, path, keys["viewer"]).text
    created = client.post(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/reviews",
                          json={"select": "sample", "n": 2, "seed": 3}, headers={"X-API-Key": keys["operator"]})
    assert created.status_code == 201, created.json
    item = created.json["data"]["items"][0]

    queue = _get(client, "/review?kind=evaluation_review", keys["reviewer"]).text
    assert f'data-review-item="{item["id"]}"' in queue and f"/review/items/{item['id']}" in queue
    detail = _get(client, f"/review/items/{item['id']}", keys["reviewer"]).text
    assert f"question {item['ordinal']}?" in detail and f"reply {item['ordinal']}" in detail
    assert ("POST", f"/api/review/items/{item['id']}/claim") in _write_actions(detail)
    reviewer = {"X-API-Key": keys["reviewer"]}
    assert client.post(f"/api/review/items/{item['id']}/claim", json={}, headers=reviewer).status_code == 200
    assert ("POST", f"/api/review/items/{item['id']}/grade") in _write_actions(
        _get(client, f"/review/items/{item['id']}", keys["reviewer"]).text)
    graded = client.post(f"/api/review/items/{item['id']}/grade", headers=reviewer,
                         json={"verdict": "pass", "score": 4, "comment": "Right answer."})
    assert graded.status_code == 200, graded.json
    assert "Right answer." in _get(client, f"/review/items/{item['id']}", keys["reviewer"]).text

    summary = _get(client, path, keys["viewer"]).text.split('id="run-review"')[1]
    assert "1.000" in summary.split('id="human-metric"')[1].split("</dl>")[0]  # one pass of one graded
    assert f"1 of {len(JUDGE_RATINGS)} cases" in summary  # coverage: one case graded of the run's seven
    assert 'id="judge-agreement"' in summary and "correctness" in summary
