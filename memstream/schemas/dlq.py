"""Dead-letter records on ``memstream.dlq``: exactly why an input was not remembered."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memstream.schemas.common import utcnow


class DlqReason(StrEnum):
    invalid_utf8 = "invalid_utf8"
    malformed_json = "malformed_json"
    not_an_object = "not_an_object"
    missing_field = "missing_field"
    unknown_field = "unknown_field"
    wrong_type = "wrong_type"
    invalid_value = "invalid_value"
    bad_timestamp = "bad_timestamp"
    timestamp_in_future = "timestamp_in_future"
    oversize = "oversize"
    key_mismatch = "key_mismatch"
    unsupported_schema_version = "unsupported_schema_version"
    job_failed = "job_failed"
    llm_unavailable = "llm_unavailable"
    llm_output_invalid = "llm_output_invalid"
    llm_error = "llm_error"


#: A dead letter keeps at most this much of the original value whole (a record above the
#: messages' own size limit is oversize anyway): the letter always fits one record.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
MAX_HEADERS = 32
MAX_HEADER_CHARS = 1024


def letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's own record key: the original key, bounded like the letter."""
    return None if key is None else key[:MAX_KEY_BYTES]


class DeadLetter(BaseModel):
    """The original bytes plus the reason, so nothing valid-looking is silently dropped.

    Bounded, so that a letter is always deliverable: a key or value larger than the bounds
    is kept as a prefix (``truncated``), with its full size and the SHA-256 of all of it."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    reason: DlqReason
    detail: str = Field(max_length=4000)
    stage: Literal["ingest", "jobs"] = "ingest"
    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str = Field(
        description="The original value bytes, base64 (a prefix when ``truncated``)."
    )
    value_bytes: int | None = Field(None, description="Size of the whole original value.")
    value_sha256: str | None = Field(None, description="SHA-256 (hex) of the whole value.")
    key_bytes: int | None = Field(None, description="Size of the whole original key.")
    truncated: bool = Field(False, description="The key or the value is kept as a prefix.")
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(
        cls,
        reason: DlqReason,
        detail: str,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Mapping[str, str] | None = None,
        stage: Literal["ingest", "jobs"] = "ingest",
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> DeadLetter:
        """The letter for one record, within the bounds whatever the record's size."""
        raw = value or b""
        kept_headers = dict(
            (name[:MAX_HEADER_CHARS], text[:MAX_HEADER_CHARS])
            for name, text in list((headers or {}).items())[:MAX_HEADERS]
        )
        return cls(
            reason=reason,
            detail=detail[:4000],
            stage=stage,
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=cls.encode(None if key is None else key[:MAX_KEY_BYTES]),
            key_bytes=None if key is None else len(key),
            value_b64=base64.b64encode(raw[:max_value_bytes]).decode("ascii"),
            value_bytes=len(raw),
            value_sha256=hashlib.sha256(raw).hexdigest(),
            truncated=len(raw) > max_value_bytes or (key is not None and len(key) > MAX_KEY_BYTES),
            headers=kept_headers,
        )

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)

    @staticmethod
    def encode(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode("ascii")
