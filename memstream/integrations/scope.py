"""One user's memory as agents use it: remember a turn, recall for a query, list, forget.

Every integration (the MCP server, AutoGen, AgentScope, LangGraph, the OpenAI Agents SDK)
is a thin shape over this, so each behaves the same: turns go to the log through
``POST /v1/messages`` (the worker windows and consolidates them like Kafka traffic),
recall is the service's time-aware hybrid retrieval, and nothing here touches a store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memstream.client import AsyncClient, MemstreamError
from memstream.query.models import (
    Accepted,
    AddMessagesResponse,
    MemoryPage,
    MessageVerdict,
    RetrieveResponse,
)
from memstream.schemas import ChatMessage
from memstream.schemas.messages import Role

#: What the agent-facing tools say about themselves (the MCP server, LangGraph, OpenAI
#: Agents): one wording, so every framework's model sees the same contract.
RECALL_DOC = (
    "Search the user's long-term memory: facts, preferences, plans and events they told you "
    "before, best match first, each with when it was said. Use it before answering anything "
    "that may depend on the user's past ('where do I work?', 'what did I do last weekend?')."
)
REMEMBER_DOC = (
    "Save something the user said to their long-term memory, in their words. It becomes "
    "searchable when the conversation window closes, not at once."
)
NOTHING_FOUND = "No memories found for that."


def recall_text(found: RetrieveResponse) -> str:
    """Recall as a model reads it: the service's prompt lines, or a plain "nothing"."""
    return found.prompt if found.memories else NOTHING_FOUND


class NotRemembered(MemstreamError):
    """The service refused turns (each verdict carries the DLQ reason code)."""

    def __init__(self, verdicts: Sequence[MessageVerdict]) -> None:
        text = "; ".join(f"{v.message_id}: {v.reason} ({v.detail})" for v in verdicts)
        super().__init__(f"not remembered: {text}", detail=[v.model_dump() for v in verdicts])
        self.verdicts = list(verdicts)


def turn_id(
    owner_id: str, user_id: str, conversation_id: str | None, role: str, content: str, at: datetime
) -> str:
    """A turn's ``message_id``, derived from what it is: the same turn re-sent (a retried
    tool call, an agent framework replaying its history) is the same message, deduplicated
    by the worker, instead of a second memory."""
    raw = "\x1f".join((owner_id, user_id, conversation_id or "", role, content, at.isoformat()))
    return "t-" + hashlib.blake2b(raw.encode("utf-8"), digest_size=12).hexdigest()


@dataclass
class UserMemory:
    """``client`` bound to one owner and user (and optionally a conversation and the name
    the user goes by, which the consolidation prompt and name-aware search use)."""

    client: AsyncClient
    owner_id: str
    user_id: str
    conversation_id: str | None = None
    speaker: str | None = None
    top_k: int = 5
    #: Turns already put on the log by this object (framework histories repeat them).
    _sent: set[str] = field(default_factory=set, repr=False)

    def message(
        self,
        content: str,
        *,
        role: Role | str = Role.user,
        sent_at: datetime | None = None,
        context: str | None = None,
    ) -> ChatMessage:
        at = (sent_at or datetime.now(UTC)).astimezone()
        role = Role(role)
        return ChatMessage(
            message_id=turn_id(
                self.owner_id, self.user_id, self.conversation_id, role.value, content, at
            ),
            owner_id=self.owner_id,
            user_id=self.user_id,
            role=role,
            speaker=self.speaker if role is Role.user else None,
            content=content,
            sent_at=at,
            context=context,
            conversation_id=self.conversation_id,
        )

    async def remember(self, messages: Sequence[ChatMessage]) -> AddMessagesResponse:
        """Put turns on the log; a refused one raises with the codec's reason (an agent
        must not believe something was remembered when it was not)."""
        fresh = [m for m in messages if m.message_id not in self._sent]
        if not fresh:
            return AddMessagesResponse(accepted=0, rejected=0, results=[])
        sent = await self.client.add_messages(fresh)
        self._sent.update(
            v.message_id for v in sent.results if v.status != "rejected" and v.message_id
        )
        refused = [v for v in sent.results if v.status == "rejected"]
        if refused:  # the valid ones of the batch did go
            raise NotRemembered(refused)
        return sent

    async def remember_text(
        self, content: str, *, role: Role | str = Role.user, sent_at: datetime | None = None
    ) -> AddMessagesResponse:
        return await self.remember([self.message(content, role=role, sent_at=sent_at)])

    async def recall(
        self, query: str, *, top_k: int | None = None, at: datetime | None = None
    ) -> RetrieveResponse:
        return await self.client.retrieve(
            self.owner_id, self.user_id, query, top_k=top_k or self.top_k, at=at
        )

    async def memories(self, *, limit: int = 50, offset: int = 0) -> MemoryPage:
        return await self.client.list(self.owner_id, self.user_id, limit=limit, offset=offset)

    async def delete(self, memory_id: str) -> Accepted:
        return await self.client.delete(self.owner_id, self.user_id, memory_id)

    async def clear(self) -> Accepted:
        """Expire every memory of the user (the log keeps the history)."""
        return await self.client.delete_all(self.owner_id, self.user_id)

    async def forget(self) -> Accepted:
        """Erase the user: memories, open windows and cached model answers, through the log."""
        self._sent.clear()
        return await self.client.forget(self.owner_id, self.user_id)
