"""AutoGen AgentChat: memstream as an ``autogen_core.memory.Memory``.

    from autogen_agentchat.agents import AssistantAgent
    from memstream.integrations.autogen import MemstreamMemory

    memory = MemstreamMemory(url="http://127.0.0.1:8080", owner_id="my-app", user_id="u-42")
    agent = AssistantAgent("assistant", model_client=..., memory=[memory])

Before each model call the agent asks :meth:`update_context`, which recalls the memories
relevant to the latest user message and adds them as a system message. :meth:`add` with
plain content stores a fact as a hand-added memory; content whose metadata has ``role``
(``user`` / ``assistant``) is a conversation turn, consolidated like any other. Needs the
``autogen`` extra.
"""

from __future__ import annotations

from typing import Any, Self

from autogen_core import CancellationToken, Component
from autogen_core.memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage, UserMessage
from pydantic import BaseModel, SecretStr

from memstream.client import AsyncClient
from memstream.integrations.scope import UserMemory
from memstream.query.models import RetrieveResponse

HEADER = "What you remember about the user (most relevant first, with when it was said):"


class MemstreamMemoryConfig(BaseModel):
    """Serialisable configuration (``dump_component`` / ``load_component``)."""

    url: str = "http://127.0.0.1:8080"
    owner_id: str
    user_id: str
    api_key: SecretStr | None = None
    conversation_id: str | None = None
    speaker: str | None = None
    top_k: int = 5


class MemstreamMemory(Memory, Component[MemstreamMemoryConfig]):
    component_type = "memory"
    component_config_schema = MemstreamMemoryConfig
    component_provider_override = "memstream.integrations.autogen.MemstreamMemory"

    def __init__(
        self,
        *,
        owner_id: str,
        user_id: str,
        url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        conversation_id: str | None = None,
        speaker: str | None = None,
        top_k: int = 5,
        client: AsyncClient | None = None,
    ) -> None:
        self._config = MemstreamMemoryConfig(
            url=url,
            owner_id=owner_id,
            user_id=user_id,
            api_key=SecretStr(api_key) if api_key else None,
            conversation_id=conversation_id,
            speaker=speaker,
            top_k=top_k,
        )
        self._owns_client = client is None
        self._memory = UserMemory(
            client or AsyncClient(url, api_key=api_key),
            owner_id,
            user_id,
            conversation_id=conversation_id,
            speaker=speaker,
            top_k=top_k,
        )

    @property
    def user(self) -> UserMemory:
        return self._memory

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        messages = await model_context.get_messages()
        last = next((m for m in reversed(messages) if isinstance(m, UserMessage)), None)
        query = _text(last.content) if last is not None else ""
        if not query.strip():
            return UpdateContextResult(memories=MemoryQueryResult(results=[]))
        found = await self._memory.recall(query)
        if found.memories:
            await model_context.add_message(SystemMessage(content=f"{HEADER}\n{found.prompt}"))
        return UpdateContextResult(memories=_results(found))

    async def query(
        self,
        query: str | MemoryContent,
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """``top_k`` and ``at`` (a datetime) may be passed as keyword arguments."""
        text = query if isinstance(query, str) else _text(query.content)
        found = await self._memory.recall(text, top_k=kwargs.get("top_k"), at=kwargs.get("at"))
        return _results(found)

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        text = _text(content.content)
        role = (content.metadata or {}).get("role")
        if role is not None:
            await self._memory.remember_text(text, role=str(role))
        else:
            await self._memory.client.add_memory(self._memory.owner_id, self._memory.user_id, text)

    async def clear(self) -> None:
        """Expire every memory of the user (``user.forget()`` erases them for good)."""
        await self._memory.clear()

    async def close(self) -> None:
        if self._owns_client:
            await self._memory.client.aclose()

    def _to_config(self) -> MemstreamMemoryConfig:
        return self._config

    @classmethod
    def _from_config(cls, config: MemstreamMemoryConfig) -> Self:
        return cls(
            url=config.url,
            owner_id=config.owner_id,
            user_id=config.user_id,
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            conversation_id=config.conversation_id,
            speaker=config.speaker,
            top_k=config.top_k,
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(c for c in content if isinstance(c, str))
    return str(content)


def _results(found: RetrieveResponse) -> MemoryQueryResult:
    return MemoryQueryResult(
        results=[
            MemoryContent(
                content=m.content,
                mime_type=MemoryMimeType.TEXT,
                metadata={
                    "memory_id": m.memory_id,
                    "score": m.score,
                    "valid_from": m.valid_from.isoformat(),
                    "memory_type": m.memory_type.value,
                },
            )
            for m in found.memories
        ]
    )
