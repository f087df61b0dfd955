"""Recall through `memstream mcp` with the MCP SDK's own client (no model needed).

python examples/agents/mcp_client.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from _env import OWNER, QUESTION, URL, USER
from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main() -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memstream", "mcp", "--url", URL, "--owner", OWNER, "--user", USER],
        env=dict(os.environ),  # MEMSTREAM_API_KEY, when the service has keys
    )
    async with Client(server) as mcp:
        found = await mcp.call_tool("recall", {"query": QUESTION, "top_k": 3})
        print(found.structured_content["prompt"])


asyncio.run(main())
