"""Generation: backends behind one interface, and the managed client the steps use."""

from __future__ import annotations

from memstream.config import LLMSettings
from memstream.llm.accounting import LLMUsage
from memstream.llm.base import (
    Completion,
    GenerationBackend,
    GenerationRequest,
    LLMError,
    LLMOutputError,
    LLMTransientError,
    LLMUnavailable,
)
from memstream.llm.cache import ResponseCache
from memstream.llm.client import LLMClient, parse_json_object


def load_llm(settings: LLMSettings, usage: LLMUsage | None = None) -> LLMClient | None:
    """The configured client, or None in LLM-free mode."""
    backend: GenerationBackend
    if settings.backend == "none":
        return None
    if settings.backend == "openai":
        from memstream.llm.openai_backend import OpenAIBackend

        backend = OpenAIBackend(
            settings.model,
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_seconds,
            json_schema_output=settings.json_schema_output,
        )
    elif settings.backend == "dashscope":
        from memstream.llm.dashscope_backend import DashScopeBackend

        backend = DashScopeBackend(
            settings.model, api_key=settings.api_key, base_url=settings.base_url
        )
    else:  # pragma: no cover - the settings model rejects anything else
        raise ValueError(f"unknown LLM backend {settings.backend!r}")
    cache = ResponseCache(settings.cache_path) if settings.cache_enabled else None
    return LLMClient(
        backend,
        cache=cache,
        max_retries=settings.max_retries,
        backoff_seconds=settings.backoff_seconds,
        concurrency=settings.concurrency,
        temperature=settings.temperature,
        max_tokens=settings.max_output_tokens,
        usage=usage,
    )


__all__ = [
    "Completion",
    "GenerationBackend",
    "GenerationRequest",
    "LLMClient",
    "LLMError",
    "LLMOutputError",
    "LLMTransientError",
    "LLMUnavailable",
    "LLMUsage",
    "ResponseCache",
    "load_llm",
    "parse_json_object",
]
