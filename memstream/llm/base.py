"""Generation backends: one small interface, so OpenAI, DashScope or a local server swap freely."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

#: A chat message as every OpenAI-compatible API takes it.
Message = dict[str, str]


@dataclass(frozen=True)
class GenerationRequest:
    """One call. ``schema`` asks for structured (JSON-schema) output under ``schema_name``."""

    messages: list[Message]
    schema_name: str | None = None
    schema: dict[str, Any] | None = None
    temperature: float = 0.0
    max_tokens: int = 2048
    seed: int = 7

    def cache_material(self, model: str) -> dict[str, Any]:
        """Everything that determines the answer: the response cache key is its hash."""
        return {
            "model": model,
            "messages": self.messages,
            "schema_name": self.schema_name,
            "schema": self.schema,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class LLMError(Exception):
    """A generation step failed for good; ``reason`` is the dead-letter reason code."""

    reason = "llm_error"


class LLMTransientError(LLMError):
    """429, 5xx, timeouts, connection errors: worth retrying with backoff."""

    reason = "llm_unavailable"


class LLMUnavailable(LLMError):
    """Transient errors persisted through every retry."""

    reason = "llm_unavailable"


class LLMOutputError(LLMError):
    """The model's output did not parse or validate, also on the retry."""

    reason = "llm_output_invalid"


class GenerationBackend(ABC):
    """Sends one request. Raises :class:`LLMTransientError` for what a retry may fix."""

    name: str
    model: str

    @abstractmethod
    async def complete(self, request: GenerationRequest) -> Completion: ...

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | Completion]:
        """The answer as text deltas, then one :class:`Completion` (the whole text and its
        token counts). A backend that cannot stream answers in one delta."""
        completion = await self.complete(request)
        yield completion.text
        yield completion

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
