"""The input contract: one chat message as producers put it on ``memstream.messages``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from memstream.schemas.common import RFC3339_PATTERN, Id, WireTimestamp

#: Largest ``content`` accepted, in characters. Longer texts are documents, not chat turns.
MAX_CONTENT_CHARS = 16_000
#: Largest ``context`` kept: one quoted turn, not a transcript.
MAX_CONTEXT_CHARS = 2_000
MAX_METADATA_KEYS = 32
MAX_METADATA_VALUE_CHARS = 1_000

MetadataValue = (
    Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]
    | int
    | float
    | bool
    | None
)
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$", max_length=35)
]


def _no_bool(value: object) -> object:
    """JSON ``true`` is not the integer 1 (a lax parser would take it as one)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not a boolean")
    return value


class Role(StrEnum):
    user = "user"
    assistant = "assistant"
    system = "system"


class ChatMessage(BaseModel):
    """One chat turn. Producers key it by ``owner_id/user_id`` (see docs/producers.md)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "message_id": "m-000123",
                    "owner_id": "acme-assistant",
                    "user_id": "u-42",
                    "role": "user",
                    "speaker": "Alice",
                    "content": "I just joined Meituan as a data engineer.",
                    "sent_at": "2024-07-10T09:30:00+08:00",
                    "conversation_id": "c-7",
                    "language": "en",
                    "metadata": {"channel": "app"},
                }
            ]
        },
    )

    schema_version: Annotated[Literal[1], BeforeValidator(_no_bool)] = Field(
        1, description="Version of this contract."
    )
    message_id: Id = Field(description="Unique per owner; a re-sent message keeps its id.")
    owner_id: Id = Field(description="Whose memory space: the app, assistant or tenant.")
    user_id: Id = Field(description="The person the memory is about.")
    role: Role = Field(description="Only `user` turns become memories; others give context.")
    speaker: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="Display name of the speaker, used in insight texts."
    )
    content: Annotated[str, StringConstraints(max_length=MAX_CONTENT_CHARS)] = Field(
        description="The message text (empty or trivial texts are accepted and not remembered)."
    )
    sent_at: WireTimestamp = Field(
        description="When the message was sent: RFC 3339 with a zone, e.g. "
        "2024-07-10T09:30:00+08:00.",
        json_schema_extra={"pattern": RFC3339_PATTERN},
    )
    context: Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)] | None = Field(
        None,
        description="The turn this message answers, when it is not on the same key (another "
        "person's question in a group or 1:1 chat, a quoted reply). Indexed with the memory "
        "for recall; never remembered as the user's own words.",
    )
    conversation_id: Id | None = None
    language: LanguageTag | None = Field(None, description="BCP 47 tag, e.g. `en`, `zh-CN`.")
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], MetadataValue
    ] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    @property
    def key(self) -> str:
        """The Kafka key and table key of this message's memory subject."""
        return user_key(self.owner_id, self.user_id)


def user_key(owner_id: str, user_id: str) -> str:
    return f"{owner_id}/{user_id}"


def split_user_key(key: str) -> tuple[str, str]:
    owner_id, sep, user_id = key.partition("/")
    if not sep or not owner_id or not user_id:
        raise ValueError(f"not an owner/user key: {key!r}")
    return owner_id, user_id


#: The committed JSON Schema of the input contract, shipped inside the package for producers.
JSON_SCHEMA_PATH = Path(__file__).with_name("chat_message.schema.json")


def chat_message_json_schema() -> dict[str, object]:
    schema = ChatMessage.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://memstream.dev/schemas/chat_message.v1.json",
        **schema,
    }
