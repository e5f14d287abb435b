"""Conversation memory: which earlier messages an agent sees, within its model's context window.

The last `max_messages` messages are kept, then the oldest are dropped until the prompt fits the window
(counted with the cl100k tokenizer, leaving room for the answer). Dropped turns are not silently lost:
a note tells the model how many were left out and what the user asked in them, so a follow-up such as
"and the second one?" can still be recognised as one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.runtime.llm_types import ChatMessage, ToolSpec, estimate_prompt_tokens

DEFAULT_CONTEXT_WINDOW = 8192
MAX_NOTE_QUESTIONS = 3
NOTE_QUESTION_CHARS = 100


@dataclass(frozen=True)
class Memory:
    messages: list[ChatMessage]  # system prompt(s), the history kept, the new user message
    kept: int  # earlier messages kept
    dropped: int  # earlier messages left out
    prompt_tokens: int  # the estimate the fit was made with


def fit(system: Sequence[ChatMessage], history: Sequence[ChatMessage], user: ChatMessage, *,
        max_messages: int, context_window: int | None, reserve_tokens: int,
        tools: Sequence[ToolSpec] = (), older: int = 0) -> Memory:
    """The prompt for a turn: `system` messages, as much recent `history` as fits, and `user`.
    `older`: how many messages came before `history` (not loaded, but counted in the note)."""
    window = context_window or DEFAULT_CONTEXT_WINDOW
    budget = window - reserve_tokens
    kept = list(history[-max_messages:]) if max_messages > 0 else []
    while True:
        kept = _from_a_user_turn(kept)
        dropped = history[: len(history) - len(kept)]
        messages = [*system, *_note(dropped, older), *kept, user]
        tokens = estimate_prompt_tokens(messages, tools)
        if tokens <= budget or not kept:
            return Memory(messages=messages, kept=len(kept), dropped=len(dropped) + older, prompt_tokens=tokens)
        kept = kept[1:]


def _from_a_user_turn(messages: list[ChatMessage]) -> list[ChatMessage]:
    """History must start with a user message: an answer without its question misleads the model."""
    start = next((i for i, m in enumerate(messages) if m.role == "user"), len(messages))
    return messages[start:]


def _note(dropped: Sequence[ChatMessage], older: int) -> list[ChatMessage]:
    count = len(dropped) + older
    if not count:
        return []
    questions = [m.content or "" for m in dropped if m.role == "user"][-MAX_NOTE_QUESTIONS:]
    asked = "; ".join(_shorten(q) for q in questions)
    text = (f"Note: {count} earlier message{'s' if count != 1 else ''} of this conversation "
            "are not shown (they do not fit the context window).")
    if asked:
        text += f" Among them the user asked: {asked}"
    return [ChatMessage(role="system", content=text)]


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return f'"{text[:NOTE_QUESTION_CHARS]}{"…" if len(text) > NOTE_QUESTION_CHARS else ""}"'


__all__ = ["DEFAULT_CONTEXT_WINDOW", "Memory", "fit"]
