"""The agents' long-poll, served without FastAPI's layers in its everyday case.

Every agent sends `POST /api/agent/tasks/poll` (carrying its heartbeat) every heartbeat interval:
at 10,000 agents that is 2,000 requests a second on one process. Routing through the included
routers, solving dependencies and validating the response cost about a third of the server's CPU
at that rate (measured with py-spy; docs/benchmarks.md). This middleware answers that request
itself when it is the everyday one — a credential the identity cache vouches for, a well-formed
heartbeat or none, a plain `wait` — by calling the same service function as the route.

Anything else goes on, untouched, to the FastAPI route (`api/agent_api.py`), which is the
reference: it documents the endpoint in the OpenAPI schema, reads the database for an unknown or
rotated credential, and gives every error its message. Only a request that has been fully checked
is served here, so the two cannot disagree about what is refused.
"""

from __future__ import annotations

import json
import math

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from sdd.protocol import HeartbeatRequest
from sdd.server.api.asgi import read_body, replay_body, send_json
from sdd.server.services import agents as agent_service
from sdd.server.services.context import ServerContext
from sdd.server.services.errors import ServiceError

PATH = "/api/agent/tasks/poll"
DEFAULT_WAIT = 25.0  # as the route's `wait` query parameter
MAX_WAIT = 120.0


def parse_wait(query: bytes) -> float | None:
    """`wait` from a query string of nothing but `wait=<seconds>` (or nothing); None otherwise."""
    if not query:
        return DEFAULT_WAIT
    name, _, value = query.partition(b"=")
    if name != b"wait" or b"&" in value:
        return None
    try:
        wait = float(value)
    except ValueError:
        return None
    return wait if math.isfinite(wait) and 0 <= wait <= MAX_WAIT else None


class AgentPollFastPath:
    def __init__(self, app: ASGIApp, context: ServerContext) -> None:
        self.app = app
        self.ctx = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        wait = parse_wait(scope["query_string"])
        authorization = content_type = None
        for name, value in scope["headers"]:
            # The first of each, as FastAPI's Header() reads them.
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
        identity = agent_service.cached_identity(self.ctx, authorization) if wait is not None else None
        if identity is None or wait is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        beat: HeartbeatRequest | None = None
        if body:
            try:
                if content_type != b"application/json":
                    raise ValueError("not JSON")
                beat = HeartbeatRequest.model_validate_json(body)
            except (ValidationError, ValueError):
                await self.app(scope, replay_body(body, receive), send)
                return
        try:
            reply = await agent_service.heartbeat_and_poll(self.ctx, identity, beat, wait)
        except ServiceError as exc:  # as the app's handler for ServiceError answers
            extra = [(b"www-authenticate", b"Bearer")] if exc.status_code == 401 else []
            await send_json(send, exc.status_code, json.dumps({"detail": exc.detail}).encode(), extra)
            return
        await send_json(send, 200, reply.model_dump_json().encode())
