"""Run report exporters: JSON round trip, CSV quoting and formula defusing, the offline HTML report."""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import json
import random
import re
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from evaluations.report_html import to_html
from evaluations.report_svg import histogram
from evaluations.reports import CSV_COLUMNS, to_csv, to_json

XSS = "<script>alert(1)</script>"


def _run(**overrides):
    run = {
        "id": "erun_1", "status": "completed", "passed": True,
        "created_at": "2026-11-23T10:00:00Z", "started_at": "2026-11-23T10:00:05Z",
        "finished_at": "2026-11-23T10:02:05Z",
        "evaluation": {"id": "eval_1", "name": "SciFact é 日本", "type": "retrieval_tool", "target_id": "ret_1"},
        "target_snapshot": {"top_k": 10, "model": "all-MiniLM-L6-v2", "prompt_version": 3},
        "progress": {"done": 3, "total": 3},
        "metrics": {
            "ndcg@10": {"score": 0.73, "ci_low": 0.69, "ci_high": 0.77, "covered": 3, "total": 3, "errors": 0,
                        "spread": None},
            "faithfulness": {"score": None, "ci_low": None, "ci_high": None, "covered": 0, "total": 3,
                             "errors": 3, "spread": None},
            "answer_words": {"score": 2.4, "ci_low": 1.8, "ci_high": 3.6, "covered": 3, "total": 3, "errors": 0,
                             "spread": None},
        },
        "thresholds": {"ndcg@10": {"threshold": 0.7, "score": 0.73, "passed": True}},
        "totals": {"cases": 3, "errors": 1, "latency_ms": {"p50": 12.0, "p95": 30.0, "mean": 14.1},
                   "tokens": {"input": 30, "output": 15}, "cost": 0.0003},
    }
    run.update(overrides)
    return run


def _result(i, **overrides):
    result = {
        "case_id": f"case_{i}", "ordinal": i, "input": f"question {i}", "expected_output": None,
        "status": "ok", "error": None,
        "scores": {"ndcg@10": 0.5, "faithfulness": None, "answer_words": 2.0},
        "metric_errors": {"faithfulness": "judge returned invalid JSON twice"},
        "answer": f"answer {i}",
        "retrieved": [{"document_id": "doc_a", "external_id": "a.pdf", "score": 0.8, "content": "..."},
                      {"document_id": "doc_b", "external_id": None, "score": 0.5, "content": "..."}],
        "warnings": [], "latency_ms": 12.3, "tokens": {"input": 10, "output": 5}, "cost": 0.0001, "attempts": 1,
    }
    result.update(overrides)
    return result


def _comparison():
    return {
        "base_run_id": "erun_0", "head_run_id": "erun_1",
        "metrics": {
            "ndcg@10": {"metric": "ndcg@10", "n": 3, "base_mean": 0.70, "head_mean": 0.73, "delta": 0.03,
                        "ci_low": 0.01, "ci_high": 0.05, "p_bootstrap": 0.01, "p_permutation": 0.02,
                        "wins": 2, "losses": 0, "ties": 1, "per_case_delta": {"case_0": 0.05},
                        "only_in_base": [], "only_in_head": [], "unscored": []},
            "recall@10": {"metric": "recall@10", "n": 3, "base_mean": 0.9, "head_mean": 0.84, "delta": -0.06,
                          "ci_low": -0.08, "ci_high": -0.04, "p_bootstrap": 0.03, "p_permutation": 0.2,
                          "wins": 0, "losses": 2, "ties": 1, "per_case_delta": {},
                          "only_in_base": ["case_9"], "only_in_head": [], "unscored": ["case_2"]},
        },
        "only_in_base_metrics": ["mrr"], "only_in_head_metrics": [],
    }


def _svg(html, cls):
    """The one SVG of class ``cls`` (the report writes well-formed XML for exactly this)."""
    found = re.findall(rf'<svg class="[^"]*\b{cls}\b.*?</svg>', html, re.S)
    assert len(found) == 1
    return ET.fromstring(found[0])


def _f(el, attr):
    return float(el.get(attr))


# --------------------------------------------------------------------------------------------- JSON


def test_json_round_trips_and_is_stable():
    run, results, comparison = _run(), [_result(0), _result(1, input="¿qué? 日本語")], _comparison()
    text = to_json(run, results, comparison)
    doc = json.loads(text)
    assert doc["run"] == run and doc["results"] == results
    assert "日本語" in text and "\\u" not in text  # UTF-8, not \u escapes
    # Same data with keys inserted in another order gives byte-identical output.
    reordered = {k: run[k] for k in reversed(list(run))}
    assert to_json(reordered, results, comparison) == text
    assert text.startswith('{\n  "comparison"')  # keys sorted, indent 2


