"""Embedding with a per-call account of the work done, for metering (see ``knowledge.types.ModelUsage``).

Per call rather than from the cache's cumulative counters: one embedder is shared by every sync and query
of a process, so a before/after difference of its counters would mix concurrent callers' work.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knowledge import tokenizer
from knowledge.types import ModelUsage


def count_input_tokens(embedder: Any, texts: Sequence[str]) -> tuple[int, bool]:
    """Tokens ``embedder``'s model reads for ``texts`` and whether that is an estimate.

    The model's own count when it has one (``count_input_tokens``), else cl100k, flagged as estimated.
    """
    counter = getattr(embedder, "count_input_tokens", None)
    if counter is not None:
        return int(counter(texts)), False
    return sum(tokenizer.count_tokens(t) for t in texts), True


def embed_with_usage(
    embedder: Any, texts: Sequence[str], hashes: Sequence[str] | None = None, *, count_cached: bool = False
) -> tuple[Any, ModelUsage]:
    """Vectors for ``texts`` plus what producing them cost.

    A ``CachedEmbedder`` (anything with ``embed``) reports cache hits; any other embedder embeds every
    text, and ``hashes`` (a cache key) are then unused.
    """
    embed = getattr(embedder, "embed", None)
    if embed is not None:
        return embed(texts, hashes=hashes, count_cached=count_cached)
    vectors = embedder.run(texts)
    tokens, estimated = count_input_tokens(embedder, texts)
    return vectors, ModelUsage(inputs=len(texts), tokens=tokens, estimated=estimated)
