"""LLM consolidation of a window, as pure functions around the one model call.

``consolidation_input`` builds what the model sees (the window and the related existing
memories, numbered); ``ConsolidationOutput`` validates what it says; ``plan_consolidation``
turns that into store changes: new observations, duplicates folded into the memory they
repeat, contradicted memories expired (kept as history, ``valid_to`` set) while the newer
fact stays valid. Everything is deterministic given the model's answer, so a replayed job
with a cached answer writes the same memories with the same ids.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from memstream.consolidation.steps import Step, at_most
from memstream.consolidation.verbatim import is_substantive
from memstream.schemas.jobs import ConsolidationJob
from memstream.schemas.memory import EventTime, MemoryNode, MemoryType, StoreStatus, memory_id
from memstream.schemas.messages import ChatMessage, Role

MAX_KEYWORDS = 8

#: Topics that hold one current value: a newer fact on one of them may replace an older one,
#: however differently it is worded ("I work at Alibaba" / "I just joined Meituan"). Facts on
#: these topics are reconciled with the user's memories on the same topic.
EXCLUSIVE_TOPICS = ("work", "home", "relationship", "education")
MAX_FACTS = 60


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


Relation = Literal["new", "duplicate", "contradicts", "updates"]
TopicName = Literal["work", "home", "relationship", "education", "other"]
#: A topic the schema does not know is read as "other": it holds no single current value.
Topic = Annotated[TopicName, BeforeValidator(lambda v: v if v in get_args(TopicName) else "other")]


class MessageScore(_Lenient):
    id: int
    score: int = Field(ge=0, le=3)


class FactEvent(_Lenient):
    year: int = -1
    month: int = -1
    day: int = -1
    recurring: bool = False


class Fact(_Lenient):
    sources: Annotated[list[int], at_most(30)] = Field(default_factory=list, max_length=30)
    content: str = Field(min_length=1, max_length=400)
    keywords: Annotated[list[Annotated[str, Field(max_length=40)]], at_most(5)] = Field(
        default_factory=list, max_length=5
    )
    event: FactEvent = Field(default_factory=FactEvent)
    topic: Topic = "other"
    relation: Relation = "new"
    existing: int = 0


class ConsolidationOutput(_Lenient):
    scores: list[MessageScore] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list, max_length=MAX_FACTS)


#: The fused call: info filter, facts with keywords, event time, relation to related memories.
CONSOLIDATE = Step("consolidate", "memstream_consolidation", ConsolidationOutput)


def consolidation_bounds(user_messages: int) -> dict[str, int]:
    """A score per user message and at most two facts each."""
    n = max(1, user_messages)
    return {"scores": n, "facts": min(MAX_FACTS, 2 * n)}


def format_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M %A")


@dataclass
class ConsolidationInput:
    """The numbered view the model sees; the numbers map back to messages and memories."""

    messages: dict[int, ChatMessage]
    existing: dict[int, MemoryNode]
    payload: str

    @property
    def user_message_ids(self) -> set[int]:
        return {i for i, m in self.messages.items() if m.role is Role.user}


def consolidation_input(
    job: ConsolidationJob, existing: Sequence[MemoryNode]
) -> ConsolidationInput:
    messages: dict[int, ChatMessage] = {}
    seen: set[str] = set()
    for m in job.messages:
        if m.message_id not in seen:
            seen.add(m.message_id)
            messages[len(messages) + 1] = m
    known = {i + 1: node for i, node in enumerate(existing)}
    payload = {
        "messages": [
            {"id": i, "time": format_time(m.sent_at), "role": m.role.value, "text": m.content}
            for i, m in messages.items()
        ],
        "existing_memories": [
            {"id": i, "time": format_time(n.valid_from), "text": n.content}
            for i, n in known.items()
        ],
    }
    return ConsolidationInput(
        messages=messages,
        existing=known,
        payload=json.dumps(payload, ensure_ascii=False, indent=1),
    )


def needs_model(job: ConsolidationJob, min_chars: int) -> bool:
    """A window without one substantive user message costs no call."""
    return any(is_substantive(m, min_chars) for m in job.messages)


def resolve_event(event: FactEvent, message_time: datetime) -> tuple[EventTime, datetime]:
    """The event fields and ``valid_from`` of a fact. Pure.

    A past dated event becomes true at its date ("two months ago" in July -> May). A future
    one (a plan) and an undated or recurring fact are true from the message on. Nonsense
    parts (month 13, year 1066) are treated as unknown rather than trusted.
    """
    year = event.year if 1900 <= event.year <= 2099 and not event.recurring else -1
    month = event.month if 1 <= event.month <= 12 else -1
    day = event.day if 1 <= event.day <= 31 else -1
    if year != -1 and month != -1 and day != -1:
        try:
            when = date(year, month, day)
        except ValueError:
            day = -1
        else:
            iso = when.isocalendar()
            fields = EventTime(
                year=year, month=month, day=day, week=iso.week, weekday=iso.weekday - 1
            )
            start = datetime(year, month, day, tzinfo=message_time.tzinfo)
            return fields, min(start, message_time)
    fields = EventTime(year=year, month=month, day=day)
    if year != -1:
        start = datetime(year, month if month != -1 else 1, 1, tzinfo=message_time.tzinfo)
        return fields, min(start, message_time)
    return fields, message_time


@dataclass
class ConsolidationPlan:
    """Store changes of one job: ``new`` nodes (need vectors) and ``changed`` existing ones."""

    new: list[MemoryNode] = field(default_factory=list)
    changed: dict[str, MemoryNode] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    related: set[str] = field(default_factory=set)
    """Ids of new nodes already related to an existing memory (not reconciled again)."""

    @property
    def nodes(self) -> list[MemoryNode]:
        return [*self.new, *self.changed.values()]

    def current(self, node: MemoryNode) -> MemoryNode:
        return self.changed.get(node.memory_id, node)

    def relate(
        self, node: MemoryNode, relation: str, target: MemoryNode, recorded_at: datetime
    ) -> None:
        """Apply one decision about new ``node`` and existing ``target``.

        duplicate: the new node is not written; the target gains its provenance.
        contradicts / updates: the newer fact wins; the target expires, kept as history with
        ``valid_to`` at the change. One version step per job, however many facts touch it.
        """
        target = self.current(target)
        bump = target.version if target.memory_id in self.changed else target.version + 1
        if relation == "duplicate":
            self.new = [n for n in self.new if n.memory_id != node.memory_id]
            self.dropped["duplicate"] += 1
            merged = sorted(set(target.source_message_ids) | set(node.source_message_ids))
            if merged != sorted(target.source_message_ids):
                self.changed[target.memory_id] = target.model_copy(
                    update={
                        "source_message_ids": merged,
                        "version": bump,
                        "recorded_at": recorded_at,
                    }
                )
            return
        self.related.add(node.memory_id)
        if relation in ("contradicts", "updates") and target.store_status is StoreStatus.valid:
            ends = node.valid_from if node.valid_from > target.valid_from else node.message_time
            self.changed[target.memory_id] = target.model_copy(
                update={
                    "store_status": StoreStatus.expired,
                    "valid_to": ends,
                    "obs_updated": True,
                    "version": bump,
                    "recorded_at": recorded_at,
                }
            )


def plan_consolidation(
    job: ConsolidationJob,
    view: ConsolidationInput,
    output: ConsolidationOutput,
    *,
    min_score: int,
    language: str,
    recorded_at: datetime,
) -> ConsolidationPlan:
    plan = ConsolidationPlan()
    user_ids = view.user_message_ids
    scores = {s.id: s.score for s in output.scores if s.id in user_ids}
    ordinals: Counter[tuple[str, ...]] = Counter()

    for fact in output.facts:
        sources = sorted({i for i in fact.sources if i in user_ids})
        if not sources:
            plan.dropped["no_user_source"] += 1
            continue
        # The info filter is enforced here, not trusted: a fact needs a source scored >= min.
        # An unscored source counts as important (the model extracted it).
        if max(scores.get(i, 3) for i in sources) < min_score:
            plan.dropped["filtered"] += 1
            continue
        content = fact.content.strip()
        if not content:
            plan.dropped["empty"] += 1
            continue
        source_msgs = [view.messages[i] for i in sources]
        source_ids = [m.message_id for m in source_msgs]
        message_time = max(m.sent_at for m in source_msgs)
        event_time, valid_from = resolve_event(fact.event, message_time)
        ordinal_key = tuple(sorted(source_ids))
        ordinal = ordinals[ordinal_key]
        ordinals[ordinal_key] += 1
        node = MemoryNode(
            memory_id=memory_id(job.owner_id, job.user_id, source_ids, ordinal),
            owner_id=job.owner_id,
            user_id=job.user_id,
            memory_type=MemoryType.observation,
            content=content,
            message_time=message_time,
            valid_from=valid_from,
            recorded_at=recorded_at,
            event_time=event_time,
            source_message_ids=source_ids,
            source_text="\n".join(m.content for m in source_msgs),
            keywords=_keywords(fact.keywords, fact.topic),
            language=language,
            speaker=source_msgs[0].speaker,
        )
        plan.new.append(node)
        target = view.existing.get(fact.existing) if fact.relation != "new" else None
        if target is not None:
            plan.relate(node, fact.relation, target, recorded_at)
    return plan


# -- the second call: reconcile new facts with memories found through the facts themselves --


class Decision(_Lenient):
    fact: int
    relation: Relation = "new"
    existing: int = 0


class ReconcileOutput(_Lenient):
    decisions: list[Decision] = Field(default_factory=list, max_length=MAX_FACTS)


#: The second call, only when new facts find memories the first call did not see.
RECONCILE = Step("reconcile", "memstream_reconciliation", ReconcileOutput)


@dataclass
class ReconcileInput:
    facts: dict[int, MemoryNode]
    existing: dict[int, MemoryNode]
    payload: str


def reconcile_input(facts: Sequence[MemoryNode], existing: Sequence[MemoryNode]) -> ReconcileInput:
    numbered = {i + 1: n for i, n in enumerate(facts)}
    known = {i + 1: n for i, n in enumerate(existing)}
    payload = {
        "facts": [
            {"id": i, "time": format_time(n.valid_from), "text": n.content, "keywords": n.keywords}
            for i, n in numbered.items()
        ],
        "existing_memories": [
            {"id": i, "time": format_time(n.valid_from), "text": n.content, "keywords": n.keywords}
            for i, n in known.items()
        ],
    }
    return ReconcileInput(numbered, known, json.dumps(payload, ensure_ascii=False, indent=1))


def apply_reconciliation(
    plan: ConsolidationPlan, view: ReconcileInput, output: ReconcileOutput, recorded_at: datetime
) -> None:
    done: set[int] = set()
    for d in output.decisions:
        node, target = view.facts.get(d.fact), view.existing.get(d.existing)
        if node is None or target is None or d.relation == "new" or d.fact in done:
            continue
        done.add(d.fact)
        plan.relate(node, d.relation, target, recorded_at)


def topic_of(node: MemoryNode) -> str | None:
    """The exclusive topic a node was tagged with, if any (its first keyword)."""
    if node.keywords and node.keywords[0] in EXCLUSIVE_TOPICS:
        return node.keywords[0]
    return None


def _keywords(raw: Sequence[str], topic: str = "other") -> list[str]:
    """The model's keywords; an exclusive topic leads (see :func:`topic_of`)."""
    out: list[str] = [topic] if topic in EXCLUSIVE_TOPICS else []
    for word in raw:
        word = word.strip()
        if word and word not in out:
            out.append(word[:64])
    return out[:MAX_KEYWORDS]
