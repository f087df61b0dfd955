"""Decode and validate raw records from ``memstream.messages``: pure, no I/O.

Every reject carries a reason code from :class:`DlqReason` and a human-readable detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from memstream.schemas.dlq import DlqReason
from memstream.schemas.jobs import ForgetJob
from memstream.schemas.messages import ChatMessage

#: Header of a control record on the messages topic; its value names the control.
CONTROL_HEADER = "memstream-control"


@dataclass(frozen=True)
class Rejected:
    reason: DlqReason
    detail: str


_TYPE_ERRORS = ("_type", "_parsing")
_TIME_FIELDS = {"sent_at"}


def _reason_for(error: ValidationError) -> Rejected:
    """Map pydantic's first error to one reason; all errors go into the detail."""
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    kind = first["type"]
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:10]
    )
    field = str(first["loc"][0]) if first["loc"] else ""
    if kind == "missing":
        reason = DlqReason.missing_field
    elif kind == "extra_forbidden":
        reason = DlqReason.unknown_field
    elif field in _TIME_FIELDS:
        reason = DlqReason.bad_timestamp
    elif field == "schema_version" and not kind.endswith(_TYPE_ERRORS):
        reason = DlqReason.unsupported_schema_version
    elif kind == "string_too_long" and field in {"content", "context"}:
        reason = DlqReason.oversize
    elif kind.endswith(_TYPE_ERRORS) or kind in {"model_type", "dict_type"}:
        reason = DlqReason.wrong_type
    elif kind in {"enum", "literal_error", "string_pattern_mismatch"} and not isinstance(
        first.get("input"), str
    ):
        reason = DlqReason.wrong_type  # e.g. true or a list where one of some strings belongs
    else:
        reason = DlqReason.invalid_value
    return Rejected(reason, f"{loc} [{kind}]: {detail}"[:4000])


def decode_message(
    key: bytes | None,
    value: bytes | None,
    *,
    max_bytes: int,
    now: datetime,
    max_future_skew: timedelta,
) -> ChatMessage | Rejected:
    """Bytes in, a valid :class:`ChatMessage` or the reason it is not one out."""
    if value is None:
        return Rejected(DlqReason.malformed_json, "record has no value (tombstone)")
    if len(value) > max_bytes:
        return Rejected(DlqReason.oversize, f"value is {len(value)} bytes; limit {max_bytes}")
    try:
        # The common case in one pass through pydantic-core's JSON parser; a record that
        # fails takes the slow path below, which names what is wrong with it.
        message = ChatMessage.model_validate_json(value)
    except ValidationError as exc:
        return _reject(value, exc)
    return _check(key, message, now, max_future_skew)


def _reject(value: bytes, error: ValidationError) -> Rejected:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(DlqReason.invalid_utf8, f"value is not UTF-8: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejected(DlqReason.malformed_json, f"value is not JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected(DlqReason.not_an_object, f"value is JSON {type(data).__name__}, not object")
    try:
        ChatMessage.model_validate(data)
    except ValidationError as exc:
        return _reason_for(exc)
    # Valid as Python data yet not as JSON (e.g. a lone surrogate escape): refused all the same.
    return _reason_for(error)


def _check(
    key: bytes | None, message: ChatMessage, now: datetime, max_future_skew: timedelta
) -> ChatMessage | Rejected:
    if message.sent_at - now > max_future_skew:
        return Rejected(
            DlqReason.timestamp_in_future,
            f"sent_at {message.sent_at.isoformat()} is more than {max_future_skew} ahead of "
            f"the worker clock {now.isoformat()}",
        )
    if key is not None and key != message.key.encode("utf-8"):
        shown = key[:300].decode("utf-8", "replace")
        return Rejected(
            DlqReason.key_mismatch, f"record key {shown!r} is not owner_id/user_id {message.key!r}"
        )
    return message


def decode_control(key: bytes | None, value: bytes | None, control: str) -> ForgetJob | Rejected:
    """A control record (header ``memstream-control``). The only one is ``forget``: it sits
    in the user's message stream, so everything before it is erased and nothing after."""
    if control != "forget":
        return Rejected(DlqReason.invalid_value, f"unknown control record {control!r}")
    try:
        job = ForgetJob.model_validate_json(value or b"")
    except ValidationError as exc:
        return _reason_for(exc)
    if key is not None and key != job.key.encode("utf-8"):
        return Rejected(DlqReason.key_mismatch, f"record key is not {job.key!r}")
    return job
