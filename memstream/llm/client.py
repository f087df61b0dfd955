"""The managed LLM client every step uses: cache, bounded retries with backoff, a concurrency
limit, one re-ask on output that does not parse, and accounting per step and per owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from memstream.llm.accounting import LLMUsage
from memstream.llm.base import (
    Completion,
    GenerationBackend,
    GenerationRequest,
    LLMError,
    LLMOutputError,
    LLMTransientError,
    LLMUnavailable,
    Message,
)
from memstream.llm.cache import ResponseCache, cache_key

log = logging.getLogger(__name__)

T = TypeVar("T")


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a reply; tolerates a Markdown fence around it. Pure."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("no JSON object in the reply") from None
        value = json.loads(body[start : end + 1])
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


class LLMClient:
    def __init__(
        self,
        backend: GenerationBackend,
        *,
        cache: ResponseCache | None = None,
        max_retries: int = 3,
        backoff_seconds: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        usage: LLMUsage | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.usage = usage or LLMUsage()
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._limit = asyncio.Semaphore(concurrency)
        self._temperature = temperature
        self._max_tokens = max_tokens

    @property
    def model(self) -> str:
        return self.backend.model

    async def structured(
        self,
        *,
        step: str,
        owner_id: str,
        messages: list[Message],
        schema_name: str,
        schema: dict[str, Any],
        parse: Callable[[dict[str, Any]], T],
        subject: str | None = None,
    ) -> T:
        """A validated structured answer. Output that does not parse is asked for once more
        (bypassing the cache); a second failure raises :class:`LLMOutputError`. ``subject``
        (``owner_id/user_id``) is whom the prompt is about: :meth:`forget` erases by it."""
        request = GenerationRequest(
            messages=messages,
            schema_name=schema_name,
            schema=schema,
            temperature=self._temperature,
            max_tokens=self._max_tokens,
        )
        key = cache_key(request.cache_material(self.model))
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    parsed = parse(parse_json_object(hit.text))
                except (ValueError, TypeError, KeyError):
                    log.warning("cached answer for %s no longer validates; asking again", step)
                else:
                    self.usage.record(step, owner_id, 0, 0, cached=True)
                    return parsed
        last_error: Exception | None = None
        for attempt in range(2):
            # The retry samples (seed and temperature differ): asking a deterministic model the
            # same question again would return the same unusable answer.
            attempt_request = request if attempt == 0 else _reseeded(request, attempt)
            completion = await self._generate(step, owner_id, attempt_request)
            try:
                parsed = parse(parse_json_object(completion.text))
            except (ValueError, TypeError, KeyError) as exc:
                self.usage.error(step, "output_invalid")
                last_error = exc
                log.warning("%s: unusable model output (attempt %d/2): %s", step, attempt + 1, exc)
                continue
            if self.cache is not None:
                self.cache.put(key, completion, subject)
            return parsed
        raise LLMOutputError(f"{step}: model output did not validate twice: {last_error}")

    async def forget(self, subject: str) -> int:
        """Erase the cached answers about ``subject`` (a forgotten user)."""
        if self.cache is None:
            return 0
        return await asyncio.to_thread(self.cache.forget, subject)

    async def text(self, *, step: str, owner_id: str, messages: list[Message]) -> str:
        """A free-text answer (chat): accounted, not cached (it depends on the moment)."""
        request = GenerationRequest(
            messages=messages, temperature=self._temperature, max_tokens=self._max_tokens
        )
        completion = await self._generate(step, owner_id, request)
        return completion.text

    async def text_stream(
        self, *, step: str, owner_id: str, messages: list[Message]
    ) -> AsyncIterator[str]:
        """A free-text answer as it is generated. Transient errors are retried until the
        first delta; after it, an error ends the stream (a retry would repeat the text)."""
        request = GenerationRequest(
            messages=messages, temperature=self._temperature, max_tokens=self._max_tokens
        )
        for attempt in range(self._max_retries + 1):
            started = False
            try:
                async with self._limit:
                    async for item in self.backend.stream(request):
                        if isinstance(item, Completion):
                            self.usage.record(
                                step, owner_id, item.prompt_tokens, item.completion_tokens, False
                            )
                            return
                        started = True
                        yield item
            except LLMTransientError as exc:
                if started:
                    self.usage.error(step, "transient")
                    raise LLMUnavailable(f"{step}: {exc} (mid-answer)") from exc
                await self._retry_after(step, exc, attempt)
                continue
            except LLMError:
                self.usage.error(step, "failed")
                raise
            raise LLMError(f"{step}: the backend's stream ended without its summary")

    async def _generate(self, step: str, owner_id: str, request: GenerationRequest) -> Completion:
        for attempt in range(self._max_retries + 1):
            try:
                async with self._limit:
                    completion = await self.backend.complete(request)
            except LLMTransientError as exc:
                await self._retry_after(step, exc, attempt)
                continue
            except LLMError:
                self.usage.error(step, "failed")
                raise
            self.usage.record(
                step, owner_id, completion.prompt_tokens, completion.completion_tokens, False
            )
            return completion
        raise AssertionError("unreachable")

    async def _retry_after(self, step: str, exc: LLMTransientError, attempt: int) -> None:
        """Count a transient failure; give up after the last attempt, else back off."""
        self.usage.error(step, "transient")
        if attempt == self._max_retries:
            raise LLMUnavailable(f"{step}: {exc} (after {self._max_retries + 1} attempts)") from exc
        delay = self._backoff * 2**attempt
        log.warning("%s: %s; retry %d in %.1fs", step, exc, attempt + 1, delay)
        await asyncio.sleep(delay)

    async def close(self) -> None:
        await self.backend.close()
        if self.cache is not None:
            self.cache.close()


def _reseeded(request: GenerationRequest, attempt: int) -> GenerationRequest:
    return GenerationRequest(
        messages=request.messages,
        schema_name=request.schema_name,
        schema=request.schema,
        temperature=max(request.temperature, 0.7),
        max_tokens=request.max_tokens,
        seed=request.seed + attempt,
    )
