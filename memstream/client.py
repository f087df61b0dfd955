"""A Python client for the memstream query service, sync and async, on httpx.

    from memstream.client import Client

    with Client("http://127.0.0.1:8080", api_key="k-…") as ms:
        ms.add_messages([{"message_id": "m1", "owner_id": "app", "user_id": "u1",
                          "role": "user", "content": "I just joined Meituan.",
                          "sent_at": "2024-07-10T09:30:00+08:00"}])
        found = ms.retrieve("app", "u1", "Where do I work?", top_k=5)
        print(found.prompt)

Results are the service's own pydantic models (``memstream.query.models``): one definition
of each shape. Errors are exceptions carrying the service's status and error text
(:class:`MemstreamError` and its subclasses). A 503 (the log or the model is unavailable)
and a connection that could not be made are retried with exponential backoff: every write
is idempotent (messages by ``message_id``, hand-added memories by ``request_id``, which
the client sets when the caller does not), so a retry never doubles anything.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel

from memstream.query.models import (
    Accepted,
    AddMessagesResponse,
    ChatResponse,
    Export,
    MemoryOut,
    MemoryPage,
    RetrieveResponse,
)
from memstream.schemas import ChatMessage
from memstream.schemas.memory import MemoryType, StoreStatus
from memstream.search.hybrid import RetrievalMode

T = TypeVar("T", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8080"


class MemstreamError(Exception):
    """Anything the client could not do. ``status_code`` is None when no answer came."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status_code = status_code
        self.error = message
        self.detail = detail


class ConnectionFailed(MemstreamError):
    """No answer from the service (refused, unreachable, timed out), after the retries."""


class APIError(MemstreamError):
    """The service answered with an error status."""


class InvalidRequest(APIError):
    """422/400: the request does not fit the API (``detail`` lists what)."""


class Unauthorized(APIError):
    """401: a missing or unknown API key."""


class Forbidden(APIError):
    """403: the key may not access this owner."""


class NotFound(APIError):
    """404: no such memory (or route)."""


class TooLarge(APIError):
    """413: the request body is over the service's limit."""


