"""Embedding backends. Loaded once per process through :func:`load_embedder`."""

from __future__ import annotations

from memstream.config import EmbedderSettings
from memstream.embedder.base import Embedder, Matrix


def load_embedder(settings: EmbedderSettings) -> Embedder:
    if settings.backend == "onnx-minilm":
        from memstream.embedder.onnx_minilm import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(batch_size=settings.batch_size, max_tokens=settings.max_tokens)
    raise ValueError(f"unknown embedder backend {settings.backend!r}")


__all__ = ["Embedder", "Matrix", "load_embedder"]
