"""Capacity: N simulated agents against one server process, each heartbeating on the default
interval (5 s) and holding a task long-poll open (25 s), as `sdd agent` does. For each N: heartbeat
latency p50/p99, server CPU and RSS. The answer is the largest N whose heartbeat p99 stays under
100 ms.

    .venv/bin/python bench/capacity.py --backend sqlite
    .venv/bin/python bench/capacity.py --backend postgres --levels 1000,2000,4000

The server runs pinned to CPU 0 (taskset), this load generator to CPU 1: on a 2-core machine they
never compete for a core. The generator speaks HTTP/1.1 on raw asyncio streams (pre-built
requests, keep-alive), so it costs a fraction of what the server does per request; its own CPU use
is printed, to show it was not the bottleneck. Each agent holds two connections (heartbeats, poll),
so the process open-files limit (ulimit -n) caps N at about half of it.
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


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    recording: bool = False


class SimAgent:
    def __init__(
        self, host: str, port: int, agent_id: str, credential: str, interval: float, stats: Stats
    ) -> None:
        self.host, self.port, self.interval, self.stats = host, port, interval, stats
        auth = f"Authorization: Bearer {agent_id}:{credential}\r\n"
        body = json.dumps({"metrics": METRICS, "sessions": [], "version": "bench"}).encode()
        self.beat = (
            f"POST /api/agent/heartbeat HTTP/1.1\r\nHost: sdd\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.poll = (
            f"POST /api/agent/tasks/poll?wait=25 HTTP/1.1\r\nHost: sdd\r\n{auth}Content-Length: 0\r\n\r\n"
        ).encode()

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

    async def run_heartbeats(self) -> None:
        await asyncio.sleep(random.uniform(0, self.interval))
        streams = await asyncio.open_connection(self.host, self.port)
        next_beat = time.monotonic()
        while True:
            started = time.perf_counter()
            try:
                status = await self._exchange(streams, self.beat)
            except (OSError, asyncio.IncompleteReadError):
                self.stats.errors += 1
                streams = await asyncio.open_connection(self.host, self.port)
                continue
            if self.stats.recording:
                self.stats.latencies.append(time.perf_counter() - started)
                if status != 200:
                    self.stats.errors += 1
            next_beat += self.interval
            await asyncio.sleep(max(0.0, next_beat - time.monotonic()))

    async def run_polls(self) -> None:
        await asyncio.sleep(random.uniform(0, self.interval))
        streams = await asyncio.open_connection(self.host, self.port)
        while True:
            try:
                await self._exchange(streams, self.poll)
            except (OSError, asyncio.IncompleteReadError):
                self.stats.errors += 1
                await asyncio.sleep(1)
                streams = await asyncio.open_connection(self.host, self.port)


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


async def run(server: Server, levels: list[int], interval: float, window: float) -> list[dict[str, float]]:
    url = httpx.URL(server.url)
    token = server.enrollment_token()
    admin = server.admin_headers()
    server_process = psutil.Process(server.process.pid)
    me = psutil.Process()
    stats = Stats()
    tasks: list[asyncio.Task[None]] = []
    results = []
    running = 0
    for level in levels:
        credentials = await register(server, token, level - running)
        for agent_id, credential in credentials:
            agent = SimAgent(url.host, url.port or 80, agent_id, credential, interval, stats)
            tasks.append(asyncio.create_task(agent.run_heartbeats()))
            tasks.append(asyncio.create_task(agent.run_polls()))
        running = level
        await asyncio.sleep(interval * 2)  # every new agent has connected and beaten at least once
        stats.latencies.clear()
        stats.errors = 0
        server_process.cpu_percent(None)
        me.cpu_percent(None)
        stats.recording = True
        await asyncio.sleep(window)
        stats.recording = False
        ms = [v * 1000 for v in stats.latencies]
        row = {
            "agents": level,
            "beats_per_s": len(ms) / window,
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "errors": stats.errors,
            "server_cpu_pct": server_process.cpu_percent(None),
            "server_rss_mb": server_process.memory_info().rss / 2**20,
            "loadgen_cpu_pct": me.cpu_percent(None),
        }
        results.append(row)
        print(
            f"{level:>6} agents: {row['beats_per_s']:7.0f} beats/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  errors {stats.errors:<4} server CPU {row['server_cpu_pct']:5.1f}%  "
            f"RSS {row['server_rss_mb']:6.0f} MB  (load generator CPU {row['loadgen_cpu_pct']:5.1f}%)",
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
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--levels", default="500,1000,2000,3000,4000,5000,6000,7000,8000,9000,9500")
    parser.add_argument("--window", type=float, default=20.0, help="Seconds measured at each level.")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if 2 * max(levels) + 200 > hard:
        raise SystemExit(f"ulimit -n is {hard}: at most {(hard - 200) // 2} simulated agents per process")
    run_on_cpu(1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with servers(args.backend, cpu="0") as (server,):
        results = asyncio.run(run(server, levels, 5.0, args.window))
    good = [r for r in results if r["p99_ms"] < 100 and not r["errors"]]
    if good:
        first, best = results[0], good[-1]
        added = max(1, best["agents"] - first["agents"])
        cpu = (best["server_cpu_pct"] - first["server_cpu_pct"]) / added * 1000
        rss = (best["server_rss_mb"] - first["server_rss_mb"]) / added * 1000
        print(
            f"\n[{args.backend}] largest N with heartbeat p99 < 100 ms: {best['agents']} agents (of the levels "
            f"tried); per 1,000 more agents: +{cpu:.1f}% of a core, +{rss:.0f} MB RSS"
        )


if __name__ == "__main__":
    main()
