"""One HTTP client for the agent's loopback calls (IDE health checks, frpc's admin API).

Making an httpx client costs milliseconds (it builds an SSL context); per call, with ten sessions
starting at once, that alone serialised starts behind each other. One shared client per event loop
costs it once.
"""

from __future__ import annotations

import asyncio

import httpx

_clients: dict[int, httpx.AsyncClient] = {}


def loopback_client() -> httpx.AsyncClient:
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None or client.is_closed:
        # Loopback only: no proxies from the environment, no certificates to load.
        client = httpx.AsyncClient(timeout=5.0, trust_env=False, verify=False)  # noqa: S501
        _clients[loop] = client
    return client


async def close_loopback_client() -> None:
    client = _clients.pop(id(asyncio.get_running_loop()), None)
    if client is not None:
        await client.aclose()
