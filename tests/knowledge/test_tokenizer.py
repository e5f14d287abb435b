"""The offline cl100k_base tokenizer."""
from __future__ import annotations

import socket

import pytest

from knowledge import tokenizer
from knowledge.tokenizer import TokenizerDataError, count_tokens, get_encoding, load_encoding


def test_known_cl100k_token_ids():
    enc = get_encoding()
    # Reference ids published for cl100k_base (tiktoken README / OpenAI tokenizer page).
    assert enc.encode("hello world") == [15339, 1917]
    assert enc.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert enc.name == "cl100k_base"
    assert enc.n_vocab == 100277


def test_count_tokens():
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("tiktoken is great!") == 6
    assert count_tokens("héllo wörld, ça va?") == len(get_encoding().encode("héllo wörld, ça va?"))


def test_special_tokens_are_registered():
    enc = get_encoding()
    assert enc.encode("<|endoftext|>", allowed_special="all") == [100257]
    assert enc.encode("<|fim_prefix|><|fim_middle|><|fim_suffix|>", allowed_special="all") == [
        100258, 100259, 100260,
    ]
    assert enc.encode("<|endofprompt|>", allowed_special="all") == [100276]


def test_special_token_text_in_a_document_is_counted_as_text_not_an_error():
    # A document that mentions "<|endoftext|>" must not make ingestion fail.
    n = count_tokens("the model emits <|endoftext|> at the end")
    assert n > 8


def test_encoding_is_loaded_once_per_process():
    assert get_encoding() is get_encoding()


def test_loads_without_network(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # nothing cached to fall back on
    enc = load_encoding()
    assert enc.encode("hello world") == [15339, 1917]


def test_hash_mismatch_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    damaged = tmp_path / "cl100k_base.tiktoken"
    data = bytearray(tokenizer.BPE_PATH.read_bytes())
    data[10] ^= 0x01
    damaged.write_bytes(bytes(data))
    with pytest.raises(TokenizerDataError, match="corrupt or not cl100k_base.*sha256"):
        load_encoding(damaged)


def test_missing_data_file_raises_a_clear_error(tmp_path):
    with pytest.raises(TokenizerDataError, match="cannot be read"):
        load_encoding(tmp_path / "missing.tiktoken")
