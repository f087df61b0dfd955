"""DashScope (Qwen) generation through the ``dashscope`` SDK."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

from memstream.llm.base import (
    Completion,
    GenerationBackend,
    GenerationRequest,
    LLMError,
    LLMTransientError,
)


class DashScopeBackend(GenerationBackend):
    name = "dashscope"

    def __init__(
        self, model: str, *, api_key: str | None = None, base_url: str | None = None
    ) -> None:
        self.model = model
        self._api_key = api_key or os.environ.get("DASHSCOPE_API_KEY")
        if base_url:
            import dashscope

            dashscope.base_http_api_url = base_url

    async def complete(self, request: GenerationRequest) -> Completion:
        from dashscope import AioGeneration

        kwargs: dict[str, Any] = {}
        if request.schema is not None:
            # DashScope's structured output is JSON mode; the schema is in the prompt.
            kwargs["response_format"] = {"type": "json_object"}
        try:
            response: Any = await AioGeneration.call(
                model=self.model,
                messages=request.messages,  # type: ignore[arg-type]
                api_key=self._api_key,
                result_format="message",
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                **kwargs,
            )
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise LLMTransientError(f"{type(exc).__name__}: {exc}") from exc
        status = getattr(response, "status_code", None)
        if status != HTTPStatus.OK:
            detail = (
                f"HTTP {status} {getattr(response, 'code', '')}: {getattr(response, 'message', '')}"
            )
            if status is None or status == 429 or status >= 500:
                raise LLMTransientError(detail)
            raise LLMError(detail)
        choice = response.output.choices[0]
        usage = response.usage or {}
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            model=self.model,
        )

    async def close(self) -> None:
        import dashscope

        closer: Any = dashscope.close_shared_aio_session  # typed as sync; is a coroutine
        await closer()
