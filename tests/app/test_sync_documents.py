"""A folder of scans, images and Office files synced through the API into searchable, cited chunks.

Real OCR (the models inside rapidocr's wheel), real embedding model, real Chroma and lexical index.
"""
import shutil
from pathlib import Path

import pytest

from tests.conftest import wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
pytestmark = pytest.mark.slow
OCR_TIMEOUT = 900  # OCR of five pages on a busy 2-core machine


def _folder(tmp_path, names):
    root = tmp_path / "archive"
    root.mkdir()
    for name in names:
        shutil.copy(FIXTURES / name, root / name)
    return root


def _sync(api, config, source_id=None):
    if source_id is None:
        source = api.post("/api/knowledge-sources", json={"name": "archive", "type": "directory",
                                                         "configuration": config})
        assert source.status_code == 201, source.json
        source_id = source.json["data"]["id"]
    res = api.post(f"/api/knowledge-sources/{source_id}/sync")
    assert res.status_code == 202, res.json
    run = wait_for(lambda: api.get(f"/api/knowledge-sources/{source_id}/syncs/{res.json['data']['id']}").json["data"],
                   lambda r: r["status"] not in ("queued", "running"), timeout=OCR_TIMEOUT)
    docs = api.get(f"/api/knowledge-sources/{source_id}/documents?limit=100").json["data"]
    return source_id, run, {d["external_id"]: d for d in docs}


def _search_tool(api, source_id):
    res = api.post("/api/retrieval-tools", json={"name": "finder", "knowledge_source_id": source_id, "top_k": 5})
    assert res.status_code == 202, res.json
    tool = res.json["data"]
    wait_for(lambda: api.get(f"/api/retrieval-tools/{tool['id']}").json["data"]["status"]["status"],
             lambda s: s != "building")

    def search(query):
        res = api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": query})
        assert res.status_code == 200, res.json
        return res.json["data"]["results"]

    return search


def test_scans_images_and_office_files_become_searchable_cited_chunks(api, worker, tmp_path):
    folder = _folder(tmp_path, ["scanned_with_stamp.pdf", "receipt.png", "memo.tiff", "tables.docx",
                                "tables.xlsx", "deck.pptx", "statement.pdf", "guide.odt", "log.epub"])
    source_id, run, docs = _sync(api, {"path": str(folder)})
    assert run["status"] == "completed", run
    assert run["counts"]["added"] == 9
    assert {name: d["status"] for name, d in docs.items()} == dict.fromkeys(docs, "indexed")
    scan = docs["scanned_with_stamp.pdf"]
    assert scan["ocr"]["pages"] == [1, 2] and scan["ocr"]["mean_confidence"] > 0.8 and scan["warnings"] == []
    # OCR's cost shows in the run's timings, inside parsing.
    timings = run["timings"]
    assert timings["ocr_pages"] == 5 and 0 < timings["ocr"] <= timings["parse"] and timings["embed"] > 0

    search = _search_tool(api, source_id)
    hits = search("amber lanterns at the harbour depot")
    assert hits[0]["metadata"]["document_id"] == scan["id"] and hits[0]["metadata"]["page"] == 1
    assert "seventeen amber" in hits[0]["content"]
    hits = search("copper kettle repair receipt")
    assert hits[0]["metadata"]["document_id"] == docs["receipt.png"]["id"]

    hits = search("refund window for the Pro plan")
    refunds = next(h for h in hits if h["metadata"]["document_id"] == docs["tables.docx"]["id"])
    assert refunds["metadata"]["section"] == "Billing > Refunds"
    assert "| Plan | Refund window | Fee |\n| --- | --- | --- |" in refunds["content"]
    hits = search("pelican migration budget speaker note")
    slide = next(h for h in hits if h["metadata"]["document_id"] == docs["deck.pptx"]["id"])
    assert slide["metadata"]["section"] == "Quarterly roadmap" and slide["metadata"]["slide"] == 1
    # A table laid out in a PDF's text layer comes back as a Markdown table, its row with the header.
    hits = search("how many tide charts were bought")
    statement = next(h for h in hits if h["metadata"]["document_id"] == docs["statement.pdf"]["id"])
    assert ("| Date | Item | Quantity | Amount |\n| --- | --- | --- | --- |\n| 2 March | Brass compass, gimballed | 4 | "
            "312.00 |\n| 9 March | Tide chart, Solent edition | 12 | 96.60 |") in statement["content"]
    hits = search("squall broke the lantern room pane")
    assert hits[0]["metadata"]["document_id"] == docs["log.epub"]["id"]
    assert hits[0]["metadata"]["section"] == "Spring > Storms" and hits[0]["metadata"]["chapter"] == 2
    hits = search("how many avocets were counted")
    assert hits[0]["metadata"]["document_id"] == docs["guide.odt"]["id"] and "| Avocet | 41 |" in hits[0]["content"]


