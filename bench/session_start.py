"""Session start: `POST /api/sessions` → the session is ACTIVE (seen on the live event stream, as
the UI sees it). p50/p95/p99 over N sessions, C at a time, with a real `sdd agent` process.

    .venv/bin/python bench/session_start.py --backend sqlite                       # mock IDE + mock tunnel
    .venv/bin/python bench/session_start.py --backend postgres
    .venv/bin/python bench/session_start.py --tunnel real                          # real frps + frpc, mock IDE
    .venv/bin/python bench/session_start.py --tunnel real --ide real --count 20   # real code-server

With --ide real it also reports code-server's own boot (launch → /healthz answers), read from the
IDE logs' timestamps, so the share of the start that is code-server's is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from harness import servers, summary_ms

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support import free_port


async def measure(url: str, headers: dict[str, str], count: int, concurrency: int) -> list[float]:
    token = headers["Authorization"].removeprefix("Bearer ")
    posted: dict[str, float] = {}
    active: dict[str, float] = {}
    failed: dict[str, str] = {}
    done = asyncio.Event()

    async def listen() -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", f"{url}/api/events", params={"token": token}) as stream,
        ):
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if event["type"] != "session":
                    continue
                session = event["session"]
                if session["status"] == "ACTIVE" and session["id"] not in active:
                    active[session["id"]] = time.perf_counter()
                elif session["status"] == "FAILED":
                    failed[session["id"]] = session["status_reason"]
                if len(active) + len(failed) >= count:
                    done.set()

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:

        async def start_one() -> None:
            async with limit:
                started = time.perf_counter()
                response = await client.post("/api/sessions", json={})
                response.raise_for_status()
                session_id = response.json()["id"]
                posted[session_id] = started
                while session_id not in active and session_id not in failed:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)

        await asyncio.gather(*(start_one() for _ in range(count)))
        await asyncio.wait_for(done.wait(), 60)
        listener.cancel()
        if failed:
            raise SystemExit(f"{len(failed)} sessions failed, e.g.: {next(iter(failed.values()))}")
        for session_id in posted:
            await client.post(f"/api/sessions/{session_id}/stop")
    return [active[s] - posted[s] for s in posted]


def code_server_boot_times(runtime_dir: Path) -> list[float]:
    """code-server's own boot per session: its first log line → 'HTTP server listening'."""
    from datetime import datetime

    times = []
    for log in runtime_dir.glob("sessions/*/ide.log"):
        stamps = []
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("[") and "]" in line:
                try:
                    stamps.append(
                        (datetime.fromisoformat(line[1 : line.index("]")].replace("Z", "+00:00")), line)
                    )
                except ValueError:
                    continue
        ready = [t for t, text in stamps if "HTTP server listening" in text]
        if stamps and ready:
            times.append((ready[0] - stamps[0][0]).total_seconds())
    return times


def _cpu(pid: int) -> float:
    """CPU seconds of a process and of its children that have exited (IDEs, once stopped)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--ide", default="mock", choices=["mock", "real"])
    parser.add_argument("--tunnel", default="mock", choices=["mock", "real"])
    args = parser.parse_args()

    env: dict[str, str] = {}
    frps = None
    with tempfile.TemporaryDirectory(prefix="sdd-bench-agent-") as tmp:
        if args.tunnel == "real":
            from sdd.install import find_frps
            from sdd.server.frps import FrpsOptions, FrpsProcess

            program = find_frps()
            if program is None:
                raise SystemExit("real frp is not installed: run `sdd runtime install`")
            options = FrpsOptions("127.0.0.1", free_port(), "bench-token", 25000, 25999)
            frps = FrpsProcess(program.argv, Path(tmp) / "frps", options).start()
            env = {
                "SDD_FRP_SERVER_PORT": str(options.bind_port),
                "SDD_FRP_TOKEN": "bench-token",
                "SDD_REMOTE_PORT_MIN": "25000",
                "SDD_REMOTE_PORT_MAX": "25999",
            }
        try:
            with servers(args.backend, cpu=None, **env) as (server,):
                runtime_dir = Path(tmp) / "agent"
                agent = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "sdd.cli",
                        "agent",
                        "--server",
                        server.url,
                        "--runtime-dir",
                        str(runtime_dir),
                        "--enrollment-token",
                        server.enrollment_token(),
                        "--ide",
                        args.ide,
                        "--tunnel",
                        args.tunnel,
                        "--log-level",
                        os.environ.get("BENCH_AGENT_LOG", "warning"),
                    ],
                    env={k: v for k, v in os.environ.items() if not k.startswith("SDD_")},
                )
                try:
                    headers = server.admin_headers()
                    while not httpx.get(f"{server.url}/api/agents", headers=headers).json():
                        time.sleep(0.1)
                    time.sleep(1)
                    server_cpu, agent_cpu = _cpu(server.process.pid), _cpu(agent.pid)
                    latencies = asyncio.run(measure(server.url, headers, args.count, args.concurrency))
                    boots = code_server_boot_times(runtime_dir) if args.ide == "real" else []
                    time.sleep(2)
                    server_cpu, agent_cpu = _cpu(server.process.pid) - server_cpu, _cpu(agent.pid) - agent_cpu
                finally:
                    agent.terminate()
                    agent.wait(30)
        finally:
            if frps is not None:
                frps.stop()
    print(
        f"session start (POST → ACTIVE) [{args.backend}; IDE {args.ide}; tunnel {args.tunnel}; "
        f"{args.count} sessions, {args.concurrency} at a time]: {summary_ms(latencies)}"
    )
    print(
        f"  CPU seconds spent: server {server_cpu:.2f}, agent + its IDEs and tunnel {agent_cpu:.2f} "
        f"({os.cpu_count()} cores shared by all)"
    )
    if boots:
        print(
            f"  code-server's log, first line → listening (Node's start-up before its first line is "
            f"not in it): {summary_ms(boots)}"
        )


if __name__ == "__main__":
    main()
