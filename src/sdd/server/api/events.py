"""Live events for the UI as server-sent events: agent metrics and session status, pushed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sdd.server.api.deps import Ctx, user_from_token
from sdd.server.services.broker import SHUTDOWN
from sdd.server.services.context import AUDIENCE_EVERYONE
from sdd.server.services.errors import ServiceError

router = APIRouter(tags=["events"])

KEEPALIVE_SECONDS = 15.0
MAX_BATCH = 100


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A stream of AgentEvent and "
            "SessionEvent objects, one JSON object per `data:` line",
        }
    },
)
async def events(ctx: Ctx, request: Request, token: str | None = None) -> StreamingResponse:
    """Subscribe to live events. The login token comes in the Authorization header or, for
    EventSource (which cannot set headers), in the `token` query parameter."""
    header = request.headers.get("authorization", "")
    presented = token or header.removeprefix("Bearer ").strip() or None
    user = await user_from_token(ctx, presented)
    is_admin = user.role == "admin"

    def allowed(message: str) -> str:
        audience, _, frames = message.partition("\n")
        visible = audience == AUDIENCE_EVERYONE or audience == user.id or is_admin
        return frames if visible else ""

    async def still_allowed() -> bool:
        """A logout, a disabled account, a new password or a lost admin role takes effect here."""
        nonlocal is_admin
        try:
            current = await user_from_token(ctx, presented)
        except ServiceError:
            return False
        is_admin = current.role == "admin"
        return True

    async def stream() -> AsyncIterator[str]:
        async with ctx.broker.subscribe() as queue:
            yield ": connected\n\n"
            checked = time.monotonic()
            while True:
                # Who is listening is checked again every KEEPALIVE_SECONDS, however busy the
                # stream: a fleet's metrics keep it busy, and session events carry passwords.
                if time.monotonic() - checked >= KEEPALIVE_SECONDS:
                    checked = time.monotonic()
                    if not await still_allowed():
                        return
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected() or ctx.shutting_down.is_set():
                        return
                    yield ": keepalive\n\n"
                    continue
                # Send what has piled up meanwhile in one write, not one write per event.
                messages = [message]
                while not queue.empty() and len(messages) < MAX_BATCH:
                    messages.append(queue.get_nowait())
                if SHUTDOWN in messages:
                    return
                frames = "".join(allowed(m) for m in messages)
                if frames:
                    yield frames

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
