"""Running the app under uvicorn."""

from __future__ import annotations

import asyncio
import gc
import socket
from types import FrameType

import uvicorn

from sdd.server.app import create_app
from sdd.server.services.context import ServerContext
from sdd.server.settings import Settings


class SddServer(uvicorn.Server):
    """uvicorn's server, which first tells the app it is stopping, so held long-polls and event
    streams end at once instead of holding the shutdown up until they time out."""

    def __init__(self, config: uvicorn.Config, context: ServerContext) -> None:
        super().__init__(config)
        self.context = context
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.context.begin_shutdown)
        super().handle_exit(sig, frame)


def serve(settings: Settings, *, host: str, port: int, log_level: str) -> None:
    # A server holding thousands of agents' connections keeps a large heap of long-lived objects;
    # CPython's default thresholds then run full collections often, each a pause of hundreds of
    # milliseconds in the middle of heartbeats. Collect young objects far less eagerly.
    gc.set_threshold(50_000, 20, 100)
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=log_level if log_level != "info" else "warning",
        timeout_keep_alive=75,
        # Thousands of agents reconnect at once after a restart: a short accept queue overflows and
        # their connections stall for seconds in SYN retries. The kernel caps this at
        # net.core.somaxconn (docs/deployment.md).
        backlog=65535,
        timeout_graceful_shutdown=5,
    )
    SddServer(config, application.state.context).run()
