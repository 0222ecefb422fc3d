"""The agent's own footprint while idle: RSS and CPU of `sdd agent` (and of its frpc), measured over
a window with no sessions, heartbeating on the default interval and holding its long-poll.

    .venv/bin/python bench/agent_idle.py [--window 60] [--tunnel mock|real]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from harness import servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--tunnel", default="mock", choices=["mock", "real"])
    args = parser.parse_args()
    with (
        servers("sqlite", cpu=None, SDD_HEARTBEAT_INTERVAL="5") as (server,),
        tempfile.TemporaryDirectory() as tmp,
    ):
        agent = subprocess.Popen(
            [sys.executable, "-m", "sdd.cli", "agent", "--server", server.url, "--runtime-dir", str(Path(tmp) / "a"),
             "--enrollment-token", server.enrollment_token(), "--ide", "mock", "--tunnel", args.tunnel,
             "--log-level", "warning"],
            env={k: v for k, v in os.environ.items() if not k.startswith("SDD_")},
        )  # fmt: skip
        try:
            headers = server.admin_headers()
            while not httpx.get(f"{server.url}/api/agents", headers=headers).json():
                time.sleep(0.2)
            time.sleep(10)  # settled: registered, frpc up, first beats sent
            me = psutil.Process(agent.pid)
            children = me.children(recursive=True)
            before = {p.pid: p.cpu_times() for p in [me, *children]}
            time.sleep(args.window)
            for process in [me, *children]:
                cpu = process.cpu_times()
                used = (cpu.user + cpu.system) - (before[process.pid].user + before[process.pid].system)
                name = "sdd agent" if process.pid == me.pid else " ".join(process.cmdline()[:3])
                print(
                    f"{name[:60]:<60} RSS {process.memory_info().rss / 2**20:6.1f} MB   "
                    f"CPU {used / args.window * 100:5.2f} % of a core over {args.window:g} s idle"
                )
        finally:
            agent.terminate()
            agent.wait(30)


if __name__ == "__main__":
    main()
