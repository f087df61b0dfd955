"""LangGraph: the memory tools in a graph's ToolNode, as a ReAct agent's tool step runs
them (`create_react_agent(model, tools=memory_tools(memory))` uses the same node).

    python examples/agents/langgraph_tools.py
"""

from __future__ import annotations

import asyncio

from _env import API_KEY, OWNER, QUESTION, URL, USER
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from memstream.client import AsyncClient
from memstream.integrations.langgraph import memory_tools
from memstream.integrations.scope import UserMemory


async def main() -> None:
    async with AsyncClient(URL, api_key=API_KEY) as client:
        memory = UserMemory(client, OWNER, USER)
        graph = StateGraph(MessagesState)
        graph.add_node("tools", ToolNode(memory_tools(memory)))
        graph.add_edge(START, "tools")
        graph.add_edge("tools", END)
        call = {"name": "recall", "args": {"query": QUESTION, "top_k": 3}, "id": "call-1"}
        out = await graph.compile().ainvoke({"messages": [AIMessage("", tool_calls=[call])]})
        print(out["messages"][-1].content)


asyncio.run(main())
