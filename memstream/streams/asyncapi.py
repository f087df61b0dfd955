"""The AsyncAPI 3.0 document of memstream's four topics, generated from the code that
defines them: topic specs (names, partitions, retention), the record keys and headers the
producers write, and the pydantic models as payloads. ``memstream schema --asyncapi
--write`` commits it as ``docs/asyncapi.json``; a test holds the two equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from memstream import __version__
from memstream.config import KafkaSettings
from memstream.schemas import ChatMessage
from memstream.schemas.dlq import DeadLetter
from memstream.schemas.events import GenerationSwitch, MemoryEvent, MemoryEventType
from memstream.schemas.jobs import (
    AddMemoryJob,
    ConsolidationJob,
    DeleteMemoriesJob,
    ForgetJob,
    ReflectionJob,
)
from memstream.streams.codec import CONTROL_HEADER
from memstream.streams.events import EVENT_HEADER, GENERATION_HEADER, SWITCH
from memstream.streams.topics import topic_specs

#: Where the committed document lives (in the repository, next to the other docs).
ASYNCAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"

KAFKA_BINDING = "0.5.0"
REF = "#/components/schemas/{model}"

_MODELS: list[type[BaseModel]] = [
    ChatMessage,
    ForgetJob,
    ConsolidationJob,
    ReflectionJob,
    AddMemoryJob,
    DeleteMemoriesJob,
    MemoryEvent,
    GenerationSwitch,
    DeadLetter,
]

USER_KEY = {
    "type": "string",
    "pattern": "^[^/]+/.+$",
    "description": "`owner_id/user_id` (UTF-8). Every topic is keyed so and co-partitioned "
    "(murmur2, Kafka's default partitioner): a user's messages, jobs and memory events "
    "share one partition number.",
    "examples": ["acme-assistant/u-42"],
}


def _headers(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "serialization" if m is not ChatMessage else "validation") for m in _MODELS],
        ref_template=REF,
    )
    defs: dict[str, Any] = top["$defs"]
    return dict(sorted(defs.items()))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _message(
    name: str,
    title: str,
    summary: str,
    payload: dict[str, Any],
    headers: dict[str, Any] | None = None,
    key: dict[str, Any] | None = None,
    examples: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
    }
    if headers is not None:
        message["headers"] = headers
    message["bindings"] = {"kafka": {"key": key or USER_KEY, "bindingVersion": KAFKA_BINDING}}
    if examples:
        message["examples"] = examples
    return message


def asyncapi_document(kafka: KafkaSettings | None = None) -> dict[str, Any]:
    kafka = kafka or KafkaSettings()
    specs = {s.name: s for s in topic_specs(kafka)}
    chat_example = ChatMessage.model_json_schema()["examples"][0]
    messages = {
        "ChatMessage": _message(
            "ChatMessage",
            "A chat message",
            "One turn of a conversation. Only `user` turns become memories; the others give "
            "context. Re-sending a message (same `message_id`) is safe.",
            _ref("ChatMessage"),
            _headers(
                {"content-type": {"type": "string", "const": "application/json"}}, required=[]
            ),
            examples=[{"name": "user-turn", "payload": chat_example}],
        ),
        "ForgetControl": _message(
            "ForgetControl",
            "Erase a user",
            "A control record in the user's message stream: everything of the user before it "
            "is erased (memories, open window, cached model answers); messages after it are "
            "new.",
            _ref("ForgetJob"),
            _headers(
                {CONTROL_HEADER: {"type": "string", "const": "forget"}}, required=[CONTROL_HEADER]
            ),
        ),
        "Job": _message(
            "Job",
            "A job for one user",
            "Written by the worker (and the query service's management routes); the jobs "
            "agent runs them in order per user. `job_type` tells them apart.",
            {
                "oneOf": [
                    _ref(m.__name__)
                    for m in (
                        ConsolidationJob,
                        ReflectionJob,
                        AddMemoryJob,
                        DeleteMemoriesJob,
                        ForgetJob,
                    )
                ],
                "discriminator": "job_type",
            },
        ),
        "MemoryEvent": _message(
            "MemoryEvent",
            "A memory event",
            "What happened to a user's memories: the replayable log every store version is "
            "rebuilt from. A `forget` event is the user's tombstone.",
            _ref("MemoryEvent"),
            _headers(
                {
                    EVENT_HEADER: {
                        "type": "string",
                        "enum": [t.value for t in MemoryEventType],
                    },
                    GENERATION_HEADER: {
                        "type": "string",
                        "pattern": "^[0-9]+$",
                        "description": "On the events of a rebuild from messages.",
                    },
                },
                required=[EVENT_HEADER],
            ),
        ),
        "GenerationSwitch": _message(
            "GenerationSwitch",
            "A rebuild generation marker",
            "Written to every partition when a rebuild from messages switches: replays take "
            "the newer generation's events from here on.",
            _ref("GenerationSwitch"),
            _headers(
                {
                    EVENT_HEADER: {"type": "string", "const": SWITCH},
                    GENERATION_HEADER: {"type": "string", "pattern": "^[0-9]+$"},
                },
                required=[EVENT_HEADER, GENERATION_HEADER],
            ),
            key={"type": "null", "description": "No key: one marker per partition."},
        ),
        "DeadLetter": _message(
            "DeadLetter",
            "A dead letter",
            "A record the worker could not handle, with the reason code, a readable detail "
            "and the original bytes (bounded: a prefix with the whole size and SHA-256).",
            _ref("DeadLetter"),
            key={
                "type": ["string", "null"],
                "description": "The original record's key (a prefix when too long).",
            },
        ),
    }

    def channel(name: str, description: str, *message_names: str) -> dict[str, Any]:
        spec = specs[name]
        config = {
            "retention.ms": int(spec.config["retention.ms"]),
            "cleanup.policy": [spec.config["cleanup.policy"]],
        }
        return {
            "address": name,
            "title": spec.purpose,
            "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in message_names},
            "bindings": {
                "kafka": {
                    "topic": name,
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "topicConfiguration": config,
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }

    channels = {
        "messages": channel(
            kafka.messages_topic,
            "The input log: platforms produce chat messages here (and `POST /v1/messages` "
            "does for apps). Invalid records go to the DLQ with a reason.",
            "ChatMessage",
            "ForgetControl",
        ),
        "jobs": channel(
            kafka.jobs_topic,
            "Internal: closed windows and management requests, per user, in order.",
            "Job",
        ),
        "memories": channel(
            kafka.memories_topic,
            "The memory log, the source of truth of every store version.",
            "MemoryEvent",
            "GenerationSwitch",
        ),
        "dlq": channel(
            kafka.dlq_topic, "Dead letters from ingest and from the jobs agent.", "DeadLetter"
        ),
    }

    def operation(action: str, name: str, summary: str, *message_names: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in message_names],
        }

    operations = {
        "produceChatMessages": operation(
            "send", "messages", "Platforms produce conversations.", "ChatMessage"
        ),
        "forgetUser": operation("send", "messages", "Erase a user.", "ForgetControl"),
        "consumeMemoryEvents": operation(
            "receive",
            "memories",
            "Follow what is remembered (rebuilds, mirrors, audits).",
            "MemoryEvent",
            "GenerationSwitch",
        ),
        "consumeDeadLetters": operation(
            "receive", "dlq", "See what was refused and why.", "DeadLetter"
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "memstream topics",
            "version": __version__,
            "description": "Kafka topics of memstream, long-term memory for LLM chatbots. "
            "Topic names, partitions and retention are the defaults (`MEMSTREAM_KAFKA__*`).",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": kafka.bootstrap_servers.split(",")[0],
                "protocol": "kafka",
                "description": "Any Kafka-protocol broker (Apache Kafka; tansu embedded).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas()},
    }
