"""Every door for agents against one running stack (broker, worker, query service with API
keys): a conversation goes in through ``POST /v1/messages`` with the Python client, and its
memories come back through the client, the MCP server (stdio and streamable HTTP, with the
SDK's own client) and each agent framework's own machinery, the OpenAI Agents SDK and
AgentScope driven by the scripted model server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from memstream import client as ms
from memstream.embedded import free_port, spawn, stop, wait_port
from memstream.integrations.scope import UserMemory
from memstream.schemas import ChatMessage
from tests.support.llm_server import ScriptedLLM
from tests.support.pipeline import read_topic
from tests.support.stack import Stack, wait_memories

pytestmark = pytest.mark.servers

OWNER, USER, KEY = "my-app", "u-42", "k-app-7f3a"
CONVERSATION = [
    {
        "message_id": "c1-1",
        "owner_id": OWNER,
        "user_id": USER,
        "role": "user",
        "speaker": "Alice",
        "content": "I just joined Meituan as a data engineer.",
        "sent_at": "2024-07-10T09:30:00+08:00",
        "conversation_id": "c1",
    },
    {
        "message_id": "c1-2",
        "owner_id": OWNER,
        "user_id": USER,
        "role": "user",
        "speaker": "Alice",
        "content": "My puppy Max chews on everything!",
        "sent_at": "2024-07-10T09:31:00+08:00",
        "conversation_id": "c1",
    },
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("integrations"), api_keys={KEY: [OWNER]})
    try:
        with ms.Client(s.url, api_key=KEY) as c:
            sent = c.add_messages(CONVERSATION)
            assert sent.accepted == 2, sent
            wait_memories(c, OWNER, USER, 2)
        yield s
    finally:
        s.close()


@pytest.fixture
def sync_client(stack: Stack) -> Iterator[ms.Client]:
    with ms.Client(stack.url, api_key=KEY) as c:
        yield c


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM().start()
    try:
        yield llm
    finally:
        llm.stop()


@asynccontextmanager
async def user_memory(stack: Stack, user: str = USER) -> AsyncIterator[UserMemory]:
    async with ms.AsyncClient(stack.url, api_key=KEY) as c:
        yield UserMemory(c, OWNER, user, speaker="Alice")


def test_the_client_recalls_what_went_in_over_http(sync_client: ms.Client) -> None:
    found = sync_client.retrieve(OWNER, USER, "Where do I work?", top_k=3)
    assert "Meituan" in found.memories[0].content
    with pytest.raises(ms.Unauthorized):
        ms.Client(sync_client._options.base_url).list(OWNER, USER)


def _text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_mcp_over_stdio_with_the_sdk_client(stack: Stack, sync_client: ms.Client) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memstream", "mcp", "--url", stack.url, "--owner", OWNER, "--user", USER],
        env={**os.environ, "MEMSTREAM_API_KEY": KEY},
    )
    async with Client(params) as mcp:
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert tools == {"remember", "recall", "list_memories", "forget"}

        found = await mcp.call_tool("recall", {"query": "Where do I work?", "top_k": 3})
        assert not found.is_error, _text(found)
        assert "Meituan" in found.structured_content["memories"][0]["content"]
        assert "Meituan" in found.structured_content["prompt"].splitlines()[0]

        other = await mcp.call_tool("recall", {"query": "work", "user_id": "someone-else"})
        assert other.is_error and "scoped to user 'u-42'" in _text(other)

        saved = await mcp.call_tool(
            "remember",
            {"content": "We moved to Shanghai last month.", "sent_at": "2024-07-11T10:00:00+08:00"},
        )
        assert not saved.is_error and "remembered as t-" in _text(saved)
        wait_memories(sync_client, OWNER, USER, 3)
        listed = await mcp.call_tool("list_memories", {"limit": 10})
        contents = [m["content"] for m in listed.structured_content["memories"]]
        assert "We moved to Shanghai last month." in contents

        unclear = await mcp.call_tool("forget", {})
        assert unclear.is_error and "memory_id" in _text(unclear)


async def test_mcp_over_http_passes_the_callers_key_through(stack: Stack) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    log = Path(stack.env["MEMSTREAM_DATA_DIR"]) / "mcp-http.log"
    env = {k: v for k, v in os.environ.items() if k != "MEMSTREAM_API_KEY"}
    proc = spawn(
        [sys.executable, "-m", "memstream", "mcp", "--transport", "http", "--port", str(port),
         "--url", stack.url, "--owner", OWNER],
        env,
        log,
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, timeout=60, proc=proc)
        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            httpx2.AsyncClient(headers={"X-API-Key": KEY}) as http,
            Client(streamable_http_client(url, http_client=http)) as mcp,
        ):
            found = await mcp.call_tool("recall", {"query": "my dog", "user_id": USER})
            assert not found.is_error, _text(found)
            assert "Max" in found.structured_content["memories"][0]["content"]
            nameless = await mcp.call_tool("recall", {"query": "my dog"})
            assert nameless.is_error and "user_id is required" in _text(nameless)
        async with Client(url) as anonymous:  # no key: the service's own 401 reaches the model
            refused = await anonymous.call_tool("recall", {"query": "my dog", "user_id": USER})
            assert refused.is_error and "API key" in _text(refused)
    finally:
        stop(proc)


async def test_autogen_memory_protocol(stack: Stack, sync_client: ms.Client) -> None:
    from autogen_core.memory import MemoryContent, MemoryMimeType
    from autogen_core.model_context import BufferedChatCompletionContext
    from autogen_core.models import SystemMessage, UserMessage

    from memstream.integrations.autogen import MemstreamMemory

    memory = MemstreamMemory(url=stack.url, owner_id=OWNER, user_id=USER, api_key=KEY, top_k=3)
    try:
        context = BufferedChatCompletionContext(
            buffer_size=10,
            initial_messages=[UserMessage(content="Where do I work?", source="user")],
        )
        updated = await memory.update_context(context)  # what AssistantAgent calls per turn
        system = [m for m in await context.get_messages() if isinstance(m, SystemMessage)]
        assert len(system) == 1 and "Meituan" in system[0].content.splitlines()[1]
        assert "Meituan" in str(updated.memories.results[0].content)
        assert updated.memories.results[0].metadata["memory_id"]

        puppy = await memory.query("What is my dog called?")
        assert "Max" in str(puppy.results[0].content)

        before = sync_client.list(OWNER, USER).total
        await memory.add(
            MemoryContent(content="Alice is vegetarian.", mime_type=MemoryMimeType.TEXT)
        )
        wait_memories(sync_client, OWNER, USER, before + 1)
        hand = sync_client.list(OWNER, USER, memory_types=["obs_customized"]).memories
        assert [m.content for m in hand] == ["Alice is vegetarian."]

        config = memory.dump_component()
        assert config.provider == "memstream.integrations.autogen.MemstreamMemory"
        assert config.config["owner_id"] == OWNER and KEY not in str(config.config)
    finally:
        await memory.close()


async def test_an_autogen_assistant_agent_answers_with_the_memory(
    stack: Stack, scripted: ScriptedLLM
) -> None:
    """AgentChat's own AssistantAgent and OpenAI client against the scripted model: the
    memory's system message reaches the model."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    from memstream.integrations.autogen import MemstreamMemory

    scripted.reset()
    info = {
        "vision": False,
        "function_calling": True,
        "json_output": False,
        "family": "unknown",
        "structured_output": False,
        "multiple_system_messages": True,
    }
    client = OpenAIChatCompletionClient(
        model="scripted", base_url=scripted.base_url, api_key="t", model_info=info
    )
    memory = MemstreamMemory(url=stack.url, owner_id=OWNER, user_id=USER, api_key=KEY, top_k=3)
    try:
        agent = AssistantAgent("assistant", model_client=client, memory=[memory])
        result = await agent.run(task="Where do I work?")
    finally:
        await memory.close()
        await client.close()
    assert result.messages[-1].content == "I remember."
    systems = [m["content"] for m in scripted.requests[-1]["messages"] if m["role"] == "system"]
    assert any("Meituan" in str(text) for text in systems), systems


