"""The committed AsyncAPI document is what the code generates, and real records as the
producers build them (value and headers) validate against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator

from memstream.config import KafkaSettings
from memstream.schemas import ChatMessage, MemoryNode, MemoryType
from memstream.schemas.dlq import DeadLetter, DlqReason
from memstream.schemas.events import GenerationSwitch, MemoryEvent
from memstream.schemas.jobs import ConsolidationJob, ForgetJob, WindowTrigger
from memstream.streams.asyncapi import ASYNCAPI_PATH, asyncapi_document
from memstream.streams.events import event_record, header_map, switch_record
from memstream.streams.topics import topic_specs

DOC = asyncapi_document()
T0 = datetime(2024, 7, 10, 9, 30, tzinfo=UTC)


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for one schema of the document, its ``$ref``s resolved in the document."""
    return Draft202012Validator({**schema, "components": DOC["components"]})


def message(name: str) -> dict[str, Any]:
    found: dict[str, Any] = DOC["components"]["messages"][name]
    return found


def check(name: str, value: bytes, headers: dict[str, str] | None = None) -> None:
    m = message(name)
    validator(m["payload"]).validate(json.loads(value))
    if "headers" in m:
        validator(m["headers"]).validate(headers or {})


def test_the_committed_document_is_the_generated_one() -> None:
    committed = json.loads(ASYNCAPI_PATH.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(DOC)), "run: memstream schema --asyncapi --write"


def test_every_ref_resolves_and_every_topic_is_a_channel() -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(DOC):
        target: Any = DOC
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
    specs = {s.name: s for s in topic_specs(KafkaSettings())}
    channels = {c["address"]: c for c in DOC["channels"].values()}
    assert set(channels) == set(specs)
    for name, spec in specs.items():
        binding = channels[name]["bindings"]["kafka"]
        assert binding["partitions"] == spec.partitions
        assert binding["topicConfiguration"]["retention.ms"] == int(spec.config["retention.ms"])
    assert DOC["asyncapi"] == "3.0.0"


def test_real_records_validate() -> None:
    chat = ChatMessage.model_validate(ChatMessage.model_json_schema()["examples"][0])
    check("ChatMessage", chat.model_dump_json().encode(), {"content-type": "application/json"})
    for example in message("ChatMessage")["examples"]:
        validator(message("ChatMessage")["payload"]).validate(example["payload"])

    forget = ForgetJob(job_id="f1", owner_id="acme", user_id="u-42")
    check("ForgetControl", forget.model_dump_json().encode(), {"memstream-control": "forget"})
    check("Job", forget.model_dump_json().encode())
    job = ConsolidationJob(
        job_id="j1",
        owner_id="acme",
        user_id="u-42",
        messages=[chat],
        window_no=0,
        trigger=WindowTrigger.idle_gap,
        opened_at=T0,
    )
    check("Job", job.model_dump_json().encode())

    node = MemoryNode(
        memory_id="m1",
        owner_id="acme",
        user_id="u-42",
        memory_type=MemoryType.observation,
        content="I just joined Meituan as a data engineer.",
        message_time=T0,
        valid_from=T0,
        recorded_at=T0,
        vector=[0.25, -0.5],
    )
    _, value, headers = event_record(MemoryEvent.upsert(node, "j1", "consolidate"))
    check("MemoryEvent", value, header_map(headers))
    switch_value, switch_headers = switch_record(GenerationSwitch(generation=3))
    check("GenerationSwitch", switch_value, header_map(switch_headers))

    letter = DeadLetter.of(
        DlqReason.bad_timestamp,
        "sent_at has no time zone",
        topic="memstream.messages",
        partition=0,
        offset=7,
        key=b"acme/u-42",
        value=b'{"message_id": "m1"}',
    )
    check("DeadLetter", letter.model_dump_json().encode())


def test_a_wrong_record_does_not_validate() -> None:
    bad = {"message_id": "m1", "owner_id": "acme"}  # no user_id, role, content, sent_at
    assert list(validator(message("ChatMessage")["payload"]).iter_errors(bad))
    assert list(validator(message("MemoryEvent")["headers"]).iter_errors({}))
