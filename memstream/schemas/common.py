"""Shared field types and limits for every schema at a process boundary."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StringConstraints
from pydantic_core import PydanticCustomError

#: Ids are opaque to memstream but must be safe in Kafka keys, URLs and index ids.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"
MAX_ID_LENGTH = 128

#: Owner and user ids form the Kafka key ``owner_id/user_id``, so ``/`` is excluded.
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]

#: Sane range for message timestamps: backfills of old chats are fine, year 2100 is not.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def _check_time_range(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone")
    if not (MIN_TIME <= value < MAX_TIME):
        raise ValueError(f"timestamp {value.isoformat()} is outside 1970-01-01..2100-01-01")
    return value


#: A timezone-aware datetime within the sane range.
Timestamp = Annotated[datetime, AfterValidator(_check_time_range)]

#: RFC 3339 ``date-time`` as producers must write it on the wire: upper-case ``T`` and
#: ``Z``, seconds, an optional fraction, a zone (``Z`` or ``±hh:mm``); years 1970–2099.
#: The committed JSON Schema carries the same pattern, so schema and codec agree.
RFC3339_PATTERN = (
    r"^(19[7-9][0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


def _wire_time(value: Any) -> Any:
    """On the wire a time is an RFC 3339 string, nothing else: no epoch numbers, numeric
    strings, space separators, lower-case ``t``/``z`` or minutes-only times (which a lax
    parser would accept). Python callers may pass a ``datetime``."""
    if isinstance(value, datetime):
        return _check_time_range(value)
    if not isinstance(value, str):
        raise PydanticCustomError(
            "datetime_type",
            "must be an RFC 3339 date-time string, not {kind}",
            {"kind": type(value).__name__},
        )
    if not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "datetime_format",
            "must be RFC 3339 like 2024-07-10T09:30:00+08:00 (upper-case T and Z, seconds, a zone)",
        )
    return value


#: A message's time as producers send it: RFC 3339 on the wire. The pattern bounds the year
#: (1970–2099) as :data:`Timestamp` does, so one check per message is enough (this runs for
#: every record ingested).
WireTimestamp = Annotated[datetime, BeforeValidator(_wire_time)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _vector_in(value: Any) -> Any:
    """Accept a float list or the compact base64 float32 form used on the wire."""
    if isinstance(value, str):
        raw = base64.b64decode(value.encode("ascii"), validate=True)
        if len(raw) % 4:
            raise ValueError("vector bytes are not a whole number of float32 values")
        return np.frombuffer(raw, dtype="<f4").astype(float).tolist()
    return value


def _vector_out(value: list[float]) -> str:
    return base64.b64encode(np.asarray(value, dtype="<f4").tobytes()).decode("ascii")


#: Embedding vector; serialised as base64 little-endian float32 (4x smaller than JSON floats).
Vector = Annotated[
    list[float],
    BeforeValidator(_vector_in),
    PlainSerializer(_vector_out, return_type=str, when_used="json"),
    Field(max_length=4096),
]


#: Learned sparse vector: vocabulary id (as a string, the JSON object key) → weight.
SparseTerms = Annotated[dict[str, float], Field(max_length=512)]
