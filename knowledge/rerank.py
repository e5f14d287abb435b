"""Optional reranking stage: a sentence-transformers CrossEncoder loaded from a local folder.

No reranker weights ship with Magnet; an operator points ``model_path`` at a folder holding a
cross-encoder (for example ms-marco-MiniLM-L-6-v2 saved with ``save_pretrained``). Loading is offline
by construction and happens once per process and path/device, like the embedder.

Scores are the model's own output (a sigmoid probability for the usual one-label models): they order
the candidates of one query and are reported per hit as ``scores["rerank"]``; they are not the scale
``score_threshold`` applies to (see :mod:`knowledge.retrieval`).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowledge.tokenizer import count_tokens
from knowledge.types import ModelUsage

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}


def _load(path: str, device: str, max_length: int | None) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from sentence_transformers import CrossEncoder

    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(f"no cross-encoder at {path!r} (expected a folder with config.json)")
    return CrossEncoder(path, device=device, max_length=max_length, local_files_only=True)


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a local CrossEncoder; higher is more relevant.

    ``max_length`` (word pieces per pair) defaults to the model's own limit from its tokenizer config.
    """

    def __init__(self, model_path: str, batch_size: int = 32, device: str = "cpu", max_length: int | None = None):
        self.model_path = str(Path(model_path).resolve())
        self.name = Path(self.model_path).name
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._loaded: tuple[Any, threading.Lock] | None = None

    def warm_up(self) -> None:
        """Load the model (once per process and path/device; later calls and instances reuse it)."""
        if self._loaded is not None:
            return
        key = (self.model_path, self.device)
        with _LOCK:
            if key not in _MODELS:
                # One encoding at a time per model: HF fast tokenizers are not safe to share across threads.
                _MODELS[key] = (_load(self.model_path, self.device, self.max_length), threading.Lock())
            self._loaded = _MODELS[key]

    def count_input_tokens(self, query: str, texts: Sequence[str]) -> int:
        """Word pieces the model reads for the ``(query, text)`` pairs: ``[CLS] query [SEP] text [SEP]``
        each, truncated as ``predict`` truncates them (longest first, to the model's limit), no padding."""
        if not texts:
            return 0
        self.warm_up()
        assert self._loaded is not None
        model, lock = self._loaded
        limit = getattr(model, "max_seq_length", None) or model.max_length  # renamed in sentence-transformers 6
        with lock:  # the tokenizer is the one predict uses
            encoded = model.tokenizer([query] * len(texts), list(texts), truncation="longest_first", max_length=limit)
        return sum(len(ids) for ids in encoded["input_ids"])

    def run(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in the order given."""
        if not texts:
            return []
        self.warm_up()
        assert self._loaded is not None
        model, lock = self._loaded
        with lock:
            scores = model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                   show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]


def rerank_with_usage(reranker: Any, query: str, texts: Sequence[str]) -> tuple[list[float], ModelUsage]:
    """Scores plus the pairs scored and their tokens; a reranker that cannot count its tokens is metered
    with cl100k (query + text per pair), flagged as estimated."""
    scores = reranker.run(query, texts)
    counter = getattr(reranker, "count_input_tokens", None)
    if counter is not None:
        return scores, ModelUsage(inputs=len(texts), tokens=int(counter(query, texts)))
    per_query = count_tokens(query)
    tokens = sum(per_query + count_tokens(t) for t in texts)
    return scores, ModelUsage(inputs=len(texts), tokens=tokens, estimated=True)
