"""The web UI with a large fleet: N simulated agents heartbeating live while headless Chromium
shows the Agents page. Prints how long the first cards take, how busy the page's main thread is
while every heartbeat streams in, and how long a search takes to narrow the page to one agent.

    .venv/bin/python bench/ui_fleet.py --agents 10000

Needs the built UI and Chromium (the test command's set-up provides both). Server, simulated
agents and the browser share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
from pathlib import Path

import httpx

from capacity import SimAgent, Stats, register
from harness import Server, servers

BROWSE = Path(__file__).with_name("ui_fleet.mjs")


async def run(server: Server, count: int) -> None:
    credentials = await register(server, server.enrollment_token(), count)
    url = httpx.URL(server.url)
    stats = Stats()
    tasks = []
    for agent_id, credential in credentials:
        tasks += SimAgent(url.host, url.port or 80, agent_id, credential, 5.0, stats).run(1)
    await asyncio.sleep(8)  # every agent has beaten and is ONLINE
    token = server.admin_headers()["Authorization"].removeprefix("Bearer ")
    browser = await asyncio.create_subprocess_exec("node", str(BROWSE), server.url, token, str(count))
    await browser.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if browser.returncode:
        raise SystemExit(f"the browser script failed ({browser.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10000)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with servers("sqlite", cpu=None) as (server,):
        asyncio.run(run(server, args.agents))


if __name__ == "__main__":
    main()
