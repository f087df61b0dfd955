"""LLM-free consolidation: which messages become observations, and how (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memstream.consolidation.verbatim import is_substantive, observations_verbatim
from memstream.consolidation.windowing import WindowState, close_window, early_job
from memstream.schemas import ChatMessage, WindowTrigger, memory_id

T0 = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)


def msg(content: str, role: str = "user", mid: str = "m1") -> ChatMessage:
    return ChatMessage(
        message_id=mid,
        owner_id="o",
        user_id="u",
        role=role,
        content=content,
        sent_at=T0,
        language="en",
        speaker="Ann",
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ok",
        "OK!!",
        "thanks, bye",
        "Hi!",
        "hahaha",
        "好的，谢谢",
        "嗯嗯",
        "...",
        "k",
        "?!",
    ],
)
def test_trivial_messages_are_dropped(text: str) -> None:
    assert not is_substantive(msg(text), min_chars=3)


@pytest.mark.parametrize(
    "text",
    ["I like sushi", "我喜欢网球", "猫", "yes please, I love hiking", "Working at Meituan now"],
)
def test_substantive_messages_are_kept(text: str) -> None:
    assert is_substantive(msg(text), min_chars=3)


def test_only_user_turns_become_memories() -> None:
    assert not is_substantive(msg("I am the assistant and I like tea", role="assistant"), 3)
    assert not is_substantive(msg("You are a helpful assistant", role="system"), 3)


def test_observations_are_verbatim_traceable_and_deduplicated() -> None:
    messages = [
        msg("  I moved to Shanghai last year.  ", mid="a"),
        msg("ok", mid="b"),
        msg("Nice! Tell me more.", role="assistant", mid="c"),
        msg("  I moved to Shanghai last year.  ", mid="a"),  # redelivered
        msg("我养了一只猫", mid="d"),
    ]
    state = WindowState(messages=messages, opened_at=T0, last_seen_at=T0)
    job = close_window(state, WindowTrigger.idle_gap, T0)
    nodes = observations_verbatim(job, min_chars=3, recorded_at=T0)
    assert [n.content for n in nodes] == ["I moved to Shanghai last year.", "我养了一只猫"]
    first = nodes[0]
    assert first.memory_id == memory_id("o", "u", ["a"], 0)
    assert first.source_message_ids == ["a"] and first.source_text == messages[0].content
    assert first.valid_from == first.message_time == T0 and first.valid_to is None
    assert first.memory_type == "observation" and first.store_status == "valid"
    assert first.event_time.year == -1, "no event time is invented without inference"
    # A window's own job writes version 2: above the provisional one of an early job (1).
    assert first.speaker == "Ann" and first.language == "en" and first.version == 2
    assert (
        observations_verbatim(job, min_chars=3, recorded_at=T0)[1].memory_id == nodes[1].memory_id
    )


def test_an_early_job_indexes_new_user_turns_at_once_and_the_close_completes_them() -> None:
    """LLM-free: the user's new turns are memories before their window closes (version 1,
    with the question they answer); the close writes them again with the reply after them
    (version 2), under the same ids."""
    question = msg("How was the interview?", role="assistant", mid="q")
    answer = msg("I got the job at Meituan!", mid="a")
    state = WindowState(messages=[question, answer], opened_at=T0, last_seen_at=T0)
    early = early_job(state, [answer], T0)
    assert early is not None and early.trigger is WindowTrigger.early
    assert [m.message_id for m in early.messages] == ["q", "a"]
    (provisional,) = observations_verbatim(early, min_chars=3, recorded_at=T0)
    assert provisional.version == 1 and provisional.context == "How was the interview?"

    reply = msg("Congratulations on the new data engineer role!", role="assistant", mid="r")
    closed = WindowState(messages=[question, answer, reply], opened_at=T0, last_seen_at=T0)
    window = close_window(closed, WindowTrigger.idle_gap, T0)
    assert window.job_id != early.job_id
    (final,) = observations_verbatim(window, min_chars=3, recorded_at=T0)
    assert final.memory_id == provisional.memory_id and final.version == 2
    assert final.context == "How was the interview?\nCongratulations on the new data engineer role!"
    # Nothing of the user's new, or only others' turns: no early job.
    assert early_job(closed, [reply], T0) is None
    assert early_job(state, [msg("I got the job at Meituan!", mid="gone")], T0) is None


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Which company do I work for?", False),
        ("我在哪儿工作？", False),
        ("What did I eat? And where?", False),
        ("I went hiking yesterday. How about you?", True),
        ("I moved to Hangzhou!", True),
        ("我搬到杭州了。你呢？", True),
    ],
)
def test_a_pure_question_is_not_a_memory(text: str, kept: bool) -> None:
    assert is_substantive(msg(text), 3) is kept
