"""The built-in extractive answerer: it quotes the best sentences with [n] markers, or says nothing."""
from __future__ import annotations

import pytest

from app.runtime.extractive import ExtractiveAnswerer, LocalExtractiveClient, content_terms, split_sentences
from app.runtime.llm_types import ChatMessage, Done, TextDelta
from app.services.usage import cost_of
from knowledge.tokenizer import count_tokens

PASSAGES = [
    "Paris is the capital of France. The city has about two million inhabitants.",
    "Gustave Eiffel's company built the tower for the 1889 World's Fair. "
    "The Eiffel Tower was completed in March 1889. It is 330 metres tall.",
    "The Louvre is the world's most visited museum. It houses the Mona Lisa.",
]


def test_picks_the_sentence_that_answers_with_a_citation_marker():
    text, citations = ExtractiveAnswerer(max_sentences=1).answer("When was the Eiffel Tower completed?", PASSAGES)

    assert text == "The Eiffel Tower was completed in March 1889 [2]."
    assert citations == [{"index": 2, "sentence": "The Eiffel Tower was completed in March 1889.", "passage": 2}]


def test_quotes_several_sentences_of_the_matching_passage_and_nothing_unrelated():
    text, citations = ExtractiveAnswerer(max_sentences=3).answer("How tall is the Eiffel Tower?", PASSAGES)

    assert "It is 330 metres tall [2]." in text
    assert len(citations) == 3 and {c["passage"] for c in citations} == {2}  # not Paris, not the Louvre
    assert text == " ".join(f"{c['sentence'][:-1]} [2]." for c in citations)  # markers match citations


def test_off_topic_query_gets_no_answer():
    assert ExtractiveAnswerer().answer("How do rockets reach orbit?", PASSAGES) == ("", [])
    assert ExtractiveAnswerer().answer("What is it?", PASSAGES) == ("", [])  # stopwords only
    assert ExtractiveAnswerer().answer("capital", []) == ("", [])


def test_equal_matches_keep_retrieval_order_and_duplicates_are_quoted_once():
    passages = ["Widgets are blue.", "Gadgets are red. Widgets are blue.", "Widgets come in boxes."]
    text, citations = ExtractiveAnswerer(max_sentences=3).answer("widgets", passages)

    assert [c["passage"] for c in citations] == [1, 3]  # passage 2 repeats passage 1's sentence
    assert text == "Widgets are blue [1]. Widgets come in boxes [3]."


def test_max_sentences_is_respected():
    passages = [f"Tea sentence number {i} is about tea." for i in range(10)]
    _, citations = ExtractiveAnswerer(max_sentences=2).answer("tea", passages)
    assert len(citations) == 2
    with pytest.raises(ValueError):
        ExtractiveAnswerer(max_sentences=0)


def test_headings_and_lead_ins_are_never_quoted_alone():
    passage = ("## Roles and keys\n\nEach key has one of three roles:\n- a viewer key reads\n"
               "- an admin key creates other keys")
    text, citations = ExtractiveAnswerer(max_sentences=3).answer("Which roles can a key have?", [passage])

    assert text == "- an admin key creates other keys [1] - a viewer key reads [1]"  # best first: "keys" twice
    assert [c["sentence"] for c in citations] == ["- an admin key creates other keys", "- a viewer key reads"]
    assert ExtractiveAnswerer().answer("roles", ["# Roles\n\nThe roles are:"]) == ("", [])


def test_sentence_splitting_and_terms():
    assert split_sentences("One. Two!\nThree without a stop\n\nFour? ") == [
        "One.", "Two!", "Three without a stop", "Four?"]
    assert content_terms("What are the capitals of the countries?") == ["capital", "country"]


def test_local_client_answers_from_context_passages_at_no_cost(app):
    from app.models import LlmModel

    client = LocalExtractiveClient()
    messages = [ChatMessage("system", "Use the context."), ChatMessage("user", "When was the Eiffel Tower completed?")]

    result = client.complete(messages, context_passages=PASSAGES)

    assert result.text.startswith("The Eiffel Tower was completed in March 1889 [2].")
    assert result.citations[0]["passage"] == 2 and result.finish_reason == "stop" and result.tool_calls == []
    query_tokens = count_tokens("When was the Eiffel Tower completed?")
    assert result.usage.prompt_tokens == query_tokens + sum(count_tokens(p) for p in PASSAGES)
    assert result.usage.completion_tokens == count_tokens(result.text)
    builtin = app.extensions["sqlalchemy"].session.query(LlmModel).filter_by(model_id="extractive").one()
    assert cost_of(builtin, result.usage) == 0.0


def test_local_client_streams_the_same_answer_and_handles_no_passages():
    client = LocalExtractiveClient(model_name="extractive")
    messages = [ChatMessage("user", "How tall is the Eiffel Tower?")]

    events = list(client.stream(messages, context_passages=PASSAGES))

    assert isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == events[-1].result.text
    empty = client.complete(messages)
    assert (empty.text, empty.citations) == ("", [])