def test_json_comparison_gets_significance_without_overriding_a_given_one():
    comparison = _comparison()
    comparison["metrics"]["recall@10"]["significant"] = True  # the API's own verdict wins
    doc = json.loads(to_json(_run(), [], comparison))
    assert doc["comparison"]["metrics"]["ndcg@10"]["significant"] is True   # both p < 0.05
    assert doc["comparison"]["metrics"]["recall@10"]["significant"] is True
    assert "significant" not in _comparison()["metrics"]["ndcg@10"]        # input not mutated
    expected = copy.deepcopy(comparison)
    expected["metrics"]["ndcg@10"]["significant"] = True
    assert doc["comparison"] == expected
    assert json.loads(to_json(_run(), []))["comparison"] is None


def test_json_turns_nan_into_null_instead_of_invalid_json():
    text = to_json(_run(), [_result(0, latency_ms=float("nan"))])
    assert "NaN" not in text
    assert json.loads(text)["results"][0]["latency_ms"] is None


# ---------------------------------------------------------------------------------------------- CSV


def _csv_rows(text):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return reader.fieldnames, list(reader)


def test_csv_columns_values_and_quoting():
    tricky = 'He said "yes", then\nleft, finally'
    results = [
        _result(0, input=tricky, warnings=["w one", "w two"], expected_output="42"),
        _result(1, status="error", error="timeout, after 30 s", answer=None,
                scores={"ndcg@10": None, "legacy_metric": -0.25}, tokens=None),
    ]
    fields, rows = _csv_rows(to_csv(_run(), results))
    # The run's metrics sorted, then extra metrics only seen in results.
    assert fields == [*CSV_COLUMNS, "answer_words", "faithfulness", "ndcg@10", "legacy_metric"]
    first, second = rows
    assert first["input"] == tricky
    assert first["ordinal"] == "0" and first["case_id"] == "case_0" and first["status"] == "ok"
    assert first["expected_output"] == "42" and first["error"] == ""
    assert first["warnings"] == "w one | w two"
    assert first["retrieved"] == "a.pdf | doc_b"  # external id, else the document id
    assert (first["tokens_input"], first["tokens_output"], first["cost"], first["attempts"]) == ("10", "5", "0.0001", "1")
    assert (first["ndcg@10"], first["faithfulness"], first["answer_words"]) == ("0.5", "", "2.0")
    assert first["latency_ms"] == "12.3"
    assert second["error"] == "timeout, after 30 s" and second["answer"] == ""
    assert second["ndcg@10"] == "" and second["legacy_metric"] == "-0.25"  # a negative number stays a number
    assert second["tokens_input"] == "" and second["answer_words"] == ""


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\tinjected", "\rinjected"])
def test_csv_defuses_formulas(text):
    _, rows = _csv_rows(to_csv(_run(), [_result(0, input=text, answer=text, warnings=[text])]))
    assert rows[0]["input"] == "'" + text
    assert rows[0]["answer"] == "'" + text
    assert rows[0]["warnings"] == "'" + text


@pytest.mark.parametrize("text", ["-5", "+1.5e3", "plain = text", "a@b.c"])
def test_csv_leaves_numbers_and_ordinary_text_alone(text):
    _, rows = _csv_rows(to_csv(_run(), [_result(0, input=text)]))
    assert rows[0]["input"] == text


def test_csv_metric_named_like_a_column_gets_a_prefix_and_empty_run_has_a_header():
    run = _run(metrics={"cost": {"score": 0.1}})
    fields, rows = _csv_rows(to_csv(run, [_result(0, scores={"cost": 0.1})]))
    assert fields == [*CSV_COLUMNS, "score:cost"]
    assert rows[0]["cost"] == "0.0001" and rows[0]["score:cost"] == "0.1"
    fields, rows = _csv_rows(to_csv(_run(metrics={}), []))
    assert fields == list(CSV_COLUMNS) and rows == []


# --------------------------------------------------------------------------------------------- HTML


