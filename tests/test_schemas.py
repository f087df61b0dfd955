"""Input contract and memory schemas (no servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from memstream.schemas import ChatMessage, MemoryEvent, MemoryNode, memory_id, split_user_key
from memstream.schemas.messages import JSON_SCHEMA_PATH, chat_message_json_schema
from tests.support.memories import VALID


def test_committed_json_schema_matches_the_model() -> None:
    committed = json.loads(JSON_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(chat_message_json_schema())), (
        "run `memstream schema --write` and commit the file"
    )


def test_schema_examples_validate() -> None:
    for example in chat_message_json_schema()["examples"]:  # type: ignore[attr-defined]
        ChatMessage.model_validate(example)


def test_valid_message_and_key() -> None:
    m = ChatMessage.model_validate(VALID)
    assert m.key == "app/u-1" and split_user_key(m.key) == ("app", "u-1")
    assert m.sent_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sent_at": "2024-07-10T09:30:00"}, "sent_at"),  # naive
        ({"sent_at": "1969-12-31T00:00:00Z"}, "sent_at"),
        ({"sent_at": "2100-01-02T00:00:00Z"}, "sent_at"),
        ({"owner_id": "a/b"}, "owner_id"),  # would break the key
        ({"user_id": ""}, "user_id"),
        ({"message_id": "x" * 129}, "message_id"),
        ({"content": "x" * 16_001}, "content"),
        ({"role": "bot"}, "role"),
        ({"language": "english please"}, "language"),
        ({"metadata": {"k": "v" * 1001}}, "metadata"),
        ({"metadata": {str(i): i for i in range(33)}}, "metadata"),
        ({"surprise": 1}, "surprise"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_limits_are_enforced(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatMessage.model_validate({**VALID, **change})
    assert info.value.errors()[0]["loc"][0] == field


def test_memory_id_is_deterministic_and_order_free() -> None:
    a = memory_id("o", "u", ["m2", "m1"], 0)
    assert a == memory_id("o", "u", ["m1", "m2"], 0)
    assert a != memory_id("o", "u", ["m1", "m2"], 1)
    assert a != memory_id("o", "u2", ["m1", "m2"], 0)
    assert len(a) == 32


def test_vector_travels_as_compact_base64() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    node = MemoryNode(
        memory_id="x",
        owner_id="o",
        user_id="u",
        memory_type="observation",
        content="c",
        message_time=when,
        valid_from=when,
        recorded_at=when,
        vector=[0.25, -1.5, 3.0],
    )
    event = MemoryEvent.upsert(node, "job", cause="consolidate")
    wire = event.model_dump_json()
    assert '"vector":"' in wire
    back = MemoryEvent.model_validate_json(wire)
    assert back.memory is not None and back.memory.vector == [0.25, -1.5, 3.0]
    assert back.memory.dt == "20240101"


def test_a_dead_letter_is_bounded_whatever_the_record() -> None:
    import hashlib

    from memstream.schemas import DeadLetter, DlqReason
    from memstream.schemas.dlq import MAX_KEY_BYTES, MAX_VALUE_BYTES, letter_key

    value, key = b"v" * (3 * MAX_VALUE_BYTES), b"k" * (5 * MAX_KEY_BYTES)
    headers = {f"h{i}": "x" * 5000 for i in range(100)}
    letter = DeadLetter.of(
        DlqReason.oversize, "d" * 10_000, topic="t", partition=1, offset=2,
        key=key, value=value, headers=headers,
    )  # fmt: skip
    assert letter.truncated and letter.value == value[:MAX_VALUE_BYTES]
    assert letter.value_bytes == len(value) and letter.key_bytes == len(key)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert len(letter.headers) == 32 and max(map(len, letter.headers.values())) == 1024
    assert len(letter.detail) == 4000 and letter_key(key) == key[:MAX_KEY_BYTES]
    assert len(letter.model_dump_json()) < 2 * MAX_VALUE_BYTES
    small = DeadLetter.of(
        DlqReason.malformed_json, "bad", topic="t", partition=0, offset=0, key=None, value=b"{"
    )
    assert not small.truncated and small.value == b"{" and small.key_b64 is None
    assert DeadLetter.model_validate_json(small.model_dump_json()) == small
