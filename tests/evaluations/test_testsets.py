"""Test-set import: JSON/JSONL/CSV parsing with aliases and graded sources, error reporting, BEIR folders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluations.beir import read_beir
from evaluations.case_fields import MAX_INPUT_CHARS, TestSetError, normalize_test_case
from evaluations.testsets import MAX_CASES, MAX_ERRORS, detect_format, parse_test_cases

BEIR_MINI = Path(__file__).resolve().parent.parent / "fixtures" / "beir_mini"


def _errors(data, fmt):
    with pytest.raises(TestSetError) as info:
        parse_test_cases(data, fmt)
    return info.value.errors


def _case(**overrides):
    base = {"input": "q", "expected_output": None, "expected_sources": [], "expected_no_answer": False,
            "metadata": {}, "filters": None}
    return {**base, **overrides}


# --- JSON -------------------------------------------------------------------------------------------

def test_json_list_with_every_field_is_normalised():
    data = json.dumps([{
        "input": "  What is the refund window?  ",
        "expected_output": "30 days",
        "expected_sources": ["policy.pdf", {"id": "faq.md", "grade": 2}, {"old.pdf": 0}],
        "expected_no_answer": False,
        "metadata": {"topic": "billing"},
        "filters": {"collection": "support"},
    }])
    assert parse_test_cases(data, "json") == [_case(
        input="What is the refund window?",
        expected_output="30 days",
        expected_sources=[{"id": "policy.pdf", "grade": 1.0}, {"id": "faq.md", "grade": 2.0},
                          {"id": "old.pdf", "grade": 0.0}],
        metadata={"topic": "billing"},
        filters={"collection": "support"},
    )]


def test_json_object_with_test_cases_and_defaults():
    cases = parse_test_cases(b'{"test_cases": [{"input": "a"}, {"input": "b", "expected_no_answer": true}]}',
                             "json")
    assert cases == [_case(input="a"), _case(input="b", expected_no_answer=True)]


@pytest.mark.parametrize(("raw", "expected"), [
    ({"question": "q", "answer": "a"}, _case(expected_output="a")),
    ({"query": "q", "expected_answer": "a"}, _case(expected_output="a")),
    ({"question": "q", "ground_truth": ["a", "b"]}, _case(expected_output=["a", "b"])),
    ({"input": "q", "reference": "a"}, _case(expected_output="a")),
    ({"input": "q", "sources": ["x"]}, _case(expected_sources=[{"id": "x", "grade": 1.0}])),
    ({"input": "q", "expected_documents": ["x"]}, _case(expected_sources=[{"id": "x", "grade": 1.0}])),
    ({"input": "q", "relevant_docs": {"x": 2, "y": 1}},
     _case(expected_sources=[{"id": "x", "grade": 2.0}, {"id": "y", "grade": 1.0}])),
    ({"input": "q", "contexts_ids": [7, "c-12"]},
     _case(expected_sources=[{"id": "7", "grade": 1.0}, {"id": "c-12", "grade": 1.0}])),
])
def test_aliases_used_by_other_tools(raw, expected):
    assert parse_test_cases(json.dumps([raw]), "json") == [expected]
    assert normalize_test_case(raw) == expected


def test_blank_answers_mean_no_reference_and_null_fields_take_defaults():
    raw = {"input": "q", "expected_output": "  ", "expected_sources": None, "expected_no_answer": None,
           "metadata": None, "filters": {}}
    assert normalize_test_case(raw) == _case()
    assert normalize_test_case({"input": "q", "expected_output": ["", "a"]})["expected_output"] == ["a"]


def test_unknown_key_is_named_with_a_suggestion_but_metadata_is_free_form():
    errors = _errors('[{"input": "q", "expected_ouptut": "a"}]', "json")
    assert errors == [{"line": None, "case": 0, "field": "expected_ouptut",
                       "message": "unknown field 'expected_ouptut' (did you mean 'expected_output'?); "
                                  "put extra data under 'metadata'"}]
    case = normalize_test_case({"input": "q", "metadata": {"anything": {"goes": [1]}}})
    assert case["metadata"] == {"anything": {"goes": [1]}}


def test_wrong_types_are_reported_per_field_for_every_case():
    data = json.dumps([
        {"input": 42, "expected_sources": 3},
        {"input": "ok"},
        {"question": "", "expected_no_answer": "false", "metadata": [], "filters": "x"},
        {"input": "q", "expected_sources": [{"id": "a", "grade": "high"}, {"id": "b", "grade": -1}]},
        {"expected_output": 5},
        "just a string",
    ])
    got = {(e["case"], e["field"]): e["message"] for e in _errors(data, "json")}
    assert got == {
        (0, "input"): "must be a string, got a number",
        (0, "expected_sources"): "must be a list of source ids, got a number",
        (2, "question"): "must not be empty",
        (2, "expected_no_answer"): "must be true or false, got a string",
        (2, "metadata"): "must be an object, got an array",
        (2, "filters"): "must be an object, got a string",
        (3, "expected_sources[0]"): "grade must be a number, got a string",
        (3, "expected_sources[1]"): "grade must be a finite number >= 0 (0 = judged non-relevant), got -1",
        (4, "expected_output"): "must be a string or a list of strings, got a number",
        (4, "input"): "missing: every test case needs an input (the question)",
        (5, None): "a test case must be an object, got a string",
    }


def test_source_problems_name_the_item():
    cases = [{"input": "q", "sources": ["a", "a"]},
             {"input": "q", "sources": [{"id": "a", "score": 1}]},
             {"input": "q", "sources": [True]},
             {"input": "q", "sources": {"a": True}},
             {"input": "q", "ground_truth": ["a", 3]}]
    got = [(e["case"], e["field"], e["message"]) for e in _errors(json.dumps(cases), "json")]
    assert got == [
        (0, "sources[1]", "'a' is listed twice"),
        (1, "sources[0]", "unknown key 'score' in a source (use 'id' and 'grade')"),
        (2, "sources[0]", "a source id must be a string, got a boolean"),
        (3, "sources.a", "grade must be a number, got a boolean"),
        (4, "ground_truth[1]", "must be a string, got a number"),
    ]


def test_alias_and_canonical_field_together_is_an_error():
    errors = _errors('[{"input": "a", "question": "b"}]', "json")
    assert errors[0]["field"] == "question" and "both give input" in errors[0]["message"]


def test_json_that_drops_data_quietly_is_refused():
    # Duplicate keys (json.loads keeps the last one), NaN, and wrapper keys other than test_cases.
    assert "appears twice" in _errors('[{"input": "a", "input": "b"}]', "json")[0]["message"]
    assert "NaN" in _errors('[{"input": "a", "sources": {"x": NaN}}]', "json")[0]["message"]
    errors = _errors('{"name": "suite", "test_cases": [{"input": "a"}]}', "json")
    assert errors == [{"line": None, "field": "name",
                       "message": "unknown top-level key 'name'; only 'test_cases' is read"}]


def test_malformed_json_reports_its_line():
    errors = _errors('[\n  {"input": "a"},\n  {"input": "b",}\n]', "json")
    assert len(errors) == 1 and errors[0]["line"] == 3 and errors[0]["message"].startswith("invalid JSON")


def test_a_single_object_is_not_a_json_test_set():
    message = _errors('{"input": "a"}', "json")[0]["message"]
    assert "test_cases" in message and "JSONL" in message


# --- JSONL ------------------------------------------------------------------------------------------

def test_jsonl_skips_blank_lines_and_accepts_crlf_and_bom():
    data = '\ufeff{"input": "a", "sources": {"x.pdf": 2}}\r\n\r\n{"question": "b"}\r\n'.encode()
    assert parse_test_cases(data, "jsonl") == [
        _case(input="a", expected_sources=[{"id": "x.pdf", "grade": 2.0}]), _case(input="b")]


def test_jsonl_malformed_line_is_reported_with_its_file_line_and_others_still_checked():
    lines = [json.dumps({"input": f"q{i}"}) for i in range(6)] + ['{"input": "q7"'] + ["", '{"input": 5}']
    errors = _errors("\n".join(lines), "jsonl")
    assert [(e["line"], e["field"]) for e in errors] == [(7, None), (9, "input")]
    assert errors[0]["message"].startswith("invalid JSON")


def test_jsonl_line_must_be_an_object():
    assert _errors('{"input": "a"}\n["b"]\n', "jsonl") == [
        {"line": 2, "field": None, "message": "a test case must be an object, got an array"}]


def test_jsonl_keeps_u2028_inside_strings():
    # str.splitlines() would cut this line in two; JSON allows the character unescaped.
    assert parse_test_cases('{"input": "a\u2028b"}', "jsonl")[0]["input"] == "a\u2028b"


# --- CSV --------------------------------------------------------------------------------------------

def test_csv_with_quoted_commas_newlines_graded_sources_and_extra_columns():
    data = (
        'question,answer,expected_sources,expected_no_answer,metadata,filters,topic\n'
        '"Hello, what is the refund window?","30 days,\nor 60 for members",a.pdf:2|b.pdf,no,'
        '"{""lang"": ""en""}","{""collection"": ""support""}",billing\n'
        'Who is the CEO?,,,yes,,,\n'
        'Where is https://example.com/x cited?,,"[{""id"": ""https://example.com/x"", ""grade"": 3}]",0,,,\n'
    )
    assert parse_test_cases(data, "csv") == [
        _case(input="Hello, what is the refund window?", expected_output="30 days,\nor 60 for members",
              expected_sources=[{"id": "a.pdf", "grade": 2.0}, {"id": "b.pdf", "grade": 1.0}],
              metadata={"lang": "en", "topic": "billing"}, filters={"collection": "support"}),
        _case(input="Who is the CEO?", expected_no_answer=True),
        _case(input="Where is https://example.com/x cited?",
              expected_sources=[{"id": "https://example.com/x", "grade": 3.0}]),
    ]


def test_csv_pipe_ids_keep_url_colons_and_header_case_and_bom_are_tolerated():
    data = "\ufeffInput,Sources\nq,https://example.com/a | doc-1:0 |\n".encode()
    assert parse_test_cases(data, "csv") == [_case(expected_sources=[
        {"id": "https://example.com/a", "grade": 1.0}, {"id": "doc-1", "grade": 0.0}])]


def test_csv_errors_use_the_line_a_row_starts_on():
    data = ('input,expected_no_answer,metadata\n'
            '"multi\nline question",maybe,\n'
            ',,\n'
            ',no,\n'
            'q,true,[1]\n')
    errors = _errors(data, "csv")
    assert [(e["line"], e["field"], e["message"]) for e in errors] == [
        (2, "expected_no_answer", "must be true/false, 1/0 or yes/no, got 'maybe'"),
        (5, "input", "must not be empty"),
        (6, "metadata", "must be a JSON object, got an array"),
    ]


def test_csv_header_problems():
    assert _errors("answer,notes\na,b\n", "csv")[0]["message"] == "no input column: name one 'input' or 'question'"
    errors = _errors("input,question\na,b\n", "csv")
    assert errors[0]["line"] == 1 and "both give input" in errors[0]["message"]
    assert _errors("input,,x\na,b,c\n", "csv")[0]["message"] == "column 2 has no name in the header row"


def test_csv_row_longer_than_the_header_and_metadata_clash():
    errors = _errors('input,topic,metadata\na,b,"{""topic"": ""c""}",extra\nq,t,"{""topic"": ""u""}"\n', "csv")
    assert [(e["line"], e["field"]) for e in errors] == [(2, None), (3, "topic")]
    assert errors[0]["message"] == "the row has 4 cells but the header has 3 columns"


def test_csv_semicolon_delimiter_from_spreadsheets():
    assert parse_test_cases("input;answer\nWhat, exactly?;this\n", "csv") == [
        _case(input="What, exactly?", expected_output="this")]


# --- whole-file rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_empty_file_is_an_error(fmt):
    assert "empty" in _errors(b"", fmt)[0]["message"]
    assert "empty" in _errors(" \n\n", fmt)[0]["message"]


@pytest.mark.parametrize(("data", "fmt"), [("[]", "json"), ('{"test_cases": []}', "json"), ("input\n", "csv")])
def test_a_set_without_cases_is_an_error(data, fmt):
    assert _errors(data, fmt)[0]["message"] == "the test set has no test cases"


def test_non_utf8_bytes_are_an_error_with_the_line_not_a_latin1_guess():
    errors = _errors(b'{"input": "a"}\n{"input": "caf\xe9"}\n', "jsonl")
    assert errors[0]["line"] == 2 and "not valid UTF-8" in errors[0]["message"]
    assert "UTF-16" in _errors("input\na\n".encode("utf-16"), "csv")[0]["message"]


def test_overlong_input_is_an_error_on_its_line():
    errors = _errors(f'{{"input": "ok"}}\n{{"input": "{"x" * (MAX_INPUT_CHARS + 1)}"}}\n', "jsonl")
    assert errors == [{"line": 2, "field": "input",
                       "message": f"is {MAX_INPUT_CHARS + 1} characters long; the limit is {MAX_INPUT_CHARS}"}]
    assert parse_test_cases(json.dumps([{"input": "x" * MAX_INPUT_CHARS}]), "json")


def test_too_many_cases_is_an_error():
    data = "\n".join(['{"input": "q"}'] * (MAX_CASES + 1))
    errors = _errors(data, "jsonl")
    assert errors[-1]["line"] == MAX_CASES + 1 and str(MAX_CASES) in errors[-1]["message"]


def test_errors_are_capped_and_the_cap_is_reported():
    with pytest.raises(TestSetError) as info:
        parse_test_cases("\n".join(['{"input": 1}'] * (MAX_ERRORS + 10)), "jsonl")
    assert len(info.value.errors) == MAX_ERRORS and info.value.truncated
    assert "more" in str(info.value)


def test_unsupported_format_and_error_is_a_value_error():
    with pytest.raises(ValueError, match="unsupported format 'xml'"):
        parse_test_cases("<x/>", "xml")
    assert parse_test_cases('{"input": "a"}', "ndjson") == [_case(input="a")]


# --- detect_format ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("filename", "content_type", "data", "expected"), [
    ("suite.JSON", "text/csv", b"input\n", "json"),  # the extension wins
    ("suite.ndjson", None, b"[]", "jsonl"),
    ("suite.csv", "application/json", b"[]", "csv"),
    ("upload", "application/x-ndjson; charset=utf-8", b"[]", "jsonl"),
    (None, "text/csv", b"[]", "csv"),
    ("suite.txt", "text/plain", b'  [{"input": "a"}]', "json"),
    (None, None, b'{"input": "a"}\n{"input": "b"}\n', "jsonl"),
    (None, None, b'\xef\xbb\xbf{"input": "a"}', "jsonl"),  # one case on one line
    (None, None, b'{"test_cases": [{"input": "a"}]}', "json"),
    (None, None, b'{\n  "test_cases": [\n    {"input": "a"}\n  ]\n}\n', "json"),  # pretty-printed
    (None, "application/octet-stream", b"question,answer\nq,a\n", "csv"),
    (None, None, b"", "csv"),
])
def test_detect_format(filename, content_type, data, expected):
    assert detect_format(filename, content_type, data) == expected


# --- BEIR -------------------------------------------------------------------------------------------

def test_beir_fixture_end_to_end():
    beir = read_beir(BEIR_MINI)
    assert beir.corpus_path == BEIR_MINI / "corpus.jsonl"
    assert beir.qrels == {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d4": 1}}
    # q3 has no test judgments, so it is not a test query.
    assert beir.queries == {"q1": "Does aspirin help with headaches?",
                            "q2": "When did coffee drinking grow in Vienna?"}
    docs = list(beir.iter_corpus())
    assert len(docs) == 6 and [d[0] for d in docs] == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert docs[2] == ("d3", "", "Headaches have many causes, from dehydration to eye strain.")
    assert docs[3][1] == "Café culture"
    cases = beir.test_cases()
    assert cases[0] == {
        "input": "Does aspirin help with headaches?",
        "expected_output": None,
        "expected_sources": [{"id": "d1", "grade": 2.0}, {"id": "d2", "grade": 1.0}, {"id": "d3", "grade": 0.0}],
        "expected_no_answer": False,
        "metadata": {"beir_query_id": "q1"},
        "filters": None,
    }
    assert [c["metadata"]["beir_query_id"] for c in cases] == ["q1", "q2"]
    # Every BEIR case is a valid normalised case.
    assert [normalize_test_case(c) for c in cases] == cases


def test_beir_other_split():
    beir = read_beir(str(BEIR_MINI), split="train")
    assert beir.split == "train" and beir.queries == {"q3": "Which drink has less caffeine, tea or coffee?"}
    assert beir.qrels == {"q3": {"d5": 1}}


def test_beir_iter_corpus_streams():
    corpus = read_beir(BEIR_MINI).iter_corpus()
    assert next(corpus)[0] == "d1"  # a generator: nothing is read until asked for


@pytest.fixture
def beir_copy(tmp_path):
    folder = tmp_path / "beir"
    shutil.copytree(BEIR_MINI, folder)
    return folder


def test_beir_missing_qrels_names_the_file_and_the_splits_available():
    with pytest.raises(TestSetError) as info:
        read_beir(BEIR_MINI, split="dev")
    error = info.value.errors[0]
    assert error["file"] == str(BEIR_MINI / "qrels" / "dev.tsv")
    assert "qrels/dev.tsv not found" in error["message"] and "splits available: test, train" in error["message"]


def test_beir_missing_queries_or_corpus(beir_copy):
    (beir_copy / "queries.jsonl").unlink()
    with pytest.raises(TestSetError, match="queries.jsonl not found"):
        read_beir(beir_copy)
    (beir_copy / "corpus.jsonl").unlink()
    with pytest.raises(TestSetError, match="corpus.jsonl not found"):
        read_beir(beir_copy)


def test_beir_split_name_cannot_walk_out_of_the_folder():
    with pytest.raises(TestSetError, match="invalid split name"):
        read_beir(BEIR_MINI, split="../../etc/passwd")


def test_beir_bad_qrels_lines_are_all_reported_with_file_and_line(beir_copy):
    qrels = beir_copy / "qrels" / "test.tsv"
    qrels.write_text("q1\td1\t2\nq1 d2 1\nq2\td4\thigh\n\nq1\td1\t1\n")  # no header this time
    with pytest.raises(TestSetError) as info:
        read_beir(beir_copy)
    assert [(e["file"], e["line"]) for e in info.value.errors] == [(str(qrels), 2), (str(qrels), 3),
                                                                   (str(qrels), 5)]
    assert "judged twice" in info.value.errors[2]["message"]


def test_beir_judged_queries_missing_from_queries_jsonl(beir_copy):
    with (beir_copy / "qrels" / "test.tsv").open("a") as fh:
        fh.write("q9\td1\t1\nq8\td2\t1\n")
    with pytest.raises(TestSetError) as info:
        read_beir(beir_copy)
    assert info.value.errors[0]["message"] == "2 judged queries are not in queries.jsonl: 'q9', 'q8'"


def test_beir_negative_grades_read_as_judged_non_relevant(beir_copy):
    (beir_copy / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t-2\nq1\td2\t1\n")
    assert read_beir(beir_copy).qrels == {"q1": {"d1": 0, "d2": 1}}


def test_beir_bad_corpus_line_raises_while_streaming(beir_copy):
    corpus = beir_copy / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "title": "t", "text": "x"}\n{"title": "no id"}\n')
    docs = read_beir(beir_copy).iter_corpus()
    assert next(docs) == ("d1", "t", "x")
    with pytest.raises(TestSetError) as info:
        next(docs)
    assert info.value.errors[0] | {"message": None} == {"file": str(corpus), "line": 2, "field": "_id",
                                                        "message": None}


def test_text_no_database_can_store_is_an_error_on_its_line():
    lines = ['{"input": "fine"}', '{"input": "a\\u0000b"}', '{"input": "ok", "metadata": {"team": "x\\ud800"}}',
             '{"input": "ok", "filters": {"k\\u0000": "v"}}', '{"input": "smile \\ud83d\\ude00"}']
    errors = _errors("\n".join(lines), "jsonl")
    assert [(e["line"], e["field"]) for e in errors] == [(2, "input"), (3, "metadata"), (4, "filters")]
    assert all("NUL character or a lone surrogate" in e["message"] for e in errors)
    assert parse_test_cases(lines[4], "jsonl")[0]["input"] == "smile \U0001F600"  # a surrogate pair is text
