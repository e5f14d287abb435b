"""The console in a real Chromium against a real `magnet serve` on 127.0.0.1: sign up, upload a PDF and watch
its sync, ask the playground and open a citation, import cases, run an evaluation twice and compare the
runs, and a viewer who cannot start a sync. Screenshots of the main pages are kept as test artefacts
(MAGNET_SCREENSHOT_DIR, default under pytest's temporary folder)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.console.browser import REQUIRED, browser_present, start_chromium
from tests.integration.test_serve import BIN, running_serve

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PDF = FIXTURES / "pdf" / "bank_statement.pdf"
PASSWORD = "a long console password"
CASES = [
    {"input": "What is the account number?", "expected_output": "99988877"},
    {"input": "Who is the account holder?", "expected_output": "Mr John Smith"},
    {"input": "What type of account is it?", "expected_output": "Checking"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`magnet serve` on a fresh data dir (migrated, not seeded: the console starts empty)."""
    root = tmp_path_factory.mktemp("console-serve")
    env = {**os.environ, "MAGNET_DATA_DIR": str(root / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("MAGNET_DATABASE_URL", None)
    done = subprocess.run([str(BIN / "magnet"), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with running_serve(env, root / "serve.log") as (base, output):
        key = re.search(r"Admin API key: (magnet_ak_\S+)", output).group(1)
        yield {"base": base, "key": key, "output": output}


@pytest.fixture(scope="module")
def driver():
    if not browser_present():
        assert not REQUIRED, "MAGNET_REQUIRE_BROWSER=1 but /usr/bin/chromium or /usr/bin/chromedriver is missing"
    chrome = start_chromium()
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("MAGNET_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)

    def take(driver, name: str) -> Path:
        path = folder / f"{name}.png"
        driver.save_screenshot(str(path))
        return path

    return take


def wait(driver, condition, timeout: float = 60):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page that reloads (after a form's action) detaches the element a condition just found: look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def visible(selector):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.visibility_of_element_located((By.CSS_SELECTOR, selector))


def api(server, method, path, **kwargs):
    return requests.request(method, server["base"] + path, headers={"X-API-Key": server["key"]}, timeout=30, **kwargs)


def fill(driver, selector, text):
    element = css(driver, selector)
    element.clear()
    element.send_keys(text)


@pytest.fixture(scope="module")
def admin(server, driver):
    """The first visitor: sent from Home to sign-up (no account yet), signs up, lands on Home."""
    driver.get(server["base"] + "/")
    wait(driver, lambda d: "/sign-up" in d.current_url)
    fill(driver, "#name", "Ada Admin")
    fill(driver, "#email", "ada@example.com")
    fill(driver, "#password", PASSWORD)
    css(driver, "#signup-form button[type=submit]").click()
    wait(driver, lambda d: d.current_url.rstrip("/") == server["base"] and d.find_elements("css selector", "#health-h"))
    return {"landed": driver.current_url}


@pytest.fixture(scope="module")
def pdf_source(server, driver, admin, shots):
    """A file source created with the console's form; a PDF uploaded on its page, followed until indexed."""
    driver.get(server["base"] + "/sources")
    fill(driver, "#file-name", "statements")
    css(driver, "#create-file button[type=submit]").click()
    wait(driver, lambda d: re.search(r"/sources/ks_\w+$", d.current_url))
    source_id = driver.current_url.rsplit("/", 1)[1]
    css(driver, "#upload-files").send_keys(str(PDF))
    css(driver, "#upload-form button[type=submit]").click()
    # the page reloads with the live progress bar, which follows the sync over SSE and reloads at the end
    wait(driver, lambda d: d.find_elements("css selector", "#sync-progress") or
         d.find_elements("css selector", '[data-document="bank_statement.pdf"]'))
    if driver.find_elements("css selector", "#sync-progress"):
        shots(driver, "source-syncing")
    row = wait(driver, visible('[data-document="bank_statement.pdf"]'), timeout=120)
    wait(driver, lambda d: not d.find_elements("css selector", "#sync-progress"), timeout=120)
    return {"id": source_id, "row": row}


@pytest.fixture(scope="module")
def rag_tool(server, pdf_source):
    res = api(server, "POST", "/api/rag-tools", json={"name": "statements", "knowledge_source_ids": [pdf_source["id"]],
                                                      "answer_mode": "extractive", "top_k": 3})
    assert res.status_code == 202, res.text
    tool = res.json()["data"]
    for _ in range(600):
        if api(server, "GET", f"/api/rag-tools/{tool['id']}").json()["data"]["status"]["status"] != "building":
            break
    return tool


def test_first_user_signs_up_and_lands_on_home(server, driver, admin, shots):
    assert admin["landed"].rstrip("/") == server["base"]
    assert "Ada Admin" in css(driver, "#whoami").text and "admin" in css(driver, "#whoami").text
    assert css(driver, "#health-status").text in ("ok", "degraded")
    shots(driver, "home-first-visit")


def test_uploaded_pdf_is_synced_and_indexed(server, driver, pdf_source, shots):
    driver.get(f"{server['base']}/sources/{pdf_source['id']}")
    row = css(driver, '[data-document="bank_statement.pdf"]')
    assert "indexed" in row.text
    assert css(driver, "#document-count").text == "1"
    shots(driver, "source")
    driver.get(f"{server['base']}/sources/{pdf_source['id']}?status=failed")
    assert not driver.find_elements("css selector", '[data-document="bank_statement.pdf"]')


def test_playground_answers_with_citations_that_open_their_passage(server, driver, rag_tool, shots):
    from selenium.webdriver.support.ui import Select

    driver.get(server["base"] + "/playground")
    Select(css(driver, "#tool")).select_by_value(f"rag:{rag_tool['id']}")
    fill(driver, "#query", "What is the account number?")
    css(driver, "#compare").click()  # setting B: dense only, side by side
    css(driver, "#ask").click()
    wait(driver, visible("#column-b"))
    answer = wait(driver, visible("#column-a [data-role=answer]"))
    assert "99988877" in answer.text
    hit = css(driver, "#hit-a-1")
    assert hit.get_attribute("open") is None
    css(driver, "#column-a [data-role=answer] a.cite").click()
    wait(driver, lambda d: css(d, css(d, "#column-a [data-role=answer] a.cite").get_attribute("hash")).get_attribute("open"))
    assert "dense" in css(driver, "#column-a .scores").text
    assert css(driver, "#column-a .timings").text  # the stage timings
    assert "dense" in css(driver, "#column-b-h").text
    driver.execute_script("window.scrollTo(0, 0)")
    shots(driver, "playground")


def test_import_cases_run_an_evaluation_and_compare_two_runs(server, driver, rag_tool, shots, tmp_path):
    from selenium.webdriver.support.ui import Select

    driver.get(server["base"] + "/evaluations")
    fill(driver, "#ev-name", "statement questions")
    Select(css(driver, "#ev-target")).select_by_value(rag_tool["id"])
    css(driver, "#create-evaluation button[type=submit]").click()
    wait(driver, lambda d: re.search(r"/evaluations/eval_\w+$", d.current_url))
    evaluation_url = driver.current_url

    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    css(driver, "#cases-file").send_keys(str(cases))
    css(driver, "#import-form button[type=submit]").click()
    wait(driver, lambda d: len(d.find_elements("css selector", "#cases-table tbody tr td.num")) == len(CASES))

    for _ in range(2):
        driver.get(evaluation_url)
        css(driver, "#start-run").click()
        wait(driver, lambda d: "/runs/run_" in d.current_url)
        wait(driver, lambda d: css(d, "#run-status").text in ("completed", "failed", "cancelled"), timeout=120)
        assert css(driver, "#run-status").text == "completed"
    assert css(driver, "#metrics svg")  # the report's chart with its confidence intervals
    assert len(driver.find_elements("css selector", "#case-results tbody tr")) == len(CASES)
    css(driver, "#case-results details summary").click()  # drill down into a case's retrieved passages
    assert "bank_statement.pdf" in css(driver, "#case-results details").text
    driver.execute_script("window.scrollTo(0, 0)")
    shots(driver, "evaluation-run")

    driver.get(evaluation_url)
    css(driver, "#compare-runs").click()
    wait(driver, visible("#comparison"))
    assert "p bootstrap" in css(driver, "#comparison").text
    assert css(driver, "#changed-cases")
    shots(driver, "evaluation-compare")


def test_a_viewer_cannot_start_a_sync(server, driver, pdf_source, shots):
    driver.get(server["base"] + "/admin/access")
    from selenium.webdriver.support.ui import Select

    Select(css(driver, "#inv-role")).select_by_value("viewer")
    css(driver, "#invite-form button[type=submit]").click()
    token = json.loads(wait(driver, visible("#new-invitation")).text)["token"]
    css(driver, "header [data-api-button='POST /api/auth/logout']").click()
    wait(driver, lambda d: "/sign-in" in d.current_url)

    driver.get(f"{server['base']}/signup?invitation={token}")
    fill(driver, "#name", "Vic Viewer")
    fill(driver, "#email", "vic@example.com")
    fill(driver, "#password", PASSWORD)
    css(driver, "#signup-form button[type=submit]").click()
    wait(driver, lambda d: "viewer" in (d.find_elements("css selector", "#whoami") or [None])[0].text
         if d.find_elements("css selector", "#whoami") else False)

    syncs_before = api(server, "GET", f"/api/knowledge-sources/{pdf_source['id']}/syncs").json()["pagination"]["total"]
    driver.get(f"{server['base']}/sources/{pdf_source['id']}")
    assert not driver.find_elements("css selector", "#start-sync")
    assert not driver.find_elements("css selector", "#upload-form")
    shots(driver, "source-as-viewer")
    # what the operator's button sends, sent from the viewer's page with the viewer's session and CSRF token
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const token = document.cookie.match(/magnet_csrf=([^;]+)/)[1];
        fetch(arguments[0], {method: 'POST', headers: {'X-CSRF-Token': token}, credentials: 'same-origin'})
          .then(r => done(r.status));""", f"/api/knowledge-sources/{pdf_source['id']}/sync")
    assert status == 403
    assert api(server, "GET", f"/api/knowledge-sources/{pdf_source['id']}/syncs").json()["pagination"]["total"] == syncs_before


def test_pages_fit_a_phone_width_screen(server, driver, admin, shots):
    driver.get(server["base"] + "/")  # after the flows above: syncs, runs and usage to show
    assert css(driver, "#syncs-h") and "statements" in css(driver, "#content").text
    shots(driver, "home")
    driver.set_window_size(390, 844)
    try:
        for page in ("/", "/sources", "/evaluations", "/playground"):
            driver.get(server["base"] + page)
            wide = driver.execute_script(
                "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
                "window.innerWidth + 1 && !e.closest('.table-wrap') && e.offsetParent !== null).map(e => e.tagName + "
                "'#' + e.id + '.' + e.className).slice(0, 5)")
            assert driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 1, (page, wide)
        driver.get(server["base"] + "/")
        shots(driver, "home-phone")
    finally:
        driver.set_window_size(1280, 900)


def test_a_reviewer_claims_and_completes_a_handoff_request(server, driver, admin, shots):
    """An outside agent asks for a human through /api/v1; a reviewer (invited, signed in) lands on the queue,
    opens the request, claims it and completes it with a result, which the agent then reads."""
    invitation = api(server, "POST", "/api/handoff/invitations", json={}).json()["data"]["token"]
    account = requests.post(server["base"] + "/api/v1/agents/register", timeout=30, json={
        "name": "scout", "description": "A research agent", "email": "scout@example.com", "phone": "+14155550123",
        "password": "s3cret!", "invitation": invitation})
    assert account.status_code == 201, account.text
    agent = {"Authorization": f"Bearer {account.json()['data']['api_key']}"}
    made = requests.post(server["base"] + "/api/v1/request", headers=agent, timeout=30, json={
        "title": "Call the venue", "instructions": "Ask whether the hall is free on Friday.", "objective": "A yes or no"})
    assert made.status_code == 201, made.text
    request_id = made.json()["data"]["id"]
    token = api(server, "POST", "/api/auth/invitations", json={"role": "reviewer"}).json()["data"]["token"]

    driver.delete_all_cookies()  # whoever the flows above left signed in
    driver.get(f"{server['base']}/signup?invitation={token}")
    fill(driver, "#name", "Rita Reviewer")
    fill(driver, "#email", "rita@example.com")
    fill(driver, "#password", PASSWORD)
    css(driver, "#signup-form button[type=submit]").click()
    wait(driver, lambda d: d.current_url.endswith("/review"))  # a reviewer's home is the queue
    assert "reviewer" in css(driver, "#whoami").text
    assert not driver.find_elements("css selector", "header a[href='/sources']")
    row = css(driver, f'[data-review-item="{request_id}"]')
    assert "Call the venue" in row.text and "no_owner_contact" in row.text
    shots(driver, "review-queue")
    row.find_element("css selector", "a").click()
    wait(driver, visible("#claim-task")).click()
    wait(driver, visible("#complete-form"))
    assert css(driver, "#task-status").text == "IN_PROGRESS"
    fill(driver, "#t-result", "Yes: the hall is free on Friday.")
    css(driver, "#complete-form button[type=submit]").click()
    wait(driver, lambda d: css(d, "#task-status").text == "COMPLETED")
    assert "Yes: the hall is free on Friday." in css(driver, "#task-result").text
    shots(driver, "review-task")
    done = requests.get(f"{server['base']}/api/v1/request/{request_id}", headers=agent, timeout=30).json()["data"]
    assert done["status"] == "COMPLETED" and done["result"] == "Yes: the hall is free on Friday."


def test_nothing_was_refused_by_the_content_security_policy(driver, admin):
    """After every flow above: no script, style or request was blocked (htmx included), no script error."""
    problems = [entry["message"] for entry in driver.get_log("browser")
                if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
                and "favicon" not in entry["message"] and "403" not in entry["message"]]
    assert problems == []
