"""Shared data and helpers for the vector-store and lexical-index suites (not a conftest on purpose)."""
from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

from knowledge.types import Chunk

POSTGRES_URL = os.environ.get("MAGNET_TEST_POSTGRES_URL")


def make_chunk(
    chunk_id: str,
    text: str,
    document_id: str = "doc_1",
    *,
    source_id: str = "ks_1",
    ordinal: int = 0,
    page: int | None = None,
    heading_path: tuple[str, ...] = (),
    metadata: dict[str, Any] | None = None,
) -> Chunk:
    """A Chunk with a real content hash and a rough token count."""
    return Chunk(
        id=chunk_id,
        document_id=document_id,
        source_id=source_id,
        ordinal=ordinal,
        text=text,
        token_count=len(text.split()),
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        page=page,
        heading_path=heading_path,
        metadata=metadata or {},
    )


# A small corpus of three documents; each sentence is about one clearly different thing.
CORPUS = [
    make_chunk("c_pw", "To reset your password, open Settings and choose 'Forgot password'.", "doc_account",
               ordinal=0, page=1, heading_path=("Account", "Security")),
    make_chunk("c_2fa", "Two-factor authentication adds a one-time code to every sign-in.", "doc_account",
               ordinal=1, page=2, heading_path=("Account", "Security")),
    make_chunk("c_runs", "The nightly backup job runs at 2 AM and copies the database to object storage.",
               "doc_ops", ordinal=0, page=1, metadata={"team": "ops", "tags": ["backup"], "priority": 2}),
    make_chunk("c_disk", "When the disk is full, the server stops accepting uploads.", "doc_ops",
               ordinal=1, page=3, metadata={"team": "ops", "priority": 5}),
    make_chunk("c_cake", "Preheat the oven to 180 degrees and bake the chocolate cake for forty minutes.",
               "doc_recipes", ordinal=0, metadata={"team": "kitchen"}),
    make_chunk("c_bread", "Knead the dough for ten minutes, then let the bread rise until doubled.",
               "doc_recipes", ordinal=1, metadata={"team": "kitchen"}),
]

# Strings users really type, plus ones aimed at FTS query parsers; none may raise.
HOSTILE_QUERIES = [
    "", "   ", '"', '"unbalanced quote', "'", "(", ")", "((backup", "backup)", "AND", "OR", "NOT", "NEAR",
    "backup AND", "OR backup", "NOT backup", "NEAR(backup job)", "backup*", "*", "-", "-backup", "+backup",
    "^backup", "backup:", "text:backup", "chunk_id:c_runs", "{backup}", "[backup]", "backup & | ! <->",
    "'; DROP TABLE users; --", "\x00backup", "backup\\", "%_", "🙂 backup 🙂", "ünïcödé café", "a" * 5000,
    " ".join(["backup"] * 500), "the of and to",
]


def unique_name(prefix: str = "idx") -> str:
    """An index/collection name no other test uses (Chroma wants 3+ chars of [a-zA-Z0-9._-])."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
