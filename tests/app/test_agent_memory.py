"""Conversation memory: what an agent remembers within its context window (app.runtime.memory)."""
from app.runtime.llm_types import ChatMessage, ToolCall, estimate_prompt_tokens
from app.runtime.memory import MIN_TOOL_RESULT_CHARS, TRIMMED_NOTE, answer_reserve, fit, trim_tool_results

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


def test_the_answer_reserve_never_takes_more_than_half_the_window():
    assert answer_reserve(1024, 16_000) == 1024
    assert answer_reserve(200_000, 8192) == 4096  # max_tokens beyond the window leaves room for the question
    assert answer_reserve(None, None) == 0


def test_a_message_too_long_for_the_window_does_not_fit_even_alone():
    long_message = ChatMessage(role="user", content="word " * 700)
    memory = fit(SYSTEM, _history(2), long_message, max_messages=20, context_window=600, reserve_tokens=100)
    assert memory.kept == 0 and memory.budget == 500 and memory.prompt_tokens > 700 and not memory.fits
    assert fit(SYSTEM, [], USER, max_messages=20, context_window=600, reserve_tokens=100).fits


def _tool_turn(*sizes: int) -> list[ChatMessage]:
    messages = [*SYSTEM, USER]
    for n, size in enumerate(sizes):
        messages += [ChatMessage(role="assistant", content=None, tool_calls=[ToolCall(f"c{n}", "search", {}, "{}")]),
                     ChatMessage(role="tool", content=f"result {n} " + "word " * size, tool_call_id=f"c{n}")]
    return messages


def test_tool_results_are_cut_largest_first_until_the_prompt_fits():
    messages = _tool_turn(100, 1000)
    budget = estimate_prompt_tokens(messages) - 600
    trimmed = trim_tool_results(messages, budget)
    assert estimate_prompt_tokens(trimmed) <= budget
    assert trimmed[3] == messages[3]  # the small result was not touched
    big = trimmed[5].content
    assert big.endswith(TRIMMED_NOTE) and messages[5].content.startswith(big.removesuffix(TRIMMED_NOTE))
    assert messages[5].content.count("word") == 1000  # the input is left as it was
    assert trim_tool_results(messages, 100_000) == messages


def test_tool_results_are_never_cut_below_a_floor():
    messages = _tool_turn(300, 300)
    trimmed = trim_tool_results(messages, budget=10)
    assert estimate_prompt_tokens(trimmed) > 10  # it cannot fit: the provider will say so
    assert all(MIN_TOOL_RESULT_CHARS <= len(m.content) <= 2 * MIN_TOOL_RESULT_CHARS + len(TRIMMED_NOTE)
               for m in trimmed if m.role == "tool")
