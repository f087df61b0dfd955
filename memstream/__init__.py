"""memstream: long-term memory for LLM chatbots as an event-driven stream processor."""

__version__ = "0.1.0"
