"""Each model step defined once: its prompt file, its response model, and what is derived from
that model — the JSON schema sent for structured output and the shape the prompt shows.

A step's output shape lives in one place, the pydantic model: bounds (``max_length``,
``ge``/``le``, enums) are written there and reach the schema, the parser and the prompt
alike. Per call, array fields can be bounded further by the size of the input, so a looping
model's answer stays finite on grammar-constrained servers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator

from memstream.llm.base import Message
from memstream.prompts import load_prompt

R = TypeVar("R", bound=BaseModel)

#: Keys of pydantic's JSON schema that say nothing to a model or a grammar.
_DROPPED = frozenset({"title", "default", "description"})


@dataclass(frozen=True)
class Step(Generic[R]):
    """One structured model call: ``prompts/<language>/<name>.toml`` answered by ``model``."""

    name: str
    schema_name: str
    model: type[R]

    def schema(self, **max_items: int) -> dict[str, Any]:
        """The model's JSON schema, inlined, every property required; ``max_items`` narrows
        the named array fields (``facts=4``) below the model's own bound."""
        raw = self.model.model_json_schema(mode="validation")
        cleaned: dict[str, Any] = _clean(raw, raw.get("$defs", {}), max_items)
        return cleaned

    def parse(self, data: dict[str, Any]) -> R:
        """Validate the model's JSON; raises ``ValueError`` (pydantic's) when it does not fit."""
        return self.model.model_validate(data)

    def shape(self) -> str:
        """The answer's shape for the prompt, as types, not values: a model cannot copy an
        example value it is never shown."""
        return _shape(self.schema())

    def render(self, language: str, *, name: str, payload: str) -> list[Message]:
        return load_prompt(self.name, language).render(name=name, input=payload, shape=self.shape())


def at_most(n: int) -> BeforeValidator:
    """Keep the first ``n`` items of a list the model made longer: what is past the bound is
    the least of it (keywords, cited ids), and dropping it beats asking again."""
    return BeforeValidator(lambda v: v[:n] if isinstance(v, list) else v)


def _clean(node: Any, defs: dict[str, Any], max_items: dict[str, int]) -> Any:
    if isinstance(node, list):
        return [_clean(n, defs, max_items) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _clean(defs[node["$ref"].rsplit("/", 1)[-1]], defs, max_items)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "$defs":
            continue
        if key == "properties":
            out[key] = {}
            for prop, sub in value.items():
                cleaned = _clean(sub, defs, max_items)
                if prop in max_items and cleaned.get("type") == "array":
                    bound = max(0, max_items[prop])
                    cleaned["maxItems"] = min(bound, cleaned.get("maxItems", bound))
                out[key][prop] = cleaned
            out["required"] = list(value)
        elif key != "required":
            out[key] = _clean(value, defs, max_items)
    return out


def _shape(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if "enum" in node:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
    if kind == "object":
        fields = ", ".join(
            f"{json.dumps(k)}: {_shape(v)}" for k, v in node.get("properties", {}).items()
        )
        return "{" + fields + "}"
    if kind == "array":
        return "[" + _shape(node.get("items", {})) + "]"
    if kind == "string":
        low, high = node.get("minLength"), node.get("maxLength")
        return f"string ({low or 0}-{high} chars)" if high is not None else "string"
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        return f"integer {low}-{high}" if low is not None and high is not None else "integer"
    return str(kind or "any")
