"""Conversation memory: which earlier messages an agent sees, within its model's context window.

The last `max_messages` messages are kept, then the oldest are dropped until the prompt fits the window
(counted with the cl100k tokenizer, leaving room for the answer). Dropped turns are not silently lost:
a note tells the model how many were left out and what the user asked in them, so a follow-up such as
"and the second one?" can still be recognised as one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.runtime.llm_types import ChatMessage, ToolSpec, estimate_prompt_tokens

DEFAULT_CONTEXT_WINDOW = 8192
MIN_TOOL_RESULT_CHARS = 200
TRIMMED_NOTE = "\n[… the rest of this result was cut to fit the context window]"
MAX_NOTE_QUESTIONS = 3
NOTE_QUESTION_CHARS = 100


@dataclass(frozen=True)
class Memory:
    messages: list[ChatMessage]  # system prompt(s), the history kept, the new user message
    kept: int  # earlier messages kept
    dropped: int  # earlier messages left out
    prompt_tokens: int  # the estimate the fit was made with
    budget: int  # the most the prompt may hold: the window less the room kept for the answer

    @property
    def fits(self) -> bool:
        """False when even the system prompt and the new message alone are too long for the window."""
        return self.prompt_tokens <= self.budget


def answer_reserve(max_tokens: int | None, context_window: int | None) -> int:
    """Room kept in the window for the answer: the agent's max_tokens, but at most half the window (a
    max_tokens near the window's size would leave no room for the question itself)."""
    window = context_window or DEFAULT_CONTEXT_WINDOW
    return min(max_tokens or 0, window // 2)


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
            return Memory(messages=messages, kept=len(kept), dropped=len(dropped) + older, prompt_tokens=tokens,
                          budget=budget)
        kept = kept[1:]


def trim_tool_results(messages: Sequence[ChatMessage], budget: int,
                      tools: Sequence[ToolSpec] = ()) -> list[ChatMessage]:
    """The prompt with this turn's tool results cut, largest first, until it fits `budget` tokens: a
    prompt over the window fails at the provider, and a result's beginning (the best passages come first)
    is worth more than its end. A result is never cut below MIN_TOOL_RESULT_CHARS."""
    messages = list(messages)
    if not any(m.role == "tool" for m in messages):
        return messages
    while estimate_prompt_tokens(messages, tools) > budget:
        cuttable = [i for i, m in enumerate(messages)
                    if m.role == "tool" and len(m.content or "") > 2 * MIN_TOOL_RESULT_CHARS]
        if not cuttable:
            break  # as short as they may get: the provider says whether it still fits
        i = max(cuttable, key=lambda n: len(messages[n].content))
        text = messages[i].content.removesuffix(TRIMMED_NOTE)
        messages[i] = replace(messages[i], content=text[: len(text) // 2] + TRIMMED_NOTE)
    return messages


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


__all__ = ["DEFAULT_CONTEXT_WINDOW", "Memory", "answer_reserve", "fit", "trim_tool_results"]
