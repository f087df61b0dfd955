"""``POST /v1/messages``: the HTTP door to the message log, for apps that do not speak Kafka.

Kafka stays the path for platforms; this is the same log, the same contract and the same
judge: every message is decoded by the worker's codec (``streams/codec.py``), so a message
refused here carries the reason code its dead letter would have had, and an accepted one is
exactly what a producer would have put on ``memstream.messages``, keyed ``owner_id/user_id``.
"""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi import APIRouter, HTTPException

from memstream.query.models import AddMessagesRequest, AddMessagesResponse, MessageVerdict
from memstream.query.state import CallerDep, ServiceDep
from memstream.schemas import ChatMessage
from memstream.schemas.common import utcnow
from memstream.streams.codec import Rejected, decode_message

router = APIRouter(tags=["messages"])


def judge(
    items: list[object], *, max_bytes: int, max_future_skew: timedelta
) -> tuple[list[ChatMessage], list[MessageVerdict]]:
    """Each item as the worker would judge its record: the messages to produce and one
    verdict per item. A message id seen earlier in the request is a duplicate (sent once)."""
    now = utcnow()
    accepted: list[ChatMessage] = []
    verdicts: list[MessageVerdict] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        # ASCII JSON: escapes (a lone surrogate) reach the codec as they would from Kafka.
        value = json.dumps(item).encode("ascii")
        decoded = decode_message(
            None, value, max_bytes=max_bytes, now=now, max_future_skew=max_future_skew
        )
        if isinstance(decoded, Rejected):
            mid = item.get("message_id") if isinstance(item, dict) else None
            verdicts.append(
                MessageVerdict(
                    index=index,
                    message_id=mid if isinstance(mid, str) else None,
                    status="rejected",
                    reason=decoded.reason,
                    detail=decoded.detail,
                )
            )
            continue
        ident = (decoded.owner_id, decoded.message_id)
        if ident in seen:
            verdicts.append(
                MessageVerdict(index=index, message_id=decoded.message_id, status="duplicate")
            )
            continue
        seen.add(ident)
        accepted.append(decoded)
        verdicts.append(
            MessageVerdict(index=index, message_id=decoded.message_id, status="accepted")
        )
    return accepted, verdicts


@router.post("/v1/messages", response_model=AddMessagesResponse, status_code=202)
async def add_messages(
    body: AddMessagesRequest, service: ServiceDep, caller: CallerDep
) -> AddMessagesResponse:
    """Put chat messages on the log. Answers once the broker has acknowledged every accepted
    message (or 503 within ``api.produce_timeout_seconds``: then nothing is acknowledged and
    a retry is safe, messages are idempotent by ``message_id``). Invalid messages are
    reported one by one with the worker's DLQ reason codes; the valid ones still go."""
    settings = service.settings
    accepted, verdicts = judge(
        body.messages,
        max_bytes=settings.kafka.max_message_bytes,
        max_future_skew=timedelta(seconds=settings.window.max_future_skew_seconds),
    )
    for owner in sorted({m.owner_id for m in accepted}):
        caller.allow(owner)  # 403 for the whole request: nothing of it is produced
    if accepted:
        try:
            await service.log_writer.send_messages(accepted)
        except HTTPException:
            service.metrics.messages.labels("unavailable").inc(len(accepted))
            raise
    rejected = sum(1 for v in verdicts if v.status == "rejected")
    service.metrics.messages.labels("accepted").inc(len(accepted))
    service.metrics.messages.labels("rejected").inc(rejected)
    return AddMessagesResponse(accepted=len(accepted), rejected=rejected, results=verdicts)
