"""When windows close: pure rules, no Faust."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memstream.config import WindowSettings
from memstream.consolidation.windowing import (
    WindowState,
    add_message,
    advance_after,
    close_window,
    due_trigger,
    estimate_tokens,
)
from memstream.schemas import ChatMessage, WindowTrigger

T0 = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = WindowSettings(max_messages=3, max_tokens=100, idle_seconds=60, max_age_seconds=600)


def msg(i: int, *, seconds: float | None = None, content: str = "hello there") -> ChatMessage:
    return ChatMessage(
        message_id=f"m{i}",
        owner_id="o",
        user_id="u",
        role="user",
        content=content,
        sent_at=T0 + timedelta(seconds=10 * i if seconds is None else seconds),
    )


def feed(messages: list[ChatMessage], state: WindowState | None = None):  # type: ignore[no-untyped-def]
    state = state or WindowState()
    jobs = []
    for m in messages:
        state, closed = add_message(state, m, NOW, LIMITS)
        jobs.extend(closed)
    return state, jobs


def test_closes_on_max_messages() -> None:
    state, jobs = feed([msg(i) for i in range(7)])
    assert [j.trigger for j in jobs] == [WindowTrigger.max_messages] * 2
    assert [[m.message_id for m in j.messages] for j in jobs] == [
        ["m0", "m1", "m2"],
        ["m3", "m4", "m5"],
    ]
    assert [j.window_no for j in jobs] == [0, 1]
    assert [m.message_id for m in state.messages] == ["m6"] and state.window_no == 2


def test_closes_before_exceeding_max_tokens() -> None:
    long = "word " * 150  # ~190 tokens: alone it exceeds the limit
    state, jobs = feed([msg(0), msg(1, content=long), msg(2)])
    assert [j.trigger for j in jobs] == [WindowTrigger.max_tokens, WindowTrigger.max_tokens]
    assert [m.message_id for m in jobs[0].messages] == ["m0"]
    assert [m.message_id for m in jobs[1].messages] == ["m1"]
    assert [m.message_id for m in state.messages] == ["m2"]


def test_event_time_gap_and_age_close_windows_reproducibly() -> None:
    _, jobs = feed([msg(0, seconds=0), msg(1, seconds=30), msg(2, seconds=200)])
    assert [j.trigger for j in jobs] == [WindowTrigger.idle_gap]
    assert [m.message_id for m in jobs[0].messages] == ["m0", "m1"]
    limits = LIMITS.model_copy(update={"max_messages": 100})
    state = WindowState()
    closed = []
    for i in range(15):  # one message every 50 s: never idle, but older than 600 s
        state, more = add_message(state, msg(i, seconds=50 * i), NOW, limits)
        closed.extend(more)
    assert [j.trigger for j in closed] == [WindowTrigger.max_age]
    assert len(closed[0].messages) == 12


def test_redelivered_message_is_ignored() -> None:
    state, _ = feed([msg(0), msg(1)])
    again, jobs = add_message(state, msg(1), NOW, LIMITS)
    assert jobs == [] and again is state


def test_job_ids_are_deterministic() -> None:
    _, a = feed([msg(i) for i in range(3)])
    _, b = feed([msg(i) for i in range(3)])
    assert a[0].job_id == b[0].job_id
    _, c = feed([msg(i) for i in range(1, 4)])
    assert c[0].job_id != a[0].job_id


def test_wall_clock_due_trigger() -> None:
    state, _ = feed([msg(0)])
    assert due_trigger(state, NOW, LIMITS) is None
    assert due_trigger(state, NOW + timedelta(seconds=61), LIMITS) is WindowTrigger.idle_gap
    aged = state.model_copy(update={"opened_at": NOW - timedelta(seconds=601)})
    assert due_trigger(aged, NOW, LIMITS) is WindowTrigger.max_age
    assert due_trigger(WindowState(), NOW, LIMITS) is None


def test_advance_keeps_messages_that_arrived_after_the_job() -> None:
    state, _ = feed([msg(0), msg(1)])
    job = close_window(state, WindowTrigger.idle_gap, NOW)
    roomy = LIMITS.model_copy(update={"max_messages": 10})
    later, _ = add_message(state, msg(2), NOW, roomy)  # arrived while the job was sent
    after = advance_after(later, job)
    assert after.window_no == 1 and [m.message_id for m in after.messages] == ["m2"]
    assert advance_after(state, job).is_empty
    moved_on = WindowState(window_no=5)
    assert advance_after(moved_on, job) is moved_on


def test_token_estimate_counts_cjk_per_character() -> None:
    assert estimate_tokens("我喜欢打网球") >= 6
    assert 2 <= estimate_tokens("I like tennis") <= 5


def test_a_window_closes_before_its_job_would_outgrow_max_bytes() -> None:
    """Valid messages heavy with metadata: the window is bounded in bytes (the job must fit
    one record), not only in content tokens."""
    limits = WindowSettings(max_messages=30, max_tokens=10**6, max_bytes=100 * 1024)
    heavy = [
        ChatMessage(
            message_id=f"h{i}",
            owner_id="o",
            user_id="u",
            role="user",
            content="short",
            sent_at=T0 + timedelta(seconds=i),
            metadata={f"k{j}": "x" * 1000 for j in range(30)},
        )
        for i in range(30)
    ]
    state = WindowState()
    jobs = []
    for m in heavy:
        state, closed = add_message(state, m, NOW, limits, m.model_dump_json().encode())
        jobs.extend(closed)
    assert jobs and {j.trigger for j in jobs} == {WindowTrigger.max_bytes}
    assert all(len(j.model_dump_json().encode()) <= limits.max_bytes for j in jobs)
    assert state.size <= limits.max_bytes
    emitted = [m.message_id for j in jobs for m in j.messages]
    emitted += [m.message_id for m in state.messages]
    assert emitted == [m.message_id for m in heavy]  # nothing lost, nothing twice, in order


def test_kafka_max_message_bytes_must_leave_room_in_a_window() -> None:
    import pytest

    from memstream.config import KafkaSettings, Settings

    with pytest.raises(ValueError, match="max_message_bytes"):
        Settings(kafka=KafkaSettings(max_message_bytes=400 * 1024))
