"""LangGraph: memstream as tools for a ReAct agent (``create_react_agent``, ``ToolNode``).

    from langgraph.prebuilt import create_react_agent
    from memstream.client import AsyncClient
    from memstream.integrations.langgraph import memory_tools
    from memstream.integrations.scope import UserMemory

    memory = UserMemory(AsyncClient("http://127.0.0.1:8080"), "my-app", "u-42")
    agent = create_react_agent(model, tools=memory_tools(memory))

The tools are LangChain ``StructuredTool``s (async): ``recall`` answers the service's
prompt lines, ``remember`` puts the user's words on the log. A service error comes back
to the model as the tool's error text rather than ending the graph. Needs the
``langgraph`` extra.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from memstream.client import MemstreamError
from memstream.integrations.scope import RECALL_DOC, REMEMBER_DOC, UserMemory, recall_text


def memory_tools(memory: UserMemory) -> list[BaseTool]:
    async def recall(query: str, top_k: int = 5) -> str:
        try:
            return recall_text(await memory.recall(query, top_k=top_k))
        except MemstreamError as exc:
            raise ToolException(str(exc)) from exc

    async def remember(content: str) -> str:
        try:
            await memory.remember_text(content)
        except MemstreamError as exc:
            raise ToolException(str(exc)) from exc
        return "Saved."

    return [
        StructuredTool.from_function(
            coroutine=recall, name="recall", description=RECALL_DOC, handle_tool_error=True
        ),
        StructuredTool.from_function(
            coroutine=remember, name="remember", description=REMEMBER_DOC, handle_tool_error=True
        ),
    ]
