"""The queue's live feed: server-sent events when a lead turns hot or cools.

Each open queue page holds one stream, which polls the transitions table by id every
half second (:mod:`pyrometer.store.live`): one indexed read, and it sees what any server
process wrote. The page reloads its table body when told, with no full reload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from pyrometer.dashboard.stopping import stopping
from pyrometer.dashboard.web import Viewer, page_user, service_of
from pyrometer.store.live import hot_changes_after, last_transition_id

router = APIRouter(include_in_schema=False)
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
# A stream ends after this and the browser reconnects by itself, resuming after the last
# id it saw (``Last-Event-ID``): a stopping server waits for open streams, not forever.
MAX_STREAM_SECONDS = 30.0


def _changes(conn: Connection, after: int) -> list[tuple[int, str]]:
    return hot_changes_after(conn, after)


@router.get("/queue/stream")
async def queue_stream(request: Request, viewer: Viewer = Depends(page_user)) -> StreamingResponse:
    service = service_of(request)
    # Where to start: after the last id a reconnecting browser saw, else after the id the
    # page was rendered at (``?after=``: nothing between the page and the stream is
    # missed), else from now.
    resumed = request.headers.get("last-event-id", "") or request.query_params.get("after", "")
    if resumed.isdigit() and len(resumed) < 19:
        start = int(resumed)
    else:
        start = await run_in_threadpool(service.read, last_transition_id)

    async def events() -> AsyncIterator[str]:
        last = start
        yield f"retry: 2000\nid: {last}\n\n"  # a reconnect resumes from here
        quiet = 0.0
        lived = 0.0
        stop = stopping()
        while lived < MAX_STREAM_SECONDS and not stop.is_set():
            await asyncio.sleep(POLL_SECONDS)
            lived += POLL_SECONDS
            if await request.is_disconnected():
                return
            changes = await run_in_threadpool(service.read, partial(_changes, after=last))
            if changes:
                last = changes[-1][0]
                leads = sorted({lead for _, lead in changes})
                yield f"id: {last}\nevent: change\ndata: {json.dumps({'leads': leads})}\n\n"
                quiet = 0.0
            else:
                quiet += POLL_SECONDS
                if quiet >= HEARTBEAT_SECONDS:
                    yield ": still here\n\n"
                    quiet = 0.0

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
