"""``POST /v1/chat``: chat with memory, retrieving exactly as ``/v1/retrieve`` does; the
answer whole, or (``stream``) as server-sent events token by token."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from memstream.llm import LLMError
from memstream.llm.base import Message
from memstream.query.chat import chat_messages
from memstream.query.models import ChatRequest, ChatResponse, ChatTurn, RetrievedMemory
from memstream.query.state import CallerDep, Service, ServiceDep
from memstream.schemas import ChatMessage, user_key

#: Longest turn put on the log (the message schema's content bound).
MAX_TURN_CHARS = 16000

router = APIRouter(tags=["chat"])


@dataclass
class _Exchange:
    """One chat request between retrieval and the answer."""

    body: ChatRequest
    now: datetime
    memories: list[RetrievedMemory]
    messages: list[Message]

    async def finish(self, service: Service, answer: str) -> ChatResponse:
        """Put both turns on the log (when asked) and in the recent turns; the response."""
        body, now = self.body, self.now
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
        k = user_key(body.owner_id, body.user_id)
        service.recent_turns.add(k, now, ChatTurn(role="user", content=body.message))
        service.recent_turns.add(
            k, now, ChatTurn(role="assistant", content=answer[:MAX_TURN_CHARS])
        )
        return ChatResponse(
            answer=answer,
            memories=self.memories,
            system_prompt=self.messages[0]["content"],
            message_ids=[t.message_id for t in turns] if body.remember else [],
        )


async def _prepare(body: ChatRequest, service: Service) -> _Exchange:
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
    return _Exchange(body, now, [RetrievedMemory.ranked(r) for r in found.ranked], messages)


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With `stream`."}},
)
async def chat(body: ChatRequest, service: ServiceDep, caller: CallerDep) -> Any:
    """Chat with memory: retrieve (time-aware) → a system prompt with the current time,
    the memories and the recent turns not yet consolidated → the model's answer. Both
    turns go to the messages topic, so the conversation becomes memory in turn."""
    caller.allow(body.owner_id)
    llm = service.chat_llm
    if llm is None:
        raise HTTPException(503, "chat needs a generation model (set llm.backend)")
    exchange = await _prepare(body, service)
    if not body.stream:
        try:
            answer = await llm.text(step="chat", owner_id=body.owner_id, messages=exchange.messages)
        except LLMError as exc:
            raise HTTPException(502, f"the model did not answer: {exc}") from exc
        return await exchange.finish(service, answer)

    deltas = llm.text_stream(step="chat", owner_id=body.owner_id, messages=exchange.messages)
    try:  # a model that fails before its first token is a 502, as without streaming
        first = await anext(deltas)
    except StopAsyncIteration:
        first = ""
    except LLMError as exc:
        raise HTTPException(502, f"the model did not answer: {exc}") from exc
    events = _events(exchange, service, llm.model, first, deltas)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def _events(
    exchange: _Exchange, service: Service, model: str, first: str, rest: AsyncIterator[str]
) -> AsyncIterator[bytes]:
    """OpenAI-style chunks: the role with the first delta, then deltas, then a last chunk
    with ``finish_reason`` and memstream's extras. An error mid-answer is an ``error``
    chunk; nothing of that exchange goes on the log (as when the model fails outright)."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }

    parts = [first]
    yield _sse(chunk({"role": "assistant", "content": first}))
    try:
        async for delta in rest:
            parts.append(delta)
            yield _sse(chunk({"content": delta}))
    except LLMError as exc:
        yield _sse(
            {"error": {"message": f"the model stopped answering: {exc}", "type": exc.reason}}
        )
        yield _sse("[DONE]")
        return
    done = await exchange.finish(service, "".join(parts))
    last = chunk({}, "stop")
    last["memstream"] = done.model_dump(mode="json", exclude={"answer"})
    yield _sse(last)
    yield _sse("[DONE]")
