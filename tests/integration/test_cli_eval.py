"""`magnet eval import-beir` and `magnet eval run` as a CI job uses them: exit codes, reports, regressions."""
import json
import math

import pytest

from tests.conftest import wait_for
from tests.integration.test_cli_ingest import FIXTURES, magnet

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_import_beir_then_gate_a_ci_job_on_thresholds(tmp_path):
    data = tmp_path / "data"
    imported = magnet(data, "eval", "import-beir", str(FIXTURES / "beir_mini"), "--name", "mini")
    assert imported.returncode == 0, imported.stderr
    assert "evaluation eval_" in imported.stdout and "(2 cases)" in imported.stdout

    report = tmp_path / "report.html"
    passed = magnet(data, "eval", "run", "mini", "--fail-under", "ndcg@10=0.5", "--report", str(report))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert ">= 0.5 PASS" in passed.stdout and "completed  cases 2/2, failed 0" in passed.stdout
    page = report.read_text()
    assert "<svg" in page and "mini" in page and "http://" not in page and "https://" not in page

    failed = magnet(data, "eval", "run", "mini", "--fail-under", "ndcg@10=1.01", "--report",
                    str(tmp_path / "cases.csv"))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert ">= 1.01 FAIL" in failed.stdout
    assert (tmp_path / "cases.csv").read_text().startswith("ordinal,case_id,status")

    usage = magnet(data, "eval", "run", "mini", "--fail-under", "ndcg@10")
    assert usage.returncode == 2 and "metric=value" in usage.stderr
    unknown = magnet(data, "eval", "run", "no-such-suite")
    assert unknown.returncode == 1 and "no-such-suite" in unknown.stderr


def test_import_beir_scores_graded_judgments_like_trec_eval(tmp_path):
    data = tmp_path / "data"
    assert magnet(data, "eval", "import-beir", str(FIXTURES / "beir_mini"), "--name", "mini").returncode == 0
    run = magnet(data, "eval", "run", "mini", "--report", str(tmp_path / "run.json"))
    assert run.returncode == 0, run.stderr
    exported = json.loads((tmp_path / "run.json").read_text())
    by_query = {r["input"]: r for r in exported["results"]}
    q1 = by_query["Does aspirin help with headaches?"]
    ranked = []
    for hit in q1["retrieved"]:
        doc = hit["external_id"].removesuffix(".txt")
        if doc not in ranked:
            ranked.append(doc)
    grades = {"d1": 2, "d2": 1, "d3": 0}
    dcg = sum(grades.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = 2 / math.log2(2) + 1 / math.log2(3)  # grade 0 is judged, but not relevant
    assert q1["scores"]["ndcg@10"] == pytest.approx(dcg / ideal)
    assert q1["scores"]["recall@10"] == pytest.approx(sum(d in ranked[:10] for d in ("d1", "d2")) / 2)


def test_a_significant_regression_fails_the_command(app, api, worker, tmp_path):
    from app.cli_eval import eval_group

    folder = tmp_path / "kb"
    folder.mkdir()
    topics = ["volcanoes erupt molten lava", "penguins live in antarctica", "bread rises with yeast",
              "tides follow the moon", "copper conducts electricity", "owls hunt at night"]
    for i, topic in enumerate(topics):
        (folder / f"doc{i}.txt").write_text(f"Fact sheet {i}: {topic}.\n")
    source = api.post("/api/knowledge-sources", json={"name": "facts", "type": "directory",
                                                      "configuration": {"path": str(folder)}}).json["data"]
    sync_run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
    wait_for(lambda: api.get(f"/api/knowledge-sources/{source['id']}/syncs/{sync_run['id']}").json["data"],
             lambda r: r["status"] == "completed")
    tool = api.post("/api/retrieval-tools", json={"name": "facts", "knowledge_source_id": source["id"]}).json["data"]
    wait_for(lambda: api.get(f"/api/retrieval-tools/{tool['id']}").json["data"]["status"]["status"],
             lambda s: s == "ready")
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({
        "name": "facts suite", "type": "retrieval_tool", "target_id": tool["id"], "metrics": ["mrr"],
        "test_cases": [{"input": topic, "expected_sources": [f"doc{i}.txt"]} for i, topic in enumerate(topics)]}))
    runner = app.test_cli_runner()
    base = runner.invoke(eval_group, ["run", str(suite)])
    assert base.exit_code == 0, base.output
    base_run = base.output.split("run ", 2)[1].split()[0].strip(",")

    # Break the tool: a threshold nothing clears, so every case loses its hit.
    api.put(f"/api/retrieval-tools/{tool['id']}", json={"score_threshold": 0.99})
    head = runner.invoke(eval_group, ["run", "facts suite", "--against", base_run])
    assert head.exit_code == 3, head.output
    assert "significant regression: mrr" in head.output and "regressed" in head.output
    assert "losses 6" in head.output

    same = runner.invoke(eval_group, ["run", "facts suite", "--against", base_run.replace("run_", "run_x")])
    assert same.exit_code == 1 and "does not exist" in same.output

