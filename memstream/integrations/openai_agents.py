"""OpenAI Agents SDK: memstream as function tools.

    from agents import Agent, Runner
    from memstream.client import AsyncClient
    from memstream.integrations.openai_agents import memory_tools
    from memstream.integrations.scope import UserMemory

    memory = UserMemory(AsyncClient("http://127.0.0.1:8080"), "my-app", "u-42")
    agent = Agent(name="assistant", instructions="...", tools=memory_tools(memory))
    result = await Runner.run(agent, "Where do I work now?")

``recall`` answers the service's prompt lines; ``remember`` puts the user's words on the
log. A service error reaches the model as the tool's error text (the SDK's default
failure handling). Needs the ``openai-agents`` extra.
"""

from __future__ import annotations

from agents import FunctionTool, function_tool

from memstream.integrations.scope import RECALL_DOC, REMEMBER_DOC, UserMemory, recall_text


def memory_tools(memory: UserMemory) -> list[FunctionTool]:
    async def recall(query: str, top_k: int = 5) -> str:
        return recall_text(await memory.recall(query, top_k=top_k))

    async def remember(content: str) -> str:
        await memory.remember_text(content)
        return "Saved."

    return [
        function_tool(recall, name_override="recall", description_override=RECALL_DOC),
        function_tool(remember, name_override="remember", description_override=REMEMBER_DOC),
    ]
