"""Conversation memory: what an agent remembers within its context window (app.runtime.memory)."""
from app.runtime.llm_types import ChatMessage, estimate_prompt_tokens
from app.runtime.memory import fit

SYSTEM = [ChatMessage(role="system", content="You help.")]
USER = ChatMessage(role="user", content="And now?")


def _history(turns: int, words: int = 50) -> list[ChatMessage]:
    messages = []
    for n in range(turns):
        messages += [ChatMessage(role="user", content=f"question {n} " + "word " * words),
                     ChatMessage(role="assistant", content=f"answer {n} " + "word " * words)]
    return messages


def test_everything_fits_in_a_large_window():
    history = _history(3)
    memory = fit(SYSTEM, history, USER, max_messages=20, context_window=100_000, reserve_tokens=1000)
    assert memory.messages == [*SYSTEM, *history, USER] and memory.dropped == 0 and memory.kept == 6


def test_the_oldest_turns_are_dropped_to_fit_the_window_and_named_in_a_note():
    history = _history(8)  # each message ~52 tokens
    window, reserve = 600, 100
    memory = fit(SYSTEM, history, USER, max_messages=20, context_window=window, reserve_tokens=reserve)
    assert memory.prompt_tokens <= window - reserve
    assert memory.prompt_tokens == estimate_prompt_tokens(memory.messages)
    kept = memory.messages[2:-1]
    assert len(kept) >= 2 and kept == history[-len(kept):] and kept[0].role == "user"  # from a question on
    assert memory.dropped == len(history) - len(kept) and memory.kept == len(kept)
    note = memory.messages[1]
    assert note.role == "system" and note.content.startswith(f"Note: {memory.dropped} earlier messages")
    # The note names the last questions it dropped (at most 3), shortened to 100 characters.
    dropped_questions = [m.content.split()[1] for m in history[: memory.dropped] if m.role == "user"]
    named = [n for n in range(6) if f'"question {n} word' in note.content]
    assert named == [int(q) for q in dropped_questions[-3:]] and len(named) == min(3, len(dropped_questions))
    assert "word" * 30 not in note.content.replace(" ", "")


def test_max_messages_caps_memory_and_counts_what_was_not_loaded():
    history = _history(4)
    memory = fit(SYSTEM, history, USER, max_messages=3, context_window=100_000, reserve_tokens=0, older=10)
    # The last 3 messages start with an answer; an answer without its question is left out too.
    assert [m.content.split()[0] + m.content.split()[1] for m in memory.messages[2:-1]] == ["question3", "answer3"]
    assert memory.dropped == 6 + 10 and "16 earlier messages" in memory.messages[1].content


def test_no_memory_at_all():
    memory = fit(SYSTEM, _history(2), USER, max_messages=0, context_window=None, reserve_tokens=0)
    assert memory.messages[0] == SYSTEM[0] and memory.messages[-1] == USER and memory.kept == 0