def test_html_escapes_every_user_string():
    run = _run(evaluation={"id": "eval_1", "name": XSS, "type": XSS, "target_id": XSS},
               target_snapshot={"prompt": XSS}, error=XSS, id=XSS)
    run["metrics"][XSS] = {"score": 0.5}
    result = _result(0, input=XSS, answer=XSS, error=XSS, status="error", warnings=[XSS],
                     metric_errors={XSS: XSS}, scores={XSS: 0.5},
                     retrieved=[{"document_id": "d", "external_id": XSS}], case_id=XSS)
    html = to_html(run, [result], _comparison() | {"base_run_id": XSS})
    assert "<script>alert" not in html
    assert html.count("<script") == 1  # only the report's own sorting script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_loads_nothing_from_outside():
    answer = '<img src="https://evil.example/x.png"> see http://example.com'
    html = to_html(_run(), [_result(0, answer=answer)], _comparison())
    assert not re.search(r"""(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"<(?:img|link|iframe|object|embed)\b", html, re.I)
    assert "url(" not in html and "@import" not in html
    assert "http://" not in html.replace("http://example.com", "")
    assert "https://" not in html.replace('src=&quot;https://evil.example/x.png', "")
    # The CSP forbids fetching anything and allows exactly the inline script that is there.
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp


def test_html_header_shows_identity_and_verdict():
    html = to_html(_run(), [_result(0)])
    for text in ("SciFact é 日本", "retrieval_tool", "ret_1", "erun_1", "2026-11-23T10:00:00Z", "2 min 0 s"):
        assert text in html
    assert 'data-verdict="pass">PASS' in html
    assert 'data-verdict="fail">FAIL' in to_html(_run(passed=False), [])
    assert 'data-verdict="none"' in to_html(_run(passed=None), [])


def test_metric_chart_bars_and_whiskers_sit_at_the_scores():
    html = to_html(_run(), [_result(0)])
    svg = _svg(html, "metric-chart")
    x0, width = _f(svg, "data-plot-x"), _f(svg, "data-plot-width")
    rows = {g.get("data-metric"): g for g in svg.iter("g")}
    assert set(rows) == {"ndcg@10", "faithfulness", "answer_words"}

    # ndcg@10 lies in [0, 1]: axis 0..1.
    ndcg = rows["ndcg@10"]
    assert ndcg.get("data-score") == "0.73"
    (bar,) = [r for r in ndcg.iter("rect") if "bar" in r.get("class").split()]
    assert _f(bar, "x") == pytest.approx(x0, abs=0.01)
    assert _f(bar, "width") == pytest.approx(0.73 * width, abs=0.01)
    whisker = next(line for line in ndcg.iter("line") if line.get("class") == "ci")
    assert _f(whisker, "x1") == pytest.approx(x0 + 0.69 * width, abs=0.01)
    assert _f(whisker, "x2") == pytest.approx(x0 + 0.77 * width, abs=0.01)
    threshold = next(line for line in ndcg.iter("line") if line.get("class") == "threshold")
    assert _f(threshold, "x1") == pytest.approx(x0 + 0.7 * width, abs=0.01)
    assert "pass" in bar.get("class")

    # answer_words leaves [0, 1]: its own axis 0..3.6 (the CI's top).
    words = rows["answer_words"]
    (bar,) = [r for r in words.iter("rect") if "bar" in r.get("class").split()]
    assert _f(bar, "width") == pytest.approx(2.4 / 3.6 * width, abs=0.01)
    whisker = next(line for line in words.iter("line") if line.get("class") == "ci")
    assert _f(whisker, "x1") == pytest.approx(x0 + 1.8 / 3.6 * width, abs=0.01)
    assert _f(whisker, "x2") == pytest.approx(x0 + width, abs=0.01)

    # faithfulness has no score: no bar, no whisker, said in words.
    faith = rows["faithfulness"]
    assert not [r for r in faith.iter("rect") if "bar" in r.get("class").split()]
    assert not [line for line in faith.iter("line") if line.get("class") == "ci"]
    assert "no score" in "".join(faith.itertext())
    assert "0.730 [0.690, 0.770]" in html


def _hist_counts(html, metric):
    figure = re.search(rf'<figure class="hist" data-metric="{re.escape(metric)}".*?</figure>', html, re.S).group(0)
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", figure, re.S).group(0))
    bars = sorted(svg.iter("rect"), key=lambda r: int(r.get("data-bin")))
    unscored = int(re.search(r'data-unscored="(\d+)"', figure).group(1))
    return [int(r.get("data-count")) for r in bars], unscored, bars


def test_histogram_counts_match_hand_counts():
    scores = [0.0, 0.05, 0.1, 0.15, 0.3, 0.95, 1.0, None]
    results = [_result(i, scores={"ndcg@10": s}) for i, s in enumerate(scores)]
    results.append(_result(99, scores={}))  # never scored on the metric at all
    html = to_html(_run(metrics={"ndcg@10": {"score": 0.36}}), results)
    counts, unscored, bars = _hist_counts(html, "ndcg@10")
    assert counts == [2, 2, 0, 1, 0, 0, 0, 0, 0, 2]
    assert unscored == 2
    assert [float(bars[3].get("data-lo")), float(bars[3].get("data-hi"))] == pytest.approx([0.3, 0.4])
    # Bar heights are proportional to the counts.
    assert _f(bars[3], "height") * 2 == pytest.approx(_f(bars[0], "height"), abs=0.02)
    assert _f(bars[2], "height") == 0


def test_histogram_outside_unit_range_uses_the_values_range():
    results = [_result(i, scores={"answer_words": s}) for i, s in enumerate([2, 4, 6, 12])]
    counts, unscored, bars = _hist_counts(to_html(_run(), results), "answer_words")
    assert counts == [1, 0, 1, 0, 1, 0, 0, 0, 0, 1] and unscored == 0
    assert float(bars[0].get("data-lo")) == 2 and float(bars[-1].get("data-hi")) == 12


def test_histogram_function_agrees_with_numpy_and_puts_edges_in_the_upper_bin():
    assert histogram([i / 10 for i in range(11)]) == (0.0, 1.0, [1] * 9 + [2])
    values = np.random.default_rng(3).random(2000).tolist()
    assert histogram(values)[2] == np.histogram(values, bins=10, range=(0, 1))[0].tolist()
    wide = (np.random.default_rng(4).random(500) * 7 - 2).tolist()
    lo, hi, counts = histogram(wide)
    assert (lo, hi) == (min(wide), max(wide))
    assert counts == np.histogram(wide, bins=10)[0].tolist()
    # Bins 0.3 wide from -0.3: a value on an edge goes to the bin it opens, although float division
    # would put 0.0, 0.3 and 2.1 a hair below their edges.
    assert histogram([-0.3, 0.0, 0.3, 2.1, 2.7]) == (-0.3, 2.7, [1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    assert histogram([]) == (0.0, 1.0, [0] * 10)
    assert histogram([3.0, 3.0]) == (2.5, 3.5, [0, 0, 0, 0, 0, 2, 0, 0, 0, 0])


def test_thresholds_and_totals_are_shown():
    html = to_html(_run(), [_result(0)])
    thresholds = re.search(r'<section id="thresholds">.*?</section>', html, re.S).group(0)
    assert "<td>ndcg@10</td><td class='num'>0.700</td><td class='num'>0.730</td>" in thresholds
    assert "yes" in thresholds
    totals = re.search(r'<section id="totals">.*?</section>', html, re.S).group(0)
    for text in ("<dd>3</dd>", "<dd>1</dd>", "12 ms", "30 ms", "30 / 15", "0.0003"):
        assert text in totals
    assert "No thresholds set" in to_html(_run(thresholds={}), [])


def test_comparison_section_only_with_a_comparison():
    assert 'id="comparison"' not in to_html(_run(), [_result(0)])
    html = to_html(_run(), [_result(0)], _comparison())
    assert 'id="comparison"' in html and "erun_0" in html
    svg = _svg(html, "delta-chart")
    x0, width = _f(svg, "data-plot-x"), _f(svg, "data-plot-width")
    # Largest |value| is 0.08, so the symmetric axis runs from -0.1 to +0.1.
    assert (float(svg.get("data-domain-lo")), float(svg.get("data-domain-hi"))) == (-0.1, 0.1)

    def x(v):
        return x0 + (v + 0.1) / 0.2 * width

    rows = {g.get("data-metric"): g for g in svg.iter("g")}
    up, down = rows["ndcg@10"], rows["recall@10"]
    assert up.get("data-significant") == "true"
    assert down.get("data-significant") == "false"  # p_permutation 0.2
    bar = next(r for r in up.iter("rect") if "bar" in r.get("class"))
    assert "up" in bar.get("class")
    assert _f(bar, "x") == pytest.approx(x(0), abs=0.01)
    assert _f(bar, "x") + _f(bar, "width") == pytest.approx(x(0.03), abs=0.01)
    bar = next(r for r in down.iter("rect") if "bar" in r.get("class"))
    assert "down" in bar.get("class")
    assert _f(bar, "x") == pytest.approx(x(-0.06), abs=0.01)
    assert _f(bar, "x") + _f(bar, "width") == pytest.approx(x(0), abs=0.01)
    whisker = next(line for line in down.iter("line") if line.get("class") == "ci")
    assert (_f(whisker, "x1"), _f(whisker, "x2")) == (pytest.approx(x(-0.08), abs=0.01),
                                                      pytest.approx(x(-0.04), abs=0.01))
    table = re.search(r'<tr data-metric="recall@10">.*?</tr>', html).group(0)
    for text in ("0.900", "0.840", "-0.060", "0.0300", "0.2000", "0 / 2 / 1", "<td>no</td>",
                 "1 only base, 0 only head, 1 unscored"):
        assert text in table
    assert "Only in base: mrr" in html


def test_comparison_without_paired_cases_renders():
    comparison = {"base_run_id": "a", "head_run_id": "b", "only_in_base_metrics": [], "only_in_head_metrics": [],
                  "metrics": {"f1": {"n": 0, "base_mean": None, "head_mean": None, "delta": None,
                                     "ci_low": None, "ci_high": None, "p_bootstrap": None,
                                     "p_permutation": None, "wins": 0, "losses": 0, "ties": 0}}}
    html = to_html(_run(), [], comparison)
    row = next(g for g in _svg(html, "delta-chart").iter("g"))
    assert row.get("data-significant") == "false" and "no paired cases" in "".join(row.itertext())


def test_case_table_marks_failed_cases_and_truncates_answers():
    long_answer = "word " * 400
    results = [_result(0, answer=long_answer), _result(1, status="error", error="boom"),
               _result(2, status="timeout", error="took too long", warnings=["expected source 'x.pdf' missing"])]
    html = to_html(_run(), results)
    rows = re.findall(r"<tr( class=\"bad\")? data-case-id=\"(case_\d)\">(.*?)</tr>", html, re.S)
    assert [(bool(bad), case) for bad, case, _ in rows] == [(False, "case_0"), (True, "case_1"), (True, "case_2")]
    assert long_answer.strip() not in html
    answer_cell = re.search(r"<td>(word (?:word )*.*?)</td>", rows[0][2]).group(1)
    assert answer_cell.endswith("…") and len(answer_cell) <= 301
    assert "took too long" in rows[2][2] and "expected source &#x27;x.pdf&#x27; missing" in rows[2][2]
    assert "judge returned invalid JSON twice" in rows[0][2]  # the metric's error, not a silent blank
    assert "a.pdf" in rows[0][2] and "doc_b" in rows[0][2]


def test_snapshot_is_pretty_json_in_details():
    html = to_html(_run(), [])
    snapshot = re.search(r'<section id="snapshot">.*?</section>', html, re.S).group(0)
    assert "<details>" in snapshot
    assert "&quot;model&quot;: &quot;all-MiniLM-L6-v2&quot;,\n  &quot;prompt_version&quot;: 3" in snapshot


def test_cancelled_run_with_nulls_and_no_results_renders():
    run = {"id": "erun_x", "status": "cancelled", "passed": None, "evaluation": None, "target_snapshot": None,
           "progress": {"done": 120, "total": 300}, "metrics": {"ndcg@10": {"score": None}}, "thresholds": None,
           "totals": None}
    html = to_html(run, [])
    assert "cancelled" in html and "120 / 300 cases" in html and "partial" in html
    assert "No case results" in html and "No thresholds set" in html
    svg = _svg(html, "metric-chart")
    assert not [r for r in svg.iter("rect") if "bar" in r.get("class").split()]
    assert to_csv(run, []).strip() == ",".join(CSV_COLUMNS) + ",ndcg@10"
    assert json.loads(to_json(run, []))["run"] == run
    # Partial results with missing fields everywhere.
    sparse = [{"case_id": "c1", "status": "ok"}, {"case_id": "c2", "status": "timeout", "scores": {"ndcg@10": None}}]
    html = to_html(run, sparse)
    assert html.count('class="bad"') == 1 and 'data-unscored="2"' in html
    _, rows = _csv_rows(to_csv(run, sparse))
    assert [r["ndcg@10"] for r in rows] == ["", ""]


def test_large_run_renders_fast_without_per_case_charts():
    rng = random.Random(0)
    results = [_result(i, input=f"question {i} " * 5, answer="a" * 500,
                       scores={"ndcg@10": rng.random(), "faithfulness": rng.choice([None, 1.0, 0.0]),
                               "answer_words": rng.random() * 4})
               for i in range(5000)]
    started = time.perf_counter()
    html = to_html(_run(), results, _comparison())
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert html.count("data-case-id=") == 5000
    # Charts: metric chart, one histogram per metric, the delta chart; none per case.
    assert html.count("<svg") == 1 + 3 + 1
