"""The control plane's FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from sdd import __version__
from sdd.protocol import ErrorOut
from sdd.server.api import agent_api, agents, audit, auth, events, frp_plugin, metrics, sessions, users
from sdd.server.api.agent_fast_path import AgentPollFastPath
from sdd.server.api.asgi import replay_body
from sdd.server.db import Database
from sdd.server.models import Agent
from sdd.server.services import agents as agent_service
from sdd.server.services.broker import LocalBroker
from sdd.server.services.context import ServerContext
from sdd.server.services.errors import ServiceError
from sdd.server.services.presence import run_flusher
from sdd.server.services.reconciler import run_reconciler
from sdd.server.services.redis_broker import RedisBroker
from sdd.server.services.security import TokenSigner, load_or_create_secret_key
from sdd.server.services.users import ensure_admin
from sdd.server.services.views import agent_out
from sdd.server.settings import Settings

log = logging.getLogger(__name__)

# The built web UI: shipped inside the package (see scripts/build-ui), or the source tree's build.
UI_DIRS = (Path(__file__).parent / "ui", Path(__file__).parents[3] / "frontend" / "dist")

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        400: "Bad request",
        401: "Not signed in",
        403: "Not allowed",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body too large",
        422: "Invalid input",
        429: "Too many",
    }.items()
}


def build_context(settings: Settings) -> ServerContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = (
        settings.secret_key.get_secret_value()
        if settings.secret_key
        else load_or_create_secret_key(settings.data_dir / "secret_key")
    )
    return ServerContext(
        settings=settings,
        db=Database(settings.effective_database_url),
        broker=RedisBroker(settings.redis_url, settings.redis_prefix)
        if settings.redis_url
        else LocalBroker(),
        signer=TokenSigner(key, settings.token_ttl_seconds),
    )


async def _publish_agents(ctx: ServerContext, written: list[str], gone: list[str]) -> None:
    """Live metrics for the UI: skipped when no browser listens, and built from memory (the agent's
    row is cached from its first heartbeat), so a fleet's beats cost no database reads."""
    if not await ctx.broker.has_listeners():
        return
    wanted = set(written) | set(gone)
    missing = wanted - ctx.agent_rows.keys()
    if missing:
        async with ctx.db.read() as db:
            for agent in (await db.execute(select(Agent).where(Agent.id.in_(missing)))).scalars():
                ctx.agent_rows[agent.id] = agent
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 200):
        rows = (ctx.agent_rows.get(agent_id) for agent_id in ordered[start : start + 200])
        await ctx.publish_agents([agent_out(row, ctx.presence) for row in rows if row is not None])
        await asyncio.sleep(0)  # let requests in between


def create_app(
    settings: Settings | None = None, *, on_admin_password: Callable[[str], None] | None = None
) -> FastAPI:
    settings = settings or Settings()
    ctx = build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.db.migrate()
        password = await ensure_admin(ctx)
        if password is not None:
            (on_admin_password or _print_admin_password)(password)
        await ctx.broker.start()
        await agent_service.warm_caches(ctx)
        # Everything made so far lives as long as the process: keep it out of the collector's scans.
        gc.freeze()
        ctx.metrics.watch_gc()
        background = [
            asyncio.create_task(
                run_flusher(
                    ctx.presence,
                    ctx.db,
                    settings.presence_flush_interval,
                    lambda w, g: _publish_agents(ctx, w, g),
                )
            ),
            asyncio.create_task(run_reconciler(ctx)),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ctx.presence.flush(ctx.db)
            ctx.metrics.unwatch_gc()
            await ctx.broker.close()
            await ctx.db.dispose()

    app = FastAPI(
        title="SDD",
        version=__version__,
        description="Self-hosted cloud development environments.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.context = ctx

    for router in (
        auth.router,
        users.router,
        agents.router,
        sessions.router,
        agent_api.router,
        events.router,
        audit.router,
    ):
        app.include_router(router, prefix="/api")
    app.include_router(metrics.router)
    app.include_router(frp_plugin.router)

    _install_error_handlers(app)
    # Middlewares added later run first: the body limit applies to the fast path too.
    app.add_middleware(AgentPollFastPath, context=ctx)
    _install_body_limit(app, settings.max_body_bytes)
    _install_ui(app, settings.ui_dir)
    return app


def _print_admin_password(password: str) -> None:
    print(
        f"\n  Created user `admin` with password: {password}\n"
        "  (shown once; set SDD_ADMIN_PASSWORD to choose it)\n",
        flush=True,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return JSONResponse({"detail": "invalid input: " + "; ".join(problems)}, status_code=422)


class BodyLimit:
    """Refuses bodies over the limit with a 413, whether announced by Content-Length or streamed
    in chunks. A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs every request a task
    and a memory stream."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = JSONResponse({"detail": f"request body over {self.limit} bytes"}, status_code=413)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await too_large(scope, receive, send)
                return
        if any(name == b"content-length" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        # A chunked body announces no length: read it (up to the limit) before the app sees it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await too_large(scope, receive, send)
                return
        await self.app(scope, replay_body(b"".join(chunks), receive), send)


def _install_body_limit(app: FastAPI, limit: int) -> None:
    app.add_middleware(BodyLimit, limit=limit)


def _install_ui(app: FastAPI, configured: Path | None) -> None:
    candidates = (configured,) if configured else UI_DIRS
    ui = next((d for d in candidates if (d / "index.html").is_file()), None)

    @app.get("/{path:path}", include_in_schema=False)
    async def spa(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            raise StarletteHTTPException(404, f"no API route /{path}")
        if ui is None:
            return JSONResponse(
                {"detail": "the web UI is not built; run `scripts/up` (or `npm run build` in frontend/)"},
                status_code=404,
            )
        candidate = (ui / path).resolve()
        # History-mode routes fall back to index.html; nothing outside the UI folder is served.
        if path and candidate.is_file() and candidate.is_relative_to(ui.resolve()):
            return FileResponse(candidate)
        return FileResponse(ui / "index.html", headers={"Cache-Control": "no-cache"})
