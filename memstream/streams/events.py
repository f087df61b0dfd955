"""Records of the memory events topic: keyed by user, described by headers.

The headers let a replay plan itself from a cheap first pass that never decodes a value:
which users were forgotten (and where), and which rebuild generation went live (and where).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from memstream.schemas.events import GenerationSwitch, MemoryEvent

#: Header naming the event type: upsert, delete, forget, or switch (a generation marker).
EVENT_HEADER = "memstream-event"
#: Header carrying a rebuild generation, on the events a rebuild from messages writes.
GENERATION_HEADER = "memstream-generation"
SWITCH = "switch"

Headers = list[tuple[str, bytes]]


def event_record(event: MemoryEvent) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) of one memory event."""
    headers: Headers = [(EVENT_HEADER, event.event_type.value.encode())]
    if event.generation is not None:
        headers.append((GENERATION_HEADER, str(event.generation).encode()))
    return f"{event.owner_id}/{event.user_id}".encode(), event.model_dump_json().encode(), headers


def switch_record(switch: GenerationSwitch) -> tuple[bytes, Headers]:
    """(value, headers) of a generation marker; it is written to every partition."""
    headers: Headers = [
        (EVENT_HEADER, SWITCH.encode()),
        (GENERATION_HEADER, str(switch.generation).encode()),
    ]
    return switch.model_dump_json().encode(), headers


def header_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}


def generation_of(headers: dict[str, str]) -> int | None:
    raw = headers.get(GENERATION_HEADER)
    return int(raw) if raw and raw.isdigit() else None


class BadEvent(ValueError):
    """A record on the events topic that is not a memory event or a marker."""


def decode_event(value: bytes | None, headers: dict[str, str]) -> MemoryEvent | GenerationSwitch:
    if value is None:
        raise BadEvent("record has no value")
    try:
        if headers.get(EVENT_HEADER) == SWITCH:
            return GenerationSwitch.model_validate_json(value)
        return MemoryEvent.model_validate_json(value)
    except ValidationError as exc:
        raise BadEvent(str(exc)[:500]) from exc
