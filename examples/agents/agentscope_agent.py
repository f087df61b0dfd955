"""AgentScope 2.x: an agent with the memstream middleware, on any OpenAI-compatible model.
It recalls before it reasons and puts the exchange on the log after it replies.

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 MODEL=qwen python examples/agents/agentscope_agent.py
"""

from __future__ import annotations

import asyncio

from _env import API_KEY, MODEL, MODEL_KEY, MODEL_URL, OWNER, QUESTION, URL, USER
from agentscope.agent import Agent
from agentscope.credential import OpenAICredential
from agentscope.message import UserMsg
from agentscope.model import OpenAIChatModel

from memstream.client import AsyncClient
from memstream.integrations.agentscope import MemstreamMiddleware
from memstream.integrations.scope import UserMemory


async def main() -> None:
    model = OpenAIChatModel(
        credential=OpenAICredential(api_key=MODEL_KEY, base_url=MODEL_URL),
        model=MODEL,
        stream=False,
    )
    async with AsyncClient(URL, api_key=API_KEY) as client:
        memory = UserMemory(client, OWNER, USER, speaker="Alice")
        agent = Agent(
            "assistant", "You are helpful.", model, middlewares=[MemstreamMiddleware(memory)]
        )
        reply = await agent.reply(UserMsg("Alice", QUESTION))
        print(reply.get_text_content())


asyncio.run(main())