def test_ocr_off_leaves_scans_with_a_reason_not_a_misleading_indexed(api, worker, tmp_path):
    folder = _folder(tmp_path, ["scanned_with_stamp.pdf", "receipt.png"])
    source_id, run, docs = _sync(api, {"path": str(folder), "ocr": "off"})
    scan = docs["scanned_with_stamp.pdf"]
    assert scan["status"] == "indexed_with_warnings"
    assert scan["error"] == {"code": "ocr_off", "message": "page 1: no text layer; OCR is off; "
                                                          "page 2: no text layer; OCR is off"}
    assert [w["page"] for w in scan["warnings"]] == [1, 2] and scan["ocr"] is None
    image = docs["receipt.png"]
    assert image["status"] == "no_text" and "no text layer; OCR is off" in image["error"]["message"]
    assert run["status"] == "completed_with_errors" and run["timings"]["ocr_pages"] == 0

    # Switching OCR on re-reads the same bytes: nothing else changed, yet both are now indexed.
    res = api.put(f"/api/knowledge-sources/{source_id}", json={"configuration": {"path": str(folder), "ocr": "auto"}})
    assert res.status_code == 200, res.json
    _, run, docs = _sync(api, None, source_id)
    assert run["status"] == "completed" and run["counts"]["updated"] == 2 and run["timings"]["ocr_pages"] == 3
    assert {d["status"] for d in docs.values()} == {"indexed"}
    assert docs["scanned_with_stamp.pdf"]["error"] is None and docs["scanned_with_stamp.pdf"]["warnings"] == []


def test_ocr_setting_is_validated(api, tmp_path):
    res = api.post("/api/knowledge-sources", json={"name": "x", "type": "directory",
                                                  "configuration": {"path": str(tmp_path), "ocr": "sometimes"}})
    assert res.status_code == 422 and res.json["error"]["details"]["fields"]["configuration.ocr"]


def test_cancel_is_seen_between_ocr_pages(api, worker, tmp_path):
    """One long scan: without a check between its pages, a cancel would wait for the whole document."""
    import time

    from pypdf import PdfReader, PdfWriter

    folder = tmp_path / "one-scan"
    folder.mkdir()
    writer = PdfWriter()
    for _ in range(10):  # 20 scanned pages: far longer than the wait below, on any machine
        for page in PdfReader(FIXTURES / "scanned_with_stamp.pdf").pages:
            writer.add_page(page)
    with (folder / "long_scan.pdf").open("wb") as f:
        writer.write(f)
    source = api.post("/api/knowledge-sources", json={"name": "long", "type": "directory",
                                                     "configuration": {"path": str(folder)}}).json["data"]
    run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
    path = f"/api/knowledge-sources/{source['id']}/syncs/{run['id']}"
    wait_for(lambda: api.get(path).json["data"]["status"], lambda s: s == "running")
    time.sleep(1.5)  # past the check made as the document starts: only a check between pages sees it
    assert api.post(f"{path}/cancel").status_code == 202
    ended = wait_for(lambda: api.get(path).json["data"], lambda r: r["status"] not in ("queued", "running"),
                     timeout=OCR_TIMEOUT)
    assert ended["status"] == "cancelled"
    docs = api.get(f"/api/knowledge-sources/{source['id']}/documents").json["data"]
    assert all(d["status"] != "indexed" and d["chunk_count"] == 0 for d in docs)
