"""A user's memories: list, get, add by hand, delete, delete all, forget (erasure), export.
Every change goes through the log; the worker applies it in order with the user's jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from memstream.query.models import Accepted, AddMemoryRequest, Export, MemoryOut, MemoryPage
from memstream.query.state import IdPath, MemoryIdPath, ServiceDep, path_owner
from memstream.schemas import DeleteMemoriesJob, ForgetJob, memory_id, user_key
from memstream.schemas.jobs import AddMemoryJob
from memstream.schemas.memory import MemoryNode, MemoryType, StoreStatus
from memstream.sinks import MemoryFilter

#: Memories read per store call when a route needs them all.
PAGE = 1000
#: Deepest page offset a list may ask for (a store's integers are 64-bit; no user has more).
MAX_OFFSET = 1_000_000_000

router = APIRouter(
    prefix="/v1/users/{owner_id}/{user_id}",
    tags=["memories"],
    dependencies=[Depends(path_owner)],
)


@router.get("/memories", response_model=MemoryPage)
async def list_memories(
    owner_id: IdPath,
    user_id: IdPath,
    service: ServiceDep,
    memory_type: Annotated[list[MemoryType] | None, Query()] = None,
    status: Annotated[list[StoreStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> MemoryPage:
    """A user's memories, newest message time first (valid ones unless `status` says)."""
    store, _, _ = service.ready()
    flt = MemoryFilter(
        types=tuple(memory_type) if memory_type else MemoryFilter().types,
        statuses=tuple(status) if status else MemoryFilter().statuses,
    )
    nodes = await store.list_memories(owner_id, user_id, flt, limit=limit, offset=offset)
    total = await store.count(owner_id, user_id, flt)
    return MemoryPage(
        memories=[MemoryOut.of(n) for n in nodes], total=total, limit=limit, offset=offset
    )


@router.get("/memories/{memory_id}", response_model=MemoryOut)
async def get_memory(
    owner_id: IdPath, user_id: IdPath, memory_id: MemoryIdPath, service: ServiceDep
) -> MemoryOut:
    """One memory, whatever its status."""
    store, _, _ = service.ready()
    node = await store.get(owner_id, user_id, memory_id)
    if node is None:
        raise HTTPException(404, "no such memory")
    return MemoryOut.of(node)


@router.post("/memories", response_model=Accepted, status_code=202)
async def add_memory(
    owner_id: IdPath, user_id: IdPath, body: AddMemoryRequest, service: ServiceDep
) -> Accepted:
    """Add a memory by hand (``obs_customized``). It goes through the log like every
    change; the worker writes it in order with the user's other jobs."""
    request_id = body.request_id or uuid.uuid4().hex
    mid = memory_id(owner_id, user_id, [f"add:{request_id}"], 0)
    job = AddMemoryJob(
        job_id=f"add-{request_id}",
        owner_id=owner_id,
        user_id=user_id,
        memory_id=mid,
        content=body.content,
        keywords=body.keywords,
        valid_from=body.valid_from,
    )
    await service.log_writer.send_job(job)
    return Accepted(job_id=job.job_id, memory_id=mid)


@router.delete("/memories/{memory_id}", response_model=Accepted, status_code=202)
async def delete_memory(
    owner_id: IdPath, user_id: IdPath, memory_id: MemoryIdPath, service: ServiceDep
) -> Accepted:
    """Delete one memory (a delete event goes on the memory log)."""
    job = DeleteMemoriesJob(
        job_id=f"del-{uuid.uuid4().hex}",
        owner_id=owner_id,
        user_id=user_id,
        memory_ids=[memory_id],
    )
    await service.log_writer.send_job(job)
    return Accepted(job_id=job.job_id, memory_id=memory_id)


@router.delete("/memories", response_model=Accepted, status_code=202)
async def delete_all_memories(owner_id: IdPath, user_id: IdPath, service: ServiceDep) -> Accepted:
    """Delete every memory of the user. The messages stay; see ``forget`` for erasure."""
    job = DeleteMemoriesJob(
        job_id=f"del-{uuid.uuid4().hex}", owner_id=owner_id, user_id=user_id, memory_ids=None
    )
    await service.log_writer.send_job(job)
    return Accepted(job_id=job.job_id)


@router.post("/forget", response_model=Accepted, status_code=202)
async def forget_user(owner_id: IdPath, user_id: IdPath, service: ServiceDep) -> Accepted:
    """Erase the user (GDPR): every memory, the open window, and a tombstone on the log,
    so rebuilds and replays skip the user's earlier messages and memories."""
    job = ForgetJob(job_id=f"forget-{uuid.uuid4().hex}", owner_id=owner_id, user_id=user_id)
    await service.log_writer.forget(job)
    service.recent_turns.forget(user_key(owner_id, user_id))
    return Accepted(job_id=job.job_id)


@router.get("/export", response_model=Export)
async def export_user(owner_id: IdPath, user_id: IdPath, service: ServiceDep) -> Export:
    """Every memory of the user, valid and expired, as JSON."""
    store, _, _ = service.ready()
    everything = MemoryFilter(statuses=tuple(StoreStatus))
    nodes: list[MemoryNode] = []
    while True:
        page = await store.list_memories(
            owner_id, user_id, everything, limit=PAGE, offset=len(nodes)
        )
        nodes.extend(page)
        if len(page) < PAGE:
            break
    return Export(
        owner_id=owner_id,
        user_id=user_id,
        exported_at=datetime.now(UTC),
        memories=[MemoryOut.of(n) for n in nodes],
    )
