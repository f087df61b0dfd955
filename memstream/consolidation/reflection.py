"""Reflection as pure functions around its one model call.

Unreflected observations (and pairs of similar observations that may contradict each
other) go in; insights come out as ``insight`` memories with key/value and the content
"The {key} of {name}: {value}" (or "{name}的{key}：{value}"), plus older observations the
model judged contradicted, which expire. Every observation shown is marked reflected.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from memstream.consolidation.extract import format_time
from memstream.consolidation.steps import Step
from memstream.schemas.memory import EventTime, MemoryNode, MemoryType, StoreStatus

MAX_SOURCES = 64
MAX_INSIGHTS = 20


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InsightValue(_Lenient):
    key: str = Field(min_length=1, max_length=80)
    value: str = Field(min_length=1, max_length=400)
    evidence: list[int] = Field(default_factory=list)


class ReflectionOutput(_Lenient):
    insights: list[InsightValue] = Field(default_factory=list, max_length=MAX_INSIGHTS)
    expire: list[int] = Field(default_factory=list)


#: New insight subjects and their values, and expiries among conflicting observations.
REFLECT = Step("reflect", "memstream_reflection", ReflectionOutput)


def reflection_bounds(observations: int, conflicts: int) -> dict[str, int]:
    """Evidence cites the observations shown; expiries name the conflicts shown."""
    return {"evidence": max(1, observations), "expire": conflicts}


def normalise_key(key: str) -> str:
    """Insight identity: case, width and spacing do not make a new subject."""
    return " ".join(unicodedata.normalize("NFKC", key).casefold().split())


def insight_id(owner_id: str, user_id: str, key: str) -> str:
    """One insight per (user, subject): updates rewrite it under the same id."""
    material = "\x1f".join([owner_id, user_id, "insight", normalise_key(key)])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=16).hexdigest()


def render_insight(key: str, value: str, name: str, language: str) -> str:
    if language == "zh":
        return f"{name}的{key}：{value}"
    return f"The {key} of {name}: {value}"


def display_name(observations: Sequence[MemoryNode], fallback: str) -> str:
    speakers = Counter(o.speaker for o in observations if o.speaker)
    return speakers.most_common(1)[0][0] if speakers else fallback


def due_observations(observations: Sequence[MemoryNode]) -> list[MemoryNode]:
    """Valid, not yet reflected observations, oldest first."""
    due = [
        o
        for o in observations
        if o.memory_type is MemoryType.observation
        and o.store_status is StoreStatus.valid
        and not o.obs_reflected
    ]
    return sorted(due, key=lambda o: (o.message_time, o.memory_id))


@dataclass
class ReflectionInput:
    observations: dict[int, MemoryNode]
    conflicts: list[tuple[int, int]]
    insights: dict[str, MemoryNode]
    payload: str


def reflection_input(
    due: Sequence[MemoryNode],
    insights: Sequence[MemoryNode],
    conflicts: Sequence[tuple[MemoryNode, MemoryNode]],
) -> ReflectionInput:
    """Numbered observations (due ones, then older conflict partners) and existing insights."""
    numbered: dict[int, MemoryNode] = {}
    index: dict[str, int] = {}

    def number(node: MemoryNode) -> int:
        if node.memory_id not in index:
            index[node.memory_id] = len(numbered) + 1
            numbered[index[node.memory_id]] = node
        return index[node.memory_id]

    for node in due:
        number(node)
    pairs = [(number(older), number(newer)) for older, newer in conflicts]
    by_key = {normalise_key(i.key or ""): i for i in insights if i.key}
    payload = {
        "insights": [{"key": i.key, "value": i.value} for i in by_key.values()],
        "observations": [
            {"id": i, "time": format_time(n.valid_from), "text": n.content}
            for i, n in numbered.items()
        ],
        "conflicts": [{"older": a, "newer": b} for a, b in pairs],
    }
    return ReflectionInput(
        observations=numbered,
        conflicts=pairs,
        insights=by_key,
        payload=json.dumps(payload, ensure_ascii=False, indent=1),
    )


@dataclass
class ReflectionPlan:
    insights: list[MemoryNode] = field(default_factory=list)
    """New or changed insights: they need (re-)embedding."""
    updated: list[MemoryNode] = field(default_factory=list)
    """Observations marked reflected or expired."""


def plan_reflection(
    owner_id: str,
    user_id: str,
    view: ReflectionInput,
    due: Sequence[MemoryNode],
    output: ReflectionOutput,
    *,
    name: str,
    language: str,
    recorded_at: datetime,
) -> ReflectionPlan:
    plan = ReflectionPlan()
    seen_keys: set[str] = set()
    for item in output.insights:
        key, value = item.key.strip(), item.value.strip()
        norm = normalise_key(key)
        if not norm or not value or norm in seen_keys:
            continue
        seen_keys.add(norm)
        evidence = [view.observations[i] for i in item.evidence if i in view.observations]
        existing = view.insights.get(norm)
        if existing is not None and existing.value == value:
            continue  # unchanged: no write, no new version
        sources = sorted({s for o in evidence for s in o.source_message_ids})
        if existing is not None:
            sources = sorted(set(sources) | set(existing.source_message_ids))
        latest = max((o.message_time for o in evidence), default=None)
        key_text = existing.key if existing is not None and existing.key else key
        message_time = latest or (existing.message_time if existing else recorded_at)
        node = MemoryNode(
            memory_id=insight_id(owner_id, user_id, key_text),
            owner_id=owner_id,
            user_id=user_id,
            memory_type=MemoryType.insight,
            content=render_insight(key_text, value, name, language),
            key=key_text,
            value=value,
            message_time=message_time,
            valid_from=message_time,
            recorded_at=recorded_at,
            event_time=EventTime(),
            source_message_ids=sources[-MAX_SOURCES:],
            keywords=[key_text],
            language=language,
            speaker=name,
            version=existing.version + 1 if existing is not None else 1,
        )
        plan.insights.append(node)

    allowed_expiry = {older: newer for older, newer in view.conflicts}
    expired: dict[str, MemoryNode] = {}
    for i in output.expire:
        if i not in allowed_expiry:
            continue  # only an older member of a pair we asked about may expire
        older, newer = view.observations[i], view.observations[allowed_expiry[i]]
        if older.store_status is not StoreStatus.valid or newer.valid_from < older.valid_from:
            continue
        expired[older.memory_id] = older.model_copy(
            update={
                "store_status": StoreStatus.expired,
                "valid_to": newer.valid_from,
                "obs_updated": True,
                "obs_reflected": True,
                "version": older.version + 1,
                "recorded_at": recorded_at,
            }
        )
    for node in due:
        if node.memory_id in expired:
            continue
        plan.updated.append(
            node.model_copy(
                update={
                    "obs_reflected": True,
                    "version": node.version + 1,
                    "recorded_at": recorded_at,
                }
            )
        )
    plan.updated.extend(expired.values())
    return plan
