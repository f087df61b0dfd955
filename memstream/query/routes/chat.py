"""``POST /v1/chat``: chat with memory, retrieving exactly as ``/v1/retrieve`` does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException

from memstream.llm import LLMError
from memstream.query.chat import chat_messages
from memstream.query.models import ChatRequest, ChatResponse, ChatTurn, RetrievedMemory
from memstream.query.state import CallerDep, ServiceDep
from memstream.schemas import ChatMessage, user_key

#: Longest turn put on the log (the message schema's content bound).
MAX_TURN_CHARS = 16000

router = APIRouter(tags=["chat"])


@router.post("/v1/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, service: ServiceDep, caller: CallerDep) -> ChatResponse:
    """Chat with memory: retrieve (time-aware) → a system prompt with the current time,
    the memories and the recent turns not yet consolidated → the model's answer. Both
    turns go to the messages topic, so the conversation becomes memory in turn."""
    caller.allow(body.owner_id)
    llm = service.chat_llm
    if llm is None:
        raise HTTPException(503, "chat needs a generation model (set llm.backend)")
    store, _, queries = service.ready()
    now = body.at or datetime.now(UTC).astimezone()
    found = await service.retriever(
        store,
        queries,
        body.owner_id,
        body.user_id,
        body.message,
        at=now,
        top_k=body.top_k,
        mode=body.retrieval,
        include_expired=body.include_expired,
        rerank=body.rerank,
    )
    k = user_key(body.owner_id, body.user_id)
    newest = await store.list_memories(body.owner_id, body.user_id, limit=1)
    turns_since = service.recent_turns.since(k, newest[0].message_time if newest else None)
    messages = chat_messages(
        name=body.speaker or body.user_id,
        now=now,
        memories=[r.node for r in found.ranked],
        recent=[*body.history, *turns_since],
        message=body.message,
    )
    try:
        answer = await llm.text(step="chat", owner_id=body.owner_id, messages=messages)
    except LLMError as exc:
        raise HTTPException(502, f"the model did not answer: {exc}") from exc
    turns = [
        ChatMessage(
            message_id=f"chat-{uuid.uuid4().hex}",
            owner_id=body.owner_id,
            user_id=body.user_id,
            role=role,
            speaker=body.speaker if role == "user" else None,
            content=text[:MAX_TURN_CHARS],
            sent_at=now + timedelta(milliseconds=i),
        )
        for i, (role, text) in enumerate((("user", body.message), ("assistant", answer)))
    ]
    if body.remember:
        await service.log_writer.send_messages(turns)
    service.recent_turns.add(k, now, ChatTurn(role="user", content=body.message))
    service.recent_turns.add(k, now, ChatTurn(role="assistant", content=answer[:MAX_TURN_CHARS]))
    return ChatResponse(
        answer=answer,
        memories=[RetrievedMemory.ranked(r) for r in found.ranked],
        system_prompt=messages[0]["content"],
        message_ids=[t.message_id for t in turns] if body.remember else [],
    )