class Unavailable(APIError):
    """503: the message log or the model is unavailable (retried before it is raised)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: TooLarge,
    422: InvalidRequest,
    503: Unavailable,
}


def _error(response: httpx.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    message = str(body.get("error", response.reason_phrase)) if isinstance(body, dict) else ""
    detail = body.get("detail") if isinstance(body, dict) else body
    kind = _BY_STATUS.get(response.status_code, APIError)
    return kind(
        f"{response.status_code}: {message or response.reason_phrase}",
        status_code=response.status_code,
        detail=detail,
    )


@dataclass(frozen=True)
class _Request(Generic[T]):
    method: str
    path: str
    model: type[T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    #: Safe to send again after a 503 or a failed connection (every write here is).
    retry: bool = True


def _users(owner_id: str, user_id: str) -> str:
    return f"/v1/users/{owner_id}/{user_id}"


def _messages(messages: Iterable[ChatMessage | Mapping[str, Any]]) -> list[Any]:
    return [
        m.model_dump(mode="json", exclude_none=True) if isinstance(m, ChatMessage) else dict(m)
        for m in messages
    ]


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


class _Endpoints:
    """What each call sends and what it answers: written once for both clients."""

    def _add_messages(
        self, messages: Iterable[ChatMessage | Mapping[str, Any]]
    ) -> _Request[AddMessagesResponse]:
        body = {"messages": _messages(messages)}
        return _Request("POST", "/v1/messages", AddMessagesResponse, json=body)

    def _retrieve(
        self,
        owner_id: str,
        user_id: str,
        query: str,
        *,
        top_k: int | None,
        at: datetime | None,
        retrieval: RetrievalMode | str,
        include_expired: bool,
        rerank: bool | None,
    ) -> _Request[RetrieveResponse]:
        body = _drop_none(
            {
                "owner_id": owner_id,
                "user_id": user_id,
                "query": query,
                "top_k": top_k,
                "at": None if at is None else at.isoformat(),
                "retrieval": RetrievalMode(retrieval).value,
                "include_expired": include_expired,
                "rerank": rerank,
            }
        )
        return _Request("POST", "/v1/retrieve", RetrieveResponse, json=body)

    def _list(
        self,
        owner_id: str,
        user_id: str,
        *,
        limit: int,
        offset: int,
        memory_types: Sequence[MemoryType | str] | None,
        statuses: Sequence[StoreStatus | str] | None,
    ) -> _Request[MemoryPage]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if memory_types:
            params["memory_type"] = [MemoryType(t).value for t in memory_types]
        if statuses:
            params["status"] = [StoreStatus(s).value for s in statuses]
        path = f"{_users(owner_id, user_id)}/memories"
        return _Request("GET", path, MemoryPage, params=params)

    def _get(self, owner_id: str, user_id: str, memory_id: str) -> _Request[MemoryOut]:
        return _Request("GET", f"{_users(owner_id, user_id)}/memories/{memory_id}", MemoryOut)

    def _add_memory(
        self,
        owner_id: str,
        user_id: str,
        content: str,
        *,
        keywords: Sequence[str],
        valid_from: datetime | None,
        request_id: str | None,
    ) -> _Request[Accepted]:
        body = _drop_none(
            {
                "content": content,
                "keywords": list(keywords),
                "valid_from": None if valid_from is None else valid_from.isoformat(),
                # Set here when the caller does not: a retried add is the same add.
                "request_id": request_id or uuid.uuid4().hex,
            }
        )
        return _Request("POST", f"{_users(owner_id, user_id)}/memories", Accepted, json=body)

    def _delete(self, owner_id: str, user_id: str, memory_id: str) -> _Request[Accepted]:
        path = f"{_users(owner_id, user_id)}/memories/{memory_id}"
        return _Request("DELETE", path, Accepted)

    def _delete_all(self, owner_id: str, user_id: str) -> _Request[Accepted]:
        return _Request("DELETE", f"{_users(owner_id, user_id)}/memories", Accepted)

    def _forget(self, owner_id: str, user_id: str) -> _Request[Accepted]:
        return _Request("POST", f"{_users(owner_id, user_id)}/forget", Accepted)

    def _export(self, owner_id: str, user_id: str) -> _Request[Export]:
        return _Request("GET", f"{_users(owner_id, user_id)}/export", Export)

    def _chat(
        self,
        owner_id: str,
        user_id: str,
        message: str,
        *,
        history: Sequence[Mapping[str, str]],
        top_k: int | None,
        at: datetime | None,
        remember: bool,
        speaker: str | None,
        stream: bool = False,
    ) -> _Request[ChatResponse]:
        body = _drop_none(
            {
                "owner_id": owner_id,
                "user_id": user_id,
                "message": message,
                "history": [dict(t) for t in history],
                "top_k": top_k,
                "at": None if at is None else at.isoformat(),
                "remember": remember,
                "speaker": speaker,
                "stream": stream or None,
            }
        )
        # Not retried: a chat that reached the model may have put its turns on the log.
        return _Request("POST", "/v1/chat", ChatResponse, json=body, retry=False)


@dataclass
class _Options:
    base_url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    headers: dict[str, str] = field(default_factory=dict)

    def client_kwargs(self) -> dict[str, Any]:
        headers = {"user-agent": "memstream-client", **self.headers}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return {"base_url": self.base_url, "timeout": self.timeout, "headers": headers}

    def delay(self, attempt: int) -> float:
        return float(self.backoff * (2**attempt))


def _retryable(
    request: _Request[Any], exc: Exception | None, response: httpx.Response | None
) -> bool:
    if not request.retry:
        return isinstance(exc, httpx.ConnectError)  # never reached the service
    if exc is not None:
        return isinstance(exc, httpx.TransportError)
    return response is not None and response.status_code == 503


def _result(request: _Request[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        raise _error(response)
    return request.model.model_validate_json(response.content)


#: What :func:`sse_event` answers for the stream's end.
DONE: dict[str, Any] = {"done": True}


def sse_event(line: str) -> dict[str, Any] | None:
    """One line of a server-sent event stream: its ``data`` JSON, :data:`DONE` for
    ``[DONE]``, None for any other line (blank separators, comments, other fields)."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    return DONE if payload == "[DONE]" else dict(json.loads(payload))


