"""Fixtures shared by the API tests that need a really synced knowledge base and a fake LLM server."""
import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import FakeLLM

DOCS = {
    "faq.txt": "Refunds are processed within fourteen days of the request. Contact billing for help.",
    "shipping.md": "# Shipping\n\nParcels ship within three working days. Express delivery costs ten euros.",
    "security.md": "# Security\n\nPasswords must be rotated every ninety days. Use the VPN outside the office.",
}


@pytest.fixture
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def synced(api, worker, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    source = api.post("/api/knowledge-sources", json={
        "name": "kb", "type": "directory", "configuration": {"path": str(folder)}}).json["data"]
    run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
    done = wait_for(lambda: api.get(f"/api/knowledge-sources/{source['id']}/syncs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    return source
