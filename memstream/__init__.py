"""memstream: long-term memory for LLM chatbots as an event-driven stream processor.

The public surface for applications::

    from memstream import Client, AsyncClient, ChatMessage, MemstreamError

(the client is imported on first use, so ``import memstream`` stays cheap for the worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from memstream.client import AsyncClient, Client, MemstreamError
    from memstream.schemas import ChatMessage

_LAZY = {
    "AsyncClient": "memstream.client",
    "Client": "memstream.client",
    "MemstreamError": "memstream.client",
    "ChatMessage": "memstream.schemas",
}

__all__ = ["AsyncClient", "ChatMessage", "Client", "MemstreamError", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memstream' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