def sse_data(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON of each ``data:`` line of a server-sent event stream, up to ``[DONE]``."""
    for line in lines:
        event = sse_event(line)
        if event is DONE:
            return
        if event is not None:
            yield event


def chunk_text(data: Mapping[str, Any]) -> str:
    """The text delta of one streamed chat chunk; an error chunk raises."""
    if "error" in data:
        error = data["error"]
        raise APIError(str(error.get("message", error)), status_code=502, detail=error)
    choices = data.get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


class Client(_Endpoints):
    """Blocking client. ``transport`` is httpx's (e.g. ``httpx.MockTransport`` or a WSGI one)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._options = _Options(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(transport=transport, **self._options.client_kwargs())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: _Request[T]) -> T:
        for attempt in range(self._options.retries + 1):
            try:
                response = self._http.request(
                    request.method, request.path, json=request.json, params=request.params
                )
            except httpx.TransportError as exc:
                if attempt < self._options.retries and _retryable(request, exc, None):
                    time.sleep(self._options.delay(attempt))
                    continue
                raise ConnectionFailed(f"no answer from {self._options.base_url}: {exc}") from exc
            if attempt < self._options.retries and _retryable(request, None, response):
                time.sleep(self._options.delay(attempt))
                continue
            return _result(request, response)
        raise AssertionError("unreachable")  # pragma: no cover

    def add_messages(
        self, messages: Iterable[ChatMessage | Mapping[str, Any]]
    ) -> AddMessagesResponse:
        """Put chat messages on the log (the HTTP door to ``memstream.messages``)."""
        return self._send(self._add_messages(messages))

    def retrieve(
        self,
        owner_id: str,
        user_id: str,
        query: str,
        *,
        top_k: int | None = None,
        at: datetime | None = None,
        retrieval: RetrievalMode | str = RetrievalMode.hybrid,
        include_expired: bool = False,
        rerank: bool | None = None,
    ) -> RetrieveResponse:
        """Time-aware recall; ``at`` is when the query is asked (time words resolve to it)."""
        return self._send(
            self._retrieve(
                owner_id,
                user_id,
                query,
                top_k=top_k,
                at=at,
                retrieval=retrieval,
                include_expired=include_expired,
                rerank=rerank,
            )
        )

    search = retrieve

    def list(
        self,
        owner_id: str,
        user_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        memory_types: Sequence[MemoryType | str] | None = None,
        statuses: Sequence[StoreStatus | str] | None = None,
    ) -> MemoryPage:
        return self._send(
            self._list(
                owner_id,
                user_id,
                limit=limit,
                offset=offset,
                memory_types=memory_types,
                statuses=statuses,
            )
        )

    def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryOut:
        return self._send(self._get(owner_id, user_id, memory_id))

    def add_memory(
        self,
        owner_id: str,
        user_id: str,
        content: str,
        *,
        keywords: Sequence[str] = (),
        valid_from: datetime | None = None,
        request_id: str | None = None,
    ) -> Accepted:
        return self._send(
            self._add_memory(
                owner_id,
                user_id,
                content,
                keywords=keywords,
                valid_from=valid_from,
                request_id=request_id,
            )
        )

    def delete(self, owner_id: str, user_id: str, memory_id: str) -> Accepted:
        return self._send(self._delete(owner_id, user_id, memory_id))

    def delete_all(self, owner_id: str, user_id: str) -> Accepted:
        return self._send(self._delete_all(owner_id, user_id))

    def forget(self, owner_id: str, user_id: str) -> Accepted:
        """Erase the user: memories, open windows, cached model answers (through the log)."""
        return self._send(self._forget(owner_id, user_id))

    def export(self, owner_id: str, user_id: str) -> Export:
        return self._send(self._export(owner_id, user_id))

    def chat(
        self,
        owner_id: str,
        user_id: str,
        message: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        at: datetime | None = None,
        remember: bool = True,
        speaker: str | None = None,
    ) -> ChatResponse:
        return self._send(
            self._chat(
                owner_id,
                user_id,
                message,
                history=history,
                top_k=top_k,
                at=at,
                remember=remember,
                speaker=speaker,
            )
        )

    def chat_stream(
        self,
        owner_id: str,
        user_id: str,
        message: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        at: datetime | None = None,
        remember: bool = True,
        speaker: str | None = None,
    ) -> Iterator[str]:
        """:meth:`chat`'s answer as it is generated, a text delta at a time (not retried)."""
        request = self._chat(
            owner_id,
            user_id,
            message,
            history=history,
            top_k=top_k,
            at=at,
            remember=remember,
            speaker=speaker,
            stream=True,
        )
        try:
            with self._http.stream(request.method, request.path, json=request.json) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                for data in sse_data(response.iter_lines()):
                    if text := chunk_text(data):
                        yield text
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"no answer from {self._options.base_url}: {exc}") from exc


