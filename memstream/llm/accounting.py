"""LLM spend as a first-class metric: calls and tokens per step and per owner, cached or not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LLMUsage:
    calls: Counter[str] = field(default_factory=Counter)
    cached: Counter[str] = field(default_factory=Counter)
    prompt_tokens: Counter[str] = field(default_factory=Counter)
    completion_tokens: Counter[str] = field(default_factory=Counter)
    calls_by_owner: Counter[str] = field(default_factory=Counter)
    tokens_by_owner: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(
        self, step: str, owner_id: str, prompt_tokens: int, completion_tokens: int, cached: bool
    ) -> None:
        """A cache hit costs nothing: it is counted apart from model calls."""
        if cached:
            self.cached[step] += 1
            return
        self.calls[step] += 1
        self.prompt_tokens[step] += prompt_tokens
        self.completion_tokens[step] += completion_tokens
        self.calls_by_owner[owner_id] += 1
        self.tokens_by_owner[owner_id] += prompt_tokens + completion_tokens

    def error(self, step: str, kind: str) -> None:
        self.errors[f"{step}:{kind}"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": sum(self.calls.values()),
            "cached": sum(self.cached.values()),
            "prompt_tokens": sum(self.prompt_tokens.values()),
            "completion_tokens": sum(self.completion_tokens.values()),
            "calls_by_step": dict(self.calls),
            "cached_by_step": dict(self.cached),
            "tokens_by_step": {
                step: self.prompt_tokens[step] + self.completion_tokens[step] for step in self.calls
            },
            "calls_by_owner": dict(self.calls_by_owner),
            "tokens_by_owner": dict(self.tokens_by_owner),
            "errors": dict(self.errors),
        }
