"""AgentScope 2.x: memstream as a long-term memory middleware.

    from agentscope.agent import Agent
    from memstream.client import AsyncClient
    from memstream.integrations.agentscope import MemstreamMiddleware
    from memstream.integrations.scope import UserMemory

    memory = UserMemory(AsyncClient("http://127.0.0.1:8080"), "my-app", "u-42")
    agent = Agent("assistant", "You are helpful.", model, middlewares=[MemstreamMiddleware(memory)])

Like AgentScope's own long-term memory middlewares in static control: before the agent
reasons, the memories relevant to the user's message are put into its context as a hint;
after it replies, the exchange (the user's turn, with the reply as context) goes on the
log, where the worker consolidates it like any other conversation. A memory service that
is down is logged and the agent answers without memories. Needs the ``agentscope`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from agentscope.event import ReplyStartEvent
from agentscope.message import AssistantMsg, HintBlock, Msg
from agentscope.middleware import MiddlewareBase

from memstream.client import MemstreamError
from memstream.integrations.scope import UserMemory
from memstream.schemas.messages import Role

log = logging.getLogger(__name__)

HEADER = "What you remember about the user (most relevant first, with when it was said):"


def user_text(inputs: Any) -> str | None:
    """The text of the user's messages among the reply's inputs (None for a resumption)."""
    msgs = inputs if isinstance(inputs, list) else [inputs]
    texts = [m.get_text_content() for m in msgs if isinstance(m, Msg) and m.role == "user"]
    joined = "\n".join(t for t in texts if t)
    return joined or None


class MemstreamMiddleware(MiddlewareBase):
    def __init__(self, memory: UserMemory, *, remember: bool = True) -> None:
        self.memory = memory
        self.remember = remember

    async def on_reply(
        self,
        agent: Any,
        input_kwargs: dict[str, Any],
        next_handler: Callable[..., AsyncGenerator[Any, None]],
    ) -> AsyncGenerator[Any, None]:
        query = user_text(input_kwargs.get("inputs"))
        prompt = ""
        if query:
            try:
                found = await self.memory.recall(query)
                prompt = found.prompt if found.memories else ""
            except MemstreamError as exc:
                log.warning("memstream recall failed, replying without memories: %s", exc)
        reply: Msg | None = None
        injected = False
        async for item in next_handler(**input_kwargs):
            if prompt and not injected and isinstance(item, ReplyStartEvent):
                hint = AssistantMsg(name="memory", content=[HintBlock(hint=f"{HEADER}\n{prompt}")])
                agent.state.context.append(hint)
                injected = True
            if isinstance(item, Msg) and item.role == "assistant":
                reply = item
            yield item
        if self.remember and query:
            answer = reply.get_text_content() if reply is not None else None
            turns = [self.memory.message(query)]
            if answer:
                turns.append(self.memory.message(answer, role=Role.assistant))
            try:
                await self.memory.remember(turns)
            except MemstreamError as exc:
                log.warning("memstream could not remember the exchange: %s", exc)
