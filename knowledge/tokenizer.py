"""Offline ``cl100k_base`` tokenizer: the one token count every chunk size and limit is measured in.

tiktoken's own ``get_encoding("cl100k_base")`` downloads the BPE ranks from the internet on first use;
a self-hosted service must work air-gapped, so the ranks ship with the package and are checked against
OpenAI's published sha256 before use.
"""
from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

ENCODING_NAME = "cl100k_base"
BPE_PATH = Path(__file__).parent / "data" / "cl100k_base.tiktoken"
BPE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# Copied from tiktoken_ext/openai_public.py (cl100k_base); must match it exactly or counts drift.
PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


class TokenizerDataError(RuntimeError):
    """The shipped BPE file is missing or is not the expected cl100k_base file."""


def load_encoding(path: str | Path = BPE_PATH) -> tiktoken.Encoding:
    """Build the cl100k_base encoding from a local ranks file, verifying its sha256 first.

    Raises TokenizerDataError when the file is missing or its hash differs. Never touches the network:
    the path is a plain file path, which tiktoken reads directly.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenizerDataError(f"tokenizer data file {path} cannot be read: {exc}") from exc
    actual = hashlib.sha256(raw).hexdigest()
    # Checked here rather than only by tiktoken: tiktoken also trusts a copy in its temp-dir cache,
    # which would hide a damaged shipped file, and its message talks about a "download".
    if actual != BPE_SHA256:
        raise TokenizerDataError(
            f"tokenizer data file {path} is corrupt or not cl100k_base: "
            f"sha256 {actual}, expected {BPE_SHA256}"
        )
    ranks = load_tiktoken_bpe(str(path.resolve()), expected_hash=BPE_SHA256)
    return tiktoken.Encoding(
        name=ENCODING_NAME, pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=SPECIAL_TOKENS
    )


@cache
def get_encoding() -> tiktoken.Encoding:
    """The process-wide cl100k_base encoding (loaded once, on first use)."""
    return load_encoding()


def encode(text: str) -> list[int]:
    """Token ids of ``text``; special-token strings in documents are ordinary text, never an error."""
    return get_encoding().encode_ordinary(text)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    return len(encode(text))