async def test_a_langgraph_react_agent_calls_recall(stack: Stack, scripted: ScriptedLLM) -> None:
    """LangGraph's prebuilt ReAct agent with LangChain's OpenAI chat model (the scripted
    server asks for the recall tool, then answers with what it returned)."""
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    from memstream.integrations.langgraph import memory_tools

    async with user_memory(stack) as memory:
        model = ChatOpenAI(model="scripted", base_url=scripted.base_url, api_key="t")
        agent = create_react_agent(model, tools=memory_tools(memory))
        out = await agent.ainvoke({"messages": [("user", "Where do I work?")]})
    answer = out["messages"][-1].content
    assert answer.startswith("From memory: ") and "Meituan" in answer.splitlines()[0]


async def test_langgraph_tools_in_a_graph(stack: Stack) -> None:
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from memstream.integrations.langgraph import memory_tools

    async with user_memory(stack) as memory:
        graph = StateGraph(MessagesState)
        graph.add_node("tools", ToolNode(memory_tools(memory)))
        graph.add_edge(START, "tools")
        graph.add_edge("tools", END)
        call = {"name": "recall", "args": {"query": "Where do I work?"}, "id": "call-1"}
        out = await graph.compile().ainvoke(
            {"messages": [AIMessage(content="", tool_calls=[call])]}
        )
        answer = out["messages"][-1]
        assert isinstance(answer, ToolMessage) and "Meituan" in answer.content.splitlines()[0]

    async with user_memory(stack, user="nobody-yet") as empty:
        tools = {t.name: t for t in memory_tools(empty)}
        assert await tools["recall"].ainvoke({"query": "Where do I work?"}) == (
            "No memories found for that."
        )


