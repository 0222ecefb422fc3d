"""Capacity: N simulated agents against one server process, each heartbeating on the default
interval (5 s) and holding a task long-poll open, as `sdd agent` does. For each N: heartbeat
latency p50/p99, server CPU and RSS. The answer is the largest N whose heartbeat p99 stays under
100 ms.

    .venv/bin/python bench/capacity.py --backend sqlite
    .venv/bin/python bench/capacity.py --backend postgres --levels 1000,2000,4000
    .venv/bin/python bench/capacity.py --connections 2 --levels 1000,3000,5000   # the old protocol

With `--connections 1` (the default, what `sdd agent` does) each agent holds one connection: its
long-poll carries the heartbeat and waits until the next one is due; the heartbeat's latency is
how late the poll's answer comes after its wait ran out (the server's queueing, the beat's
handling and the event loop's lag together). With `--connections 2` (the protocol before) each
agent heartbeats on one connection and holds a 25 s long-poll on another; latency is the
heartbeat request's round trip.

Only beats sent inside each level's measuring window count; the ramp (the new agents connecting
within one interval, as after a server restart) is reported on a line of its own.

The server runs pinned to CPU 0 (taskset), this load generator to CPU 1: on a 2-core machine they
never compete for a core. The generator speaks HTTP/1.1 on raw asyncio streams (pre-built
requests, keep-alive), so it costs a fraction of what the server does per request; its own CPU use
is printed, to show it was not the bottleneck. The process open-files limit (ulimit -n) caps N at
about that limit divided by the connections per agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import time
from dataclasses import dataclass, field

import httpx
import psutil

from harness import Server, percentile, run_on_cpu, servers

METRICS = {
    "cpu_percent": 3.5, "cpu_count": 8, "memory_percent": 41.0, "memory_total": 16 * 2**30,
    "memory_used": 7 * 2**30, "disk_percent": 55.0, "disk_total": 500 * 2**30, "disk_used": 270 * 2**30,
    "load_1": 0.4, "load_5": 0.3, "load_15": 0.2, "agent_rss": 40 * 2**20, "agent_cpu_percent": 0.2,
}  # fmt: skip
SPLIT_POLL_WAIT = 25.0


@dataclass
class Stats:
    phase: str = "ramp"  # where a beat sent now is counted: "ramp" or "window"
    ramp: list[float] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    errors: int = 0

    def record(self, phase: str, latency: float) -> None:
        (self.window if phase == "window" else self.ramp).append(latency)


class SimAgent:
    def __init__(
        self, host: str, port: int, agent_id: str, credential: str, interval: float, stats: Stats
    ) -> None:
        self.host, self.port, self.interval, self.stats = host, port, interval, stats
        auth = f"Authorization: Bearer {agent_id}:{credential}\r\n"
        body = json.dumps({"metrics": METRICS, "sessions": [], "version": "bench"}).encode()

        def post(path: str, payload: bytes) -> bytes:
            return (
                f"POST {path} HTTP/1.1\r\nHost: sdd\r\n{auth}Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode() + payload

        self.beat = post("/api/agent/heartbeat", body)
        self.beating_poll = post(f"/api/agent/tasks/poll?wait={interval:g}", body)
        self.poll = post(f"/api/agent/tasks/poll?wait={SPLIT_POLL_WAIT:g}", b"")

    async def _exchange(
        self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> int:
        reader, writer = streams
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return status

    async def _loop(self, request: bytes, held_for: float | None, paced: bool) -> None:
        """Send `request` forever on one connection. Its latency (less `held_for`, the time the
        server is asked to hold it) is recorded unless `held_for` is None; `paced` sends it once an
        interval, else again as soon as it is answered."""
        await asyncio.sleep(random.uniform(0, self.interval))
        streams = await asyncio.open_connection(self.host, self.port)
        next_beat = time.monotonic()
        while True:
            phase = self.stats.phase
            started = time.perf_counter()
            try:
                status = await self._exchange(streams, request)
            except (OSError, asyncio.IncompleteReadError):
                self.stats.errors += 1
                await asyncio.sleep(1)
                streams = await asyncio.open_connection(self.host, self.port)
                continue
            if status != 200:
                self.stats.errors += 1
            if held_for is not None:
                self.stats.record(phase, max(0.0, time.perf_counter() - started - held_for))
            if paced:
                next_beat += self.interval
                await asyncio.sleep(max(0.0, next_beat - time.monotonic()))

    def run(self, connections: int) -> list[asyncio.Task[None]]:
        if connections == 1:
            return [asyncio.create_task(self._loop(self.beating_poll, self.interval, paced=False))]
        return [
            asyncio.create_task(self._loop(self.beat, 0.0, paced=True)),
            asyncio.create_task(self._loop(self.poll, None, paced=False)),
        ]


async def register(server: Server, token: str, count: int) -> list[tuple[str, str]]:
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
        semaphore = asyncio.Semaphore(20)

        async def one(index: int) -> tuple[str, str]:
            async with semaphore:
                response = await client.post(
                    "/api/agent/register",
                    json={
                        "enrollment_token": token,
                        "node_key": os.urandom(16).hex(),
                        "name": f"sim-{index}",
                        "hostname": f"sim-{index}",
                    },
                )
                response.raise_for_status()
                body = response.json()
                return body["agent_id"], body["credential"]

        return await asyncio.gather(*(one(i) for i in range(count)))


async def listen(url: str, token: str, received: list[int]) -> None:
    """A browser on the Agents page: holds the live event stream and reads every event."""
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"{url}/api/events", params={"token": token}) as stream,
    ):
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                received[0] += 1


async def run(
    server: Server, levels: list[int], interval: float, window: float, connections: int, listeners: int
) -> list[dict[str, float]]:
    url = httpx.URL(server.url)
    token = server.enrollment_token()
    admin = server.admin_headers()
    events = [0]
    browsers = [
        asyncio.create_task(listen(server.url, admin["Authorization"].removeprefix("Bearer "), events))
        for _ in range(listeners)
    ]
    server_process = psutil.Process(server.process.pid)
    me = psutil.Process()
    stats = Stats()
    tasks: list[asyncio.Task[None]] = []
    results = []
    running = 0
    for level in levels:
        credentials = await register(server, token, level - running)
        stats.phase = "ramp"
        for agent_id, credential in credentials:
            agent = SimAgent(url.host, url.port or 80, agent_id, credential, interval, stats)
            tasks.extend(agent.run(connections))
        running = level
        await asyncio.sleep(interval * 3)  # every new agent has connected and beaten at least once
        ramp = [v * 1000 for v in stats.ramp]
        print(
            f"{level:>6} agents, ramp (new agents connect within {interval:g} s; first {3 * interval:g} s): "
            f"p99 {percentile(ramp, 99):7.1f} ms, slowest {max(ramp or [0]):6.0f} ms, errors {stats.errors}",
            flush=True,
        )
        stats.ramp.clear()
        stats.errors = 0
        server_process.cpu_percent(None)
        me.cpu_percent(None)
        events_before = events[0]
        stats.phase = "window"
        await asyncio.sleep(window)
        server_cpu, loadgen_cpu = server_process.cpu_percent(None), me.cpu_percent(None)
        if listeners:
            print(
                f"         live events read by {listeners} browser(s): {(events[0] - events_before) / window:.0f}/s"
            )
        stats.phase = "ramp"
        await asyncio.sleep(interval + 1)  # the window's last beats come back
        ms = [v * 1000 for v in stats.window]
        stats.window.clear()
        row = {
            "agents": level,
            "beats_per_s": len(ms) / window,
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms or [0]),
            "errors": stats.errors,
            "server_cpu_pct": server_cpu,
            "server_rss_mb": server_process.memory_info().rss / 2**20,
            "loadgen_cpu_pct": loadgen_cpu,
        }
        results.append(row)
        print(
            f"{level:>6} agents: {row['beats_per_s']:7.0f} beats/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  max {row['max_ms']:6.0f} ms  errors {stats.errors:<4} "
            f"server CPU {server_cpu:5.1f}%  RSS {row['server_rss_mb']:6.0f} MB  "
            f"(load generator CPU {loadgen_cpu:5.1f}%)",
            flush=True,
        )
        async with httpx.AsyncClient(headers=admin) as client:
            metrics = (await client.get(f"{server.url}/metrics")).text
        gc_lines = [
            line
            for line in metrics.splitlines()
            if line.startswith(("sdd_gc_pause_seconds_sum", "sdd_gc_pause_seconds_count"))
        ]
        print(
            "         garbage collection so far: "
            + "; ".join(line.removeprefix("sdd_gc_pause_seconds_") for line in gc_lines),
            flush=True,
        )
        if row["p99_ms"] > 100 or stats.errors:
            break
    for task in tasks + browsers:
        task.cancel()
    await asyncio.gather(*tasks, *browsers, return_exceptions=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--levels", default="1000,2000,4000,6000,8000,10000")
    parser.add_argument("--window", type=float, default=20.0, help="Seconds measured at each level.")
    parser.add_argument(
        "--connections", type=int, default=1, choices=[1, 2], help="Per agent: 1 (sdd agent now), 2 (before)."
    )
    parser.add_argument(
        "--listeners",
        type=int,
        default=0,
        help="Browsers holding the live event stream (as on the Agents page).",
    )
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections * max(levels) + 200 > hard:
        raise SystemExit(
            f"ulimit -n is {hard}: at most {(hard - 200) // args.connections} simulated agents per process"
        )
    run_on_cpu(1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with servers(args.backend, cpu="0") as (server,):
        results = asyncio.run(run(server, levels, 5.0, args.window, args.connections, args.listeners))
    good = [r for r in results if r["p99_ms"] < 100 and not r["errors"]]
    if good:
        best = good[-1]
        print(
            f"\n[{args.backend}, {args.connections} connection(s) per agent] largest N with heartbeat p99 "
            f"< 100 ms: {best['agents']} agents (of the levels tried); per 1,000 agents there: "
            f"{best['server_cpu_pct'] / best['agents'] * 1000:.1f}% of a core, "
            f"{best['server_rss_mb'] / best['agents'] * 1000:.0f} MB RSS (whole process)"
        )


if __name__ == "__main__":
    main()
