"""OpenAI Agents SDK: an agent with the memory tools, on any OpenAI-compatible model.

OPENAI_BASE_URL=http://127.0.0.1:8000/v1 MODEL=qwen python examples/agents/openai_agents_tools.py
"""

from __future__ import annotations

import asyncio

from _env import API_KEY, MODEL, MODEL_KEY, MODEL_URL, OWNER, QUESTION, URL, USER
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

from memstream.client import AsyncClient
from memstream.integrations.openai_agents import memory_tools
from memstream.integrations.scope import UserMemory


async def main() -> None:
    set_tracing_disabled(True)  # traces would go to OpenAI
    model = OpenAIChatCompletionsModel(
        model=MODEL, openai_client=AsyncOpenAI(base_url=MODEL_URL, api_key=MODEL_KEY)
    )
    async with AsyncClient(URL, api_key=API_KEY) as client:
        agent = Agent(
            name="assistant",
            instructions="Call recall before answering anything about the user.",
            tools=memory_tools(UserMemory(client, OWNER, USER)),
            model=model,
        )
        result = await Runner.run(agent, QUESTION)
        print(result.final_output)


asyncio.run(main())
