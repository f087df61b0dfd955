"""LLM-free consolidation: filtered user messages become observations verbatim. Pure.

This is a real mode (no generation model configured), not a test fallback: it keeps
every substantive thing the user said, time-stamped and traceable, at zero LLM cost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from memstream.schemas.jobs import ConsolidationJob, WindowTrigger
from memstream.schemas.memory import EventTime, MemoryNode, MemoryType, memory_id
from memstream.schemas.messages import MAX_CONTEXT_CHARS, ChatMessage, Role

#: Small talk that says nothing about the user (en + zh). A message made only of these
#: (plus punctuation) is trivial: "thanks, bye", "ok!", "好的，谢谢".
_SMALL_TALK_EN_TEXT = """
    hi hello hey yo ok okay k sure yes no yep nope yeah thanks thank you thx ty bye goodbye
    see good morning night evening lol haha hahaha hmm great cool nice wow alright fine
    please sorry oh ah welcome
"""
_SMALL_TALK_ZH_TEXT = """
    你好 您好 嗨 好的 好吧 好 嗯 嗯嗯 是的 是 不是 谢谢 谢了 多谢 再见 拜拜 哈哈 哈哈哈
    早上好 晚安 晚上好 没事 对 对的 行 可以 哦 啊
"""
_SMALL_TALK_EN = _SMALL_TALK_EN_TEXT.split()
_SMALL_TALK_ZH = _SMALL_TALK_ZH_TEXT.split()
_SMALL_TALK = re.compile(
    r"\b(?:"
    + "|".join(sorted(map(re.escape, _SMALL_TALK_EN), key=len, reverse=True))
    + r")\b"
    + "|"
    + "|".join(sorted(map(re.escape, _SMALL_TALK_ZH), key=len, reverse=True)),
    re.IGNORECASE,
)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def is_pure_question(text: str) -> bool:
    """Every sentence is a question ("Which company do I work for?", "我在哪儿工作？"): a
    request to the assistant, not something the user told it. Stored, it would be the best
    match for the next question like it and crowd out the fact that answers it. A question
    next to a statement ("I went hiking yesterday. How about you?") is kept. On LoCoMo dev,
    8 of 1,451 messages are pure questions, and none is evidence for any question."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return bool(parts) and all(p.endswith(("?", "？")) for p in parts)


def is_substantive(message: ChatMessage, min_chars: int) -> bool:
    """A user message worth remembering: more than punctuation, small talk or a few letters."""
    if message.role is not Role.user or is_pure_question(message.content):
        return False
    core = _NOT_WORD.sub("", _SMALL_TALK.sub(" ", message.content))
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in core)
    return len(core) >= max(1, min_chars) or (has_cjk and bool(core))


def observations_verbatim(
    job: ConsolidationJob, *, min_chars: int, recorded_at: datetime
) -> list[MemoryNode]:
    """One observation per substantive user message, id derived from the message id."""
    messages = _dedupe(job.messages)
    answered = answered_turns(messages)
    # An early job's memory is provisional (version 1); its window's close writes it again
    # with the whole exchange (version 2), which wins in the store and on every replay.
    version = 1 if job.trigger is WindowTrigger.early else 2
    return [
        _observation(m, recorded_at, answered.get(m.message_id), version)
        for m in messages
        if is_substantive(m, min_chars)
    ]


def answered_turns(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """For each user message, the exchange around it: its own ``context`` (another person's
    turn, sent with it), else the assistant or system turns just before and just after it
    in the window. "Went hiking with my sister" says what it is about only next to "What did
    you do last weekend?", and "I just joined Meituan" only next to "Congratulations on the
    new job!": the exchange is what a later question matches (measured on LoCoMo: the turn
    before and the turn after each help recall)."""
    ordered = sorted(messages, key=lambda m: m.sent_at)
    out: dict[str, str] = {}
    for i, m in enumerate(ordered):
        if m.role is not Role.user:
            continue
        if m.context and m.context.strip():
            out[m.message_id] = m.context.strip()[:MAX_CONTEXT_CHARS]
            continue
        around = [
            n.content.strip()
            for n in (
                ordered[i - 1] if i else None,
                ordered[i + 1] if i + 1 < len(ordered) else None,
            )
            if n is not None and n.role is not Role.user and n.content.strip()
        ]
        if around:
            out[m.message_id] = "\n".join(around)[:MAX_CONTEXT_CHARS]
    return out


def _dedupe(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    seen: set[str] = set()
    out: list[ChatMessage] = []
    for m in messages:
        if m.message_id not in seen:
            seen.add(m.message_id)
            out.append(m)
    return out


def _observation(
    message: ChatMessage, recorded_at: datetime, context: str | None, version: int
) -> MemoryNode:
    content = message.content.strip()
    return MemoryNode(
        version=version,
        memory_id=memory_id(message.owner_id, message.user_id, [message.message_id], 0),
        owner_id=message.owner_id,
        user_id=message.user_id,
        memory_type=MemoryType.observation,
        content=content,
        message_time=message.sent_at,
        valid_from=message.sent_at,
        recorded_at=recorded_at,
        # No inference without an LLM: the event time stays unknown; message_time is exact.
        event_time=EventTime(),
        source_message_ids=[message.message_id],
        source_text=message.content,
        context=context,
        language=message.language,
        speaker=message.speaker,
    )
