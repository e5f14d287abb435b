"""The tokenisation rules both lexical indexes share (knowledge/stores/lexical_terms.py)."""
from __future__ import annotations

import threading

import pytest
import Stemmer

from knowledge.stores.lexical_terms import MAX_TERM_CHARS, document_terms, fold, query_terms


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("PRJ-0042", ["prj", "0042", "prj0042"]),
        ("v2.3.1", ["v2", "3", "1", "v231"]),
        ("ISO-27001", ["iso", "27001", "iso27001"]),
        ("RFC 9110", ["rfc", "9110"]),
        ("e-mail", ["e", "mail", "email"]),
        ("snake_case_name", ["snake", "case", "name", "snakecasenam"]),  # the compound is stemmed too
        ("TCP/IP", ["tcp", "ip", "tcpip"]),
        ("1,000,000 users", ["1", "000", "000", "1000000", "user"]),
        ("red, green", ["red", "green"]),  # a comma joins digits only
        ("End. Next", ["end", "next"]),  # a joiner needs a word on both sides
        ("version 2.", ["version", "2"]),
    ],
)
def test_ids_numbers_and_hyphens(text, terms):
    assert document_terms(text) == terms


def test_accents_case_and_compatibility_forms_fold():
    assert document_terms("Café CAFÉ cafe") == ["cafe", "cafe", "cafe"]
    assert document_terms("Straße") == document_terms("strasse")
    assert document_terms("ﬁle") == document_terms("file")  # ligature
    assert document_terms("ＰＲＪ－００４２")[:2] == ["prj", "0042"]  # full-width
    assert fold("Ἀθῆναι") == "αθηναι"  # Greek accents go too


def test_other_scripts_keep_their_marks_and_words_stay_whole():
    assert fold("йод") == "йод"  # й is its own letter in Russian, not и with a breve
    hindi = "हिंदी भाषा"
    assert len(document_terms(hindi)) == 2  # vowel signs are marks inside the word, not separators


def test_stemming_porter():
    assert document_terms("refunds refunded refunding") == ["refund"] * 3
    assert query_terms("Refunds?") == ["refund"]
    assert document_terms("running runs") == ["run", "run"]


def test_terms_with_digits_are_not_stemmed():
    assert document_terms("1990s covid19s") == ["1990s", "covid19s"]


def test_query_terms_drop_stopwords_and_repeats_but_keep_compounds():
    assert query_terms("What is the status of PRJ-0042?") == ["statu", "prj", "0042", "prj0042"]
    assert query_terms("running runs run") == ["run"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]
    assert query_terms("up-to") == ["upto"]  # parts are stopwords, the compound is not
    assert query_terms("") == [] and query_terms("?!") == []


def test_terms_never_carry_query_syntax():
    hostile = '"quoted" (paren) NEAR(a b) col:x * -minus +plus ^caret {b} [c] & | ! <-> \' ; --'
    for term in query_terms(hostile) + document_terms(hostile):
        assert term.isalnum(), term


def test_long_tokens_are_cut_the_same_way_in_documents_and_queries():
    blob = "x" * 500
    assert document_terms(blob) == ["x" * MAX_TERM_CHARS]
    assert query_terms(blob) == document_terms(blob)


def test_stemming_is_safe_across_threads():
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [f"connect{a}{b}ings" for a in letters for b in letters]  # distinct words: no cache hits
    results, errors = [], []

    def work():
        try:
            results.append(document_terms(" ".join(words)))
        except Exception as exc:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert all(r == results[0] for r in results)
    assert results[0] == Stemmer.Stemmer("porter").stemWords(words)
