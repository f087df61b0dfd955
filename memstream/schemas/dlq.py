"""Dead-letter records on ``memstream.dlq``: exactly why an input was not remembered."""

from __future__ import annotations

import base64
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


class DeadLetter(BaseModel):
    """The original bytes plus the reason, so nothing valid-looking is silently dropped."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    reason: DlqReason
    detail: str = Field(max_length=4000)
    stage: Literal["ingest", "jobs"] = "ingest"
    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str = Field(description="The original value bytes, base64.")
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime = Field(default_factory=utcnow)

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)

    @staticmethod
    def encode(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode("ascii")
