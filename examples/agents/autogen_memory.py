"""AutoGen: what an AssistantAgent with `memory=[MemstreamMemory(...)]` does before each
model call, shown without a model: the relevant memories join the model context.

    python examples/agents/autogen_memory.py
"""

from __future__ import annotations

import asyncio

from _env import API_KEY, OWNER, QUESTION, URL, USER
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import UserMessage

from memstream.integrations.autogen import MemstreamMemory


async def main() -> None:
    memory = MemstreamMemory(url=URL, api_key=API_KEY, owner_id=OWNER, user_id=USER, top_k=3)
    context = BufferedChatCompletionContext(buffer_size=20)
    await context.add_message(UserMessage(content=QUESTION, source="user"))
    await memory.update_context(context)
    for message in await context.get_messages():
        print(f"{type(message).__name__}: {message.content}")
    await memory.close()


asyncio.run(main())
