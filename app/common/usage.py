"""The token counts of one metered call: what providers report (app.runtime) and the ledger records
(app.services.usage)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens the provider served from its cache
