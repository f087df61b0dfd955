"""LoCoMo evidence recall: pure parts (data → messages, evidence, scoring). No I/O but reading.

Each conversation is replayed with owner = ``sample_id`` and user = the speaker, message ids
= LoCoMo ``dia_id`` and message time = the session's date plus the turn's position, so a
retrieved memory's ``source_message_ids`` can be compared with a question's evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memstream.prompts import detect_language
from memstream.schemas import ChatMessage
from memstream.schemas.messages import MAX_CONTEXT_CHARS
from memstream.search.names import names_in

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
#: Seconds between consecutive turns of a session (LoCoMo gives one time per session).
TURN_SPACING = timedelta(seconds=30)
_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:@+=-]")


@dataclass(frozen=True)
class Question:
    conversation: str
    index: int
    question: str
    category: int
    evidence: frozenset[str]
    users: tuple[str, ...]


@dataclass
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    messages: list[ChatMessage] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    unresolved_evidence: int = 0

    @property
    def ends_at(self) -> datetime:
        return max(m.sent_at for m in self.messages)


def user_id_for(speaker: str) -> str:
    """A valid user id for a speaker's name: the name itself when it is ASCII ("Caroline"),
    else a readable ASCII part plus a stable hash ("王芳" → ``u-3f2a…``), so two Chinese
    names never collapse into the same ``___`` id."""
    name = speaker.strip()
    safe = _ID_UNSAFE.sub("_", name)
    if name.isascii():
        return safe[:128] if safe[:1].isalnum() else f"u{safe}"[:128] if safe else "unknown"
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=6).hexdigest()
    readable = re.sub(r"_+", "_", safe).strip("_.:@+=-")[:40]
    return f"{readable}-{digest}" if readable and readable[0].isalnum() else f"u-{digest}"


def parse_session_time(text: str) -> datetime:
    """LoCoMo's ``"1:56 pm on 8 May, 2023"`` (no zone given: taken as UTC)."""
    return datetime.strptime(text.strip().upper(), "%I:%M %p ON %d %B, %Y").replace(tzinfo=UTC)


def parse_evidence(items: Iterable[str]) -> set[str]:
    """Lenient: ``"D8:6; D9:17"`` and ``"D:11:26"`` resolve; anything else is dropped."""
    found: set[str] = set()
    for item in items:
        for session, turn in _EVIDENCE.findall(str(item)):
            found.add(f"D{int(session)}:{int(turn)}")
    return found


def question_users(text: str, speakers: Sequence[str]) -> tuple[str, ...]:
    """The speakers a question names; both when it names neither or both."""
    named = [s for s in speakers if names_in(text, s)]
    chosen = named if len(named) == 1 else list(speakers)
    return tuple(user_id_for(s) for s in chosen)


def _sessions(conv: dict[str, Any]) -> list[tuple[int, datetime, list[dict[str, Any]]]]:
    out = []
    for key, turns in conv.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(turns, list) and turns:
            n = int(m.group(1))
            out.append((n, parse_session_time(conv[f"session_{n}_date_time"]), turns))
    return sorted(out)


def load(path: Path, only: Sequence[str] | None = None) -> list[Conversation]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    conversations = []
    for item in raw:
        sample_id = str(item["sample_id"])
        if only and sample_id not in only:
            continue
        conv = item["conversation"]
        speakers = (str(conv["speaker_a"]), str(conv["speaker_b"]))
        c = Conversation(sample_id=sample_id, speakers=speakers)
        for n, start, turns in _sessions(conv):
            previous: tuple[str, str] | None = None
            for i, turn in enumerate(turns):
                text = str(turn.get("text", ""))
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                speaker = str(turn["speaker"])
                # Both speakers are users, keyed apart: the turn a message answers travels
                # with it, as a messaging platform would send a reply's quoted message.
                context = (
                    previous[1][:MAX_CONTEXT_CHARS] if previous and previous[0] != speaker else None
                )
                previous = (speaker, text)
                c.messages.append(
                    ChatMessage(
                        message_id=str(turn["dia_id"]).replace(" ", ""),
                        owner_id=_ID_UNSAFE.sub("_", sample_id),
                        user_id=user_id_for(str(turn["speaker"])),
                        role="user",
                        speaker=str(turn["speaker"]),
                        content=text[:16_000],
                        context=context,
                        sent_at=start + i * TURN_SPACING,
                        conversation_id=f"{_ID_UNSAFE.sub('_', sample_id)}-s{n}",
                        language=detect_language([text]),
                    )
                )
        known = {m.message_id for m in c.messages}
        for index, qa in enumerate(item.get("qa", [])):
            evidence = parse_evidence(qa.get("evidence", []))
            resolved = evidence & known
            c.unresolved_evidence += len(evidence - known)
            if not resolved:
                continue
            c.questions.append(
                Question(
                    conversation=c.sample_id,
                    index=index,
                    question=str(qa["question"]),
                    category=int(qa["category"]),
                    evidence=frozenset(resolved),
                    users=question_users(str(qa["question"]), speakers),
                )
            )
        conversations.append(c)
    if only:
        missing = set(only) - {c.sample_id for c in conversations}
        if missing:
            raise ValueError(f"conversations not in {path}: {sorted(missing)}")
    return conversations


def recall(evidence: frozenset[str], retrieved_sources: Iterable[str]) -> float:
    """|evidence ∩ sources of the top-k memories| / |evidence|."""
    return len(evidence & set(retrieved_sources)) / len(evidence)


def summarise(scores: Sequence[tuple[int, float]]) -> dict[str, dict[str, float | int | None]]:
    """Mean recall and full-coverage share per category and for categories 1-4 together."""
    groups: dict[str, list[float]] = defaultdict(list)
    for category, value in scores:
        groups[str(category)].append(value)
        if category in (1, 2, 3, 4):
            groups["1-4"].append(value)
    keys = [*(str(c) for c in CATEGORIES), "1-4"]

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "recall_at_k": {k: mean(groups[k]) for k in keys},
        "full_coverage": {k: mean([1.0 if v >= 1.0 else 0.0 for v in groups[k]]) for k in keys},
        "questions": {k: len(groups[k]) for k in keys},
    }
