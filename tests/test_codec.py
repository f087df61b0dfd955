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


def _schema_verdict(record: dict[str, object]) -> bool:
    import jsonschema

    from memstream.schemas.messages import JSON_SCHEMA_PATH

    schema = json.loads(JSON_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return validator.is_valid(record)


#: Producers' mistakes found by adversarial testing, and the valid forms beside them.
CORPUS: list[tuple[str, dict[str, object], DlqReason | None]] = [
    ("valid", {}, None),
    ("valid, Z", {"sent_at": "2024-07-10T01:30:00Z"}, None),
    ("valid, fraction", {"sent_at": "2024-07-10T01:30:00.123456+00:00"}, None),
    ("valid, metadata", {"metadata": {"a": "x" * 1000, "b": 1, "c": 1.5, "d": True}}, None),
    ("schema_version true", {"schema_version": True}, DlqReason.wrong_type),
    ("schema_version 2", {"schema_version": 2}, DlqReason.unsupported_schema_version),
    ("epoch int", {"sent_at": 1720575000}, DlqReason.bad_timestamp),
    ("epoch float", {"sent_at": 1720575000.5}, DlqReason.bad_timestamp),
    ("numeric string", {"sent_at": "1720575000"}, DlqReason.bad_timestamp),
    ("lower-case t", {"sent_at": "2024-07-10t09:30:00+08:00"}, DlqReason.bad_timestamp),
    ("lower-case z", {"sent_at": "2024-07-10T01:30:00z"}, DlqReason.bad_timestamp),
    ("space separator", {"sent_at": "2024-07-10 09:30:00+08:00"}, DlqReason.bad_timestamp),
    ("minutes only", {"sent_at": "2024-07-10T09:30+08:00"}, DlqReason.bad_timestamp),
    ("no zone", {"sent_at": "2024-07-10T09:30:00"}, DlqReason.bad_timestamp),
    ("no such day", {"sent_at": "2024-02-30T09:30:00Z"}, DlqReason.bad_timestamp),
    ("year 1900", {"sent_at": "1900-01-01T00:00:00Z"}, DlqReason.bad_timestamp),
    ("year 2150", {"sent_at": "2150-01-01T00:00:00Z"}, DlqReason.bad_timestamp),
    ("role true", {"role": True}, DlqReason.wrong_type),
    ("role 5", {"role": 5}, DlqReason.wrong_type),
    ("role unknown", {"role": "robot"}, DlqReason.invalid_value),
    ("content number", {"content": 7}, DlqReason.wrong_type),
    ("metadata too long", {"metadata": {"a": "x" * 1001}}, DlqReason.invalid_value),
    ("metadata object", {"metadata": {"a": {"b": 1}}}, DlqReason.wrong_type),
    ("unknown field", {"colour": "red"}, DlqReason.unknown_field),
]


@pytest.mark.parametrize(("case", "change", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_the_codec_and_the_committed_schema_agree(
    case: str, change: dict[str, object], reason: DlqReason | None
) -> None:
    """One corpus, two judges: what the published JSON Schema refuses, the worker refuses
    (with the reason a producer can act on), and what it accepts, the worker accepts."""
    record = {**VALID, **change}
    decoded = decode(json.dumps(record).encode())
    assert _schema_verdict(record) == (reason is None), case
    if reason is None:
        assert isinstance(decoded, ChatMessage), (case, decoded)
    else:
        assert isinstance(decoded, Rejected) and decoded.reason is reason, (case, decoded)
