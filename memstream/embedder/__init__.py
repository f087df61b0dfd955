"""Embedding backends. Loaded once per process through :func:`load_embedder`."""

from __future__ import annotations

from memstream.config import EmbedderSettings
from memstream.embedder.base import Embedder, Matrix


def load_embedder(settings: EmbedderSettings) -> Embedder:
    """The configured dense embedder, with its sparse encoder attached (``embedder.sparse``)."""
    embedder = _dense(settings)
    if settings.sparse == "splade-tiny":
        from memstream.embedder.splade import SpladeEncoder

        embedder.sparse = SpladeEncoder(max_tokens=settings.max_tokens)
    return embedder


def _dense(settings: EmbedderSettings) -> Embedder:
    if settings.backend == "e5-small":
        from memstream.embedder.e5 import E5Embedder

        return E5Embedder(batch_size=settings.batch_size)
    if settings.backend == "onnx-minilm":
        from memstream.embedder.onnx_minilm import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(batch_size=settings.batch_size, max_tokens=settings.max_tokens)
    if settings.dimensions is None:
        raise ValueError(f"embedder backend {settings.backend!r} needs embedder.dimensions")
    if settings.backend == "openai":
        from memstream.embedder.api import OpenAIEmbedder

        return OpenAIEmbedder(
            settings.model or "text-embedding-3-small",
            settings.dimensions,
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_seconds,
            batch_size=settings.batch_size,
        )
    if settings.backend == "dashscope":
        from memstream.embedder.api import DashScopeEmbedder

        return DashScopeEmbedder(
            settings.model or "text-embedding-v3", settings.dimensions, api_key=settings.api_key
        )
    raise ValueError(f"unknown embedder backend {settings.backend!r}")


__all__ = ["Embedder", "Matrix", "load_embedder"]
