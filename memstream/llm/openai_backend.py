"""OpenAI chat completions: OpenAI itself or any compatible server (vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import openai

from memstream.llm.base import (
    Completion,
    GenerationBackend,
    GenerationRequest,
    LLMError,
    LLMTransientError,
)


class OpenAIBackend(GenerationBackend):
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        json_schema_output: bool = True,
    ) -> None:
        self.model = model
        self._json_schema = json_schema_output
        # Retries are ours (bounded, counted, with backoff): the SDK's own are switched off.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=timeout,
            max_retries=0,
        )

    async def complete(self, request: GenerationRequest) -> Completion:
        kwargs: dict[str, Any] = {}
        if request.schema is not None:
            if self._json_schema:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": request.schema_name or "output",
                        "schema": request.schema,
                    },
                }
            else:
                kwargs["response_format"] = {"type": "json_object"}
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                **kwargs,
            )
        except openai.OpenAIError as exc:
            raise _translated(exc) from exc
        if not response.choices:
            raise LLMTransientError("response without choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return Completion(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            model=response.model or self.model,
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | Completion]:
        parts: list[str] = []
        prompt_tokens = completion_tokens = 0
        model, finished = self.model, False
        try:
            chunks = await self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model,
                messages=request.messages,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    finished = finished or choice.finish_reason is not None
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield choice.delta.content
        except openai.OpenAIError as exc:
            raise _translated(exc) from exc
        if not finished:  # a connection closed mid-answer reads as a clean end of the body
            raise LLMTransientError("the answer's stream ended before its finish_reason")
        yield Completion("".join(parts), prompt_tokens, completion_tokens, model)

    async def close(self) -> None:
        await self._client.close()


def _translated(exc: openai.OpenAIError) -> LLMError:
    """What a retry may fix (429, 5xx, timeouts, connections) is transient."""
    if isinstance(
        exc,
        openai.RateLimitError
        | openai.APITimeoutError
        | openai.APIConnectionError
        | openai.InternalServerError,
    ):
        return LLMTransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            return LLMTransientError(f"HTTP {exc.status_code}: {exc}")
        return LLMError(f"HTTP {exc.status_code}: {exc}")
    return LLMError(f"{type(exc).__name__}: {exc}")
