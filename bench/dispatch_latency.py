"""Dispatch latency: a session (and so its start task) is created → the agent's held long-poll has
the task. p50/p99 over N tasks.

    .venv/bin/python bench/dispatch_latency.py --backend sqlite
    .venv/bin/python bench/dispatch_latency.py --backend postgres --replicas 2   # poll on A, create on B

The agent is simulated over HTTP (it acknowledges each task and reports it failed, so the session
ends and frees its port); the server runs on CPU 0, this script on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx

from harness import histogram_summary, run_on_cpu, servers, summary_ms


async def run(
    urls: list[str], token: str, admin: dict[str, str], count: int
) -> tuple[list[float], list[float]]:
    poll_url, create_url = urls[0], urls[-1]
    async with (
        httpx.AsyncClient(base_url=poll_url, timeout=60) as agent_http,
        httpx.AsyncClient(base_url=create_url, timeout=60, headers=admin) as people,
    ):
        registered = await agent_http.post(
            "/api/agent/register",
            json={
                "enrollment_token": token,
                "node_key": os.urandom(16).hex(),
                "name": "bench",
                "hostname": "bench",
            },
        )
        body = registered.json()
        agent_http.headers["Authorization"] = f"Bearer {body['agent_id']}:{body['credential']}"

        async def beat() -> None:
            async with httpx.AsyncClient(base_url=poll_url, headers=dict(agent_http.headers)) as beats:
                while True:
                    await beats.post("/api/agent/heartbeat", json={"metrics": {}})
                    await asyncio.sleep(2)

        beating = asyncio.create_task(beat())
        # The creating replica must see the agent ONLINE (replicas share heartbeats via the database).
        while not any(a["status"] == "ONLINE" for a in (await people.get("/api/agents")).json()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        latencies, round_trips = [], []
        for _ in range(count):
            poll = asyncio.create_task(agent_http.post("/api/agent/tasks/poll?wait=20"))
            await asyncio.sleep(0.05)  # let the poll reach the server and wait there
            started = time.perf_counter()
            created = await people.post("/api/sessions", json={"agent_id": body["agent_id"]})
            created.raise_for_status()
            round_trips.append(time.perf_counter() - started)
            tasks = (await poll).json()["tasks"]
            latencies.append(time.perf_counter() - started)
            for task in tasks:
                await agent_http.post(f"/api/agent/tasks/{task['id']}/ack")
                await agent_http.post(
                    f"/api/agent/tasks/{task['id']}/result", json={"ok": False, "error": "bench"}
                )
        beating.cancel()
        return latencies, round_trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    run_on_cpu(1)
    with servers(args.backend, args.replicas) as started:
        token = started[0].enrollment_token()
        latencies, round_trips = asyncio.run(
            run([s.url for s in started], token, started[-1].admin_headers(), args.count)
        )
        metrics = httpx.get(f"{started[0].url}/metrics", headers=started[0].admin_headers()).text
    where = f"{args.backend}, {args.replicas} replica(s)" + (
        ", poll on A, create on B" if args.replicas > 1 else ""
    )
    print(f"dispatch latency [{where}]")
    print(f"  create session → agent has the task: {summary_ms(latencies)}")
    print(f"  POST /api/sessions round trip:       {summary_ms(round_trips)}")
    print(f"  server: task queued → leased:        {histogram_summary(metrics, 'sdd_task_dispatch_seconds')}")


if __name__ == "__main__":
    main()
