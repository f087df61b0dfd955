"""``memstream mcp``: the memory as Model Context Protocol tools, on the official SDK.

A client of the query service (it never opens a store): any MCP host (Claude Desktop, an
IDE, an agent framework) gets ``remember``, ``recall``, ``list_memories`` and ``forget``.
stdio for a host that starts it; streamable HTTP for a shared one. The user is fixed by
configuration (``--user``) or named in each call; with streamable HTTP the caller's
``X-API-Key`` / ``Authorization: Bearer`` is passed through to the service, so one MCP
server serves many tenants with the service's own per-owner access rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from memstream import __version__
from memstream.client import AsyncClient, MemstreamError
from memstream.integrations.scope import UserMemory

INSTRUCTIONS = (
    "Long-term memory of the user. Call `recall` before answering anything that may depend "
    "on what the user said before (facts, preferences, plans, time: 'last weekend' resolves "
    "against `at`). Call `remember` with each user turn worth keeping; it becomes a memory "
    "when its conversation window closes, not at once."
)


class Recalled(BaseModel):
    """What ``recall`` answers: the prompt lines and the memories behind them."""

    prompt: str = Field(description="One line per memory, `[time] content`, for a prompt.")
    memories: list[RecalledMemory]


class RecalledMemory(BaseModel):
    memory_id: str
    content: str
    valid_from: datetime
    memory_type: str
    score: float | None = Field(None, description="Recall's fused score.")


class Listed(BaseModel):
    total: int
    memories: list[RecalledMemory]


Recalled.model_rebuild()


@dataclass
class Scoping:
    """Where the tools point. ``user_id`` set: every call is about that user (a call naming
    another is refused); unset: each call names its user."""

    url: str
    owner_id: str
    user_id: str | None = None
    api_key: str | None = None
    speaker: str | None = None
    timeout: float = 30.0
    _clients: dict[str | None, AsyncClient] = field(default_factory=dict, repr=False)

    def user(self, asked: str | None) -> str:
        if self.user_id is not None:
            if asked not in (None, self.user_id):
                raise ToolError(f"this memory server is scoped to user {self.user_id!r}")
            return self.user_id
        if not asked:
            raise ToolError("user_id is required (the server has no --user)")
        return asked

    def client(self, ctx: Context | None) -> AsyncClient:
        key = _caller_key(ctx) or self.api_key
        if key not in self._clients:
            self._clients[key] = AsyncClient(self.url, api_key=key, timeout=self.timeout)
        return self._clients[key]

    def memory(self, ctx: Context | None, user_id: str | None) -> UserMemory:
        return UserMemory(self.client(ctx), self.owner_id, self.user(user_id), speaker=self.speaker)

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()


def _caller_key(ctx: Context | None) -> str | None:
    """The API key of an HTTP caller (none on stdio, where the configured key applies)."""
    try:
        headers = ctx.headers if ctx is not None else None
    except ValueError:  # outside a request
        return None
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("x-api-key"):
        return lowered["x-api-key"]
    auth = lowered.get("authorization", "")
    return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None


def _memory(m: Any) -> RecalledMemory:
    return RecalledMemory(
        memory_id=m.memory_id,
        content=m.content,
        valid_from=m.valid_from,
        memory_type=str(m.memory_type.value),
        score=getattr(m, "score", None),
    )


UserArg = Annotated[
    str | None, Field(description="Whose memory (omit when the server is scoped to one user).")
]


def build_server(scoping: Scoping) -> MCPServer[Any]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await scoping.aclose()

    server: MCPServer[Any] = MCPServer(
        "memstream",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
    )

    async def call(coro: Any) -> Any:
        try:
            return await coro
        except MemstreamError as exc:  # the service's words, for the model to read
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=ToolAnnotations(idempotentHint=True))
    async def remember(
        content: Annotated[str, Field(description="The turn, as said.", min_length=1)],
        ctx: Context,
        role: Annotated[
            Literal["user", "assistant"],
            Field(
                description="Who said it: only user turns become memories; "
                "assistant turns give them context."
            ),
        ] = "user",
        sent_at: Annotated[
            datetime | None, Field(description="When it was said (RFC 3339); default now.")
        ] = None,
        user_id: UserArg = None,
    ) -> str:
        """Put a conversation turn on the user's memory log. It becomes searchable when its
        conversation window closes (seconds without a model, the idle gap with one)."""
        memory = scoping.memory(ctx, user_id)
        message = memory.message(content, role=role, sent_at=sent_at)
        await call(memory.remember([message]))
        return f"remembered as {message.message_id}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def recall(
        query: Annotated[
            str, Field(description="What to look for, in any language.", min_length=1)
        ],
        ctx: Context,
        top_k: Annotated[int, Field(ge=1, le=50)] = 5,
        at: Annotated[
            datetime | None,
            Field(description="When the question is asked (time words resolve against it)."),
        ] = None,
        user_id: UserArg = None,
    ) -> Recalled:
        """The user's memories relevant to ``query``, best first, time-aware."""
        found = await call(scoping.memory(ctx, user_id).recall(query, top_k=top_k, at=at))
        return Recalled(prompt=found.prompt, memories=[_memory(m) for m in found.memories])

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def list_memories(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
        user_id: UserArg = None,
    ) -> Listed:
        """The user's current memories, newest first."""
        page = await call(scoping.memory(ctx, user_id).memories(limit=limit, offset=offset))
        return Listed(total=page.total, memories=[_memory(m) for m in page.memories])

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def forget(
        ctx: Context,
        memory_id: Annotated[
            str | None, Field(description="The memory to delete (from recall or list).")
        ] = None,
        everything: Annotated[
            bool, Field(description="Erase the user entirely; only when they ask for it.")
        ] = False,
        user_id: UserArg = None,
    ) -> str:
        """Delete one memory, or (``everything``) erase all the user's data for good."""
        memory = scoping.memory(ctx, user_id)
        if memory_id and everything:
            raise ToolError("give memory_id or everything, not both")
        if memory_id:
            await call(memory.delete(memory_id))
            return f"memory {memory_id} deleted"
        if everything:
            await call(memory.forget())
            return f"user {memory.user_id} erased"
        raise ToolError("give memory_id (one memory) or everything=true (the whole user)")

    return server
