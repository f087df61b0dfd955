"""Decoding raw records: every kind of bad input maps to one clear reason (no servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from memstream.schemas import ChatMessage, DlqReason
from memstream.streams.codec import Rejected, decode_message
from memstream.streams.partitioning import partition_for
from tests.support.memories import VALID

NOW = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)
GOOD = VALID


def decode(value: bytes | None, key: bytes | None = b"app/u-1") -> ChatMessage | Rejected:
    return decode_message(key, value, max_bytes=4096, now=NOW, max_future_skew=timedelta(hours=1))


def js(**change: object) -> bytes:
    return json.dumps({**GOOD, **change}).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, DlqReason.malformed_json),
        (b"\xff\xfe{}", DlqReason.invalid_utf8),
        (b'{"message_id": ', DlqReason.malformed_json),
        (b"", DlqReason.malformed_json),
        (b"[1, 2]", DlqReason.not_an_object),
        (b'"text"', DlqReason.not_an_object),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "content"}).encode(),
            DlqReason.missing_field,
        ),
        (js(content=42), DlqReason.wrong_type),
        (js(role=["user"]), DlqReason.wrong_type),
        (js(metadata=[1]), DlqReason.wrong_type),
        (js(role="robot"), DlqReason.invalid_value),
        (js(content="a lone surrogate \ud800"), DlqReason.invalid_value),  # not encodable
        (js(user_id="has space"), DlqReason.invalid_value),
        (js(sent_at="yesterday"), DlqReason.bad_timestamp),
        (js(sent_at="2024-07-10T09:30:00"), DlqReason.bad_timestamp),
        (js(sent_at="1900-01-01T00:00:00Z"), DlqReason.bad_timestamp),
        (js(sent_at="2024-07-10T14:00:00Z"), DlqReason.timestamp_in_future),
        (js(content="x" * 16_001), DlqReason.oversize),
        (b" " * 5000, DlqReason.oversize),
        (js(extra_field=1), DlqReason.unknown_field),
        (js(schema_version=9), DlqReason.unsupported_schema_version),
    ],
)
def test_rejects_with_reason(value: bytes | None, reason: DlqReason) -> None:
    # A generous byte limit for the 16k-character content case, so the model's limit is hit.
    max_bytes = 4096 if value is not None and value.strip() == b"" else 100_000
    result = decode_message(
        b"app/u-1", value, max_bytes=max_bytes, now=NOW, max_future_skew=timedelta(hours=1)
    )
    assert isinstance(result, Rejected), result
    assert result.reason is reason, result.detail
    assert result.detail


def test_key_must_match_owner_and_user() -> None:
    result = decode(js(), key=b"app/someone-else")
    assert isinstance(result, Rejected) and result.reason is DlqReason.key_mismatch
    assert isinstance(decode(js(), key=None), ChatMessage), "unkeyed records are accepted"


def test_valid_message_passes() -> None:
    result = decode(js())
    assert isinstance(result, ChatMessage) and result.content == "I like tea"


def test_partitioner_matches_kafka_default() -> None:
    # Reference values of the Java client's murmur2 partitioner (also aiokafka's default).
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for key in [b"app/u-1", b"acme/user-007", "租户/用户".encode()]:
        for n in (1, 4, 8, 12):
            assert partition_for(key, n) == partitioner(key, list(range(n)), list(range(n)))