class AsyncClient(_Endpoints):
    """The same calls, awaitable."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._options = _Options(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._options.client_kwargs())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: _Request[T]) -> T:
        for attempt in range(self._options.retries + 1):
            try:
                response = await self._http.request(
                    request.method, request.path, json=request.json, params=request.params
                )
            except httpx.TransportError as exc:
                if attempt < self._options.retries and _retryable(request, exc, None):
                    await asyncio.sleep(self._options.delay(attempt))
                    continue
                raise ConnectionFailed(f"no answer from {self._options.base_url}: {exc}") from exc
            if attempt < self._options.retries and _retryable(request, None, response):
                await asyncio.sleep(self._options.delay(attempt))
                continue
            return _result(request, response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def add_messages(
        self, messages: Iterable[ChatMessage | Mapping[str, Any]]
    ) -> AddMessagesResponse:
        return await self._send(self._add_messages(messages))

    async def retrieve(
        self,
        owner_id: str,
        user_id: str,
        query: str,
        *,
        top_k: int | None = None,
        at: datetime | None = None,
        retrieval: RetrievalMode | str = RetrievalMode.hybrid,
        include_expired: bool = False,
        rerank: bool | None = None,
    ) -> RetrieveResponse:
        return await self._send(
            self._retrieve(
                owner_id,
                user_id,
                query,
                top_k=top_k,
                at=at,
                retrieval=retrieval,
                include_expired=include_expired,
                rerank=rerank,
            )
        )

    search = retrieve

    async def list(
        self,
        owner_id: str,
        user_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        memory_types: Sequence[MemoryType | str] | None = None,
        statuses: Sequence[StoreStatus | str] | None = None,
    ) -> MemoryPage:
        return await self._send(
            self._list(
                owner_id,
                user_id,
                limit=limit,
                offset=offset,
                memory_types=memory_types,
                statuses=statuses,
            )
        )

    async def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryOut:
        return await self._send(self._get(owner_id, user_id, memory_id))

    async def add_memory(
        self,
        owner_id: str,
        user_id: str,
        content: str,
        *,
        keywords: Sequence[str] = (),
        valid_from: datetime | None = None,
        request_id: str | None = None,
    ) -> Accepted:
        return await self._send(
            self._add_memory(
                owner_id,
                user_id,
                content,
                keywords=keywords,
                valid_from=valid_from,
                request_id=request_id,
            )
        )

    async def delete(self, owner_id: str, user_id: str, memory_id: str) -> Accepted:
        return await self._send(self._delete(owner_id, user_id, memory_id))

    async def delete_all(self, owner_id: str, user_id: str) -> Accepted:
        return await self._send(self._delete_all(owner_id, user_id))

    async def forget(self, owner_id: str, user_id: str) -> Accepted:
        return await self._send(self._forget(owner_id, user_id))

    async def export(self, owner_id: str, user_id: str) -> Export:
        return await self._send(self._export(owner_id, user_id))

    async def chat(
        self,
        owner_id: str,
        user_id: str,
        message: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        at: datetime | None = None,
        remember: bool = True,
        speaker: str | None = None,
    ) -> ChatResponse:
        return await self._send(
            self._chat(
                owner_id,
                user_id,
                message,
                history=history,
                top_k=top_k,
                at=at,
                remember=remember,
                speaker=speaker,
            )
        )

    async def chat_stream(
        self,
        owner_id: str,
        user_id: str,
        message: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        at: datetime | None = None,
        remember: bool = True,
        speaker: str | None = None,
    ) -> AsyncIterator[str]:
        """:meth:`chat`'s answer as it is generated, a text delta at a time (not retried)."""
        request = self._chat(
            owner_id,
            user_id,
            message,
            history=history,
            top_k=top_k,
            at=at,
            remember=remember,
            speaker=speaker,
            stream=True,
        )
        try:
            async with self._http.stream(
                request.method, request.path, json=request.json
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error(response)
                async for line in response.aiter_lines():
                    event = sse_event(line)
                    if event is DONE:
                        return
                    if event is not None and (text := chunk_text(event)):
                        yield text
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"no answer from {self._options.base_url}: {exc}") from exc


__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Forbidden",
    "InvalidRequest",
    "MemstreamError",
    "NotFound",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]