async def test_openai_agents_runner_calls_the_recall_tool(
    stack: Stack, scripted: ScriptedLLM
) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from openai import AsyncOpenAI

    from memstream.integrations.openai_agents import memory_tools

    set_tracing_disabled(True)  # the SDK would export traces to OpenAI
    async with user_memory(stack) as memory:
        model = OpenAIChatCompletionsModel(
            model="scripted", openai_client=AsyncOpenAI(base_url=scripted.base_url, api_key="t")
        )
        agent = Agent(
            name="assistant",
            instructions="Recall before you answer.",
            tools=memory_tools(memory),
            model=model,
        )
        result = await Runner.run(agent, "Where do I work?")
    assert result.final_output.startswith("From memory: ")
    assert "Meituan" in result.final_output.splitlines()[0]


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"


@pytest.mark.parametrize(
    "example",
    [
        "mcp_client.py",
        "autogen_memory.py",
        "langgraph_tools.py",
        "openai_agents_tools.py",
        "agentscope_agent.py",
    ],
)
def test_the_examples_run_as_written(stack: Stack, scripted: ScriptedLLM, example: str) -> None:
    env = {
        **os.environ,
        "MEMSTREAM_URL": stack.url,
        "MEMSTREAM_API_KEY": KEY,
        "MEMSTREAM_OWNER": OWNER,
        "MEMSTREAM_USER": USER,
        "OPENAI_BASE_URL": scripted.base_url,
        "OPENAI_API_KEY": "t",
        "MODEL": "scripted",
        "QUESTION": "Where do I work?",
    }
    scripted.reset()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if example == "agentscope_agent.py":  # the scripted model answers "I remember."
        assert done.stdout.strip() == "I remember."
        sent = " ".join(str(m.get("content")) for m in scripted.requests[-1]["messages"])
        assert "Meituan" in sent
    else:
        assert "Meituan" in done.stdout, done.stdout


async def test_agentscope_middleware_recalls_and_remembers(
    stack: Stack, scripted: ScriptedLLM, sync_client: ms.Client
) -> None:
    from agentscope.agent import Agent
    from agentscope.credential import OpenAICredential
    from agentscope.message import UserMsg
    from agentscope.model import OpenAIChatModel

    from memstream.integrations.agentscope import MemstreamMiddleware

    scripted.reset()
    async with user_memory(stack) as memory:
        model = OpenAIChatModel(
            credential=OpenAICredential(api_key="t", base_url=scripted.base_url),
            model="scripted",
            stream=False,
        )
        agent = Agent(
            "assistant", "You are helpful.", model, middlewares=[MemstreamMiddleware(memory)]
        )
        before = sync_client.list(OWNER, USER).total
        reply = await agent.reply(UserMsg("Alice", "Which company do I work for?"))
    assert reply.get_text_content() == "I remember."
    sent = " ".join(str(m.get("content")) for m in scripted.requests[-1]["messages"])
    assert "Meituan" in sent, "the recalled memory reached the model"
    # The exchange went on the log: the user's turn, then the reply.
    values = await read_topic(
        stack.settings.kafka.bootstrap_servers,
        stack.settings.kafka.messages_topic,
        expect=10**6,
        timeout=5,
    )
    turns = [ChatMessage.model_validate_json(v) for v in values]
    mine = [t for t in turns if t.content in ("Which company do I work for?", "I remember.")]
    assert [(t.role, t.content) for t in mine][-2:] == [
        ("user", "Which company do I work for?"),
        ("assistant", "I remember."),
    ]
    # A question is not a memory: it would outrank the fact that answers it next time.
    time.sleep(3)
    assert sync_client.list(OWNER, USER).total == before
