"""What the benchmarks share: a server process on a chosen backend, pinned to a CPU, and an admin.

Backends: `sqlite` (the embedded default: SQLite file, in-process wake-ups) and `postgres`
(PostgreSQL at 127.0.0.1:5432 + Redis at 127.0.0.1:6379, each run on a fresh database).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support import ADMIN_PASSWORD, free_port, fresh_database

PG_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: Sequence[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} p50={percentile(ms, 50):.1f} ms p95={percentile(ms, 95):.1f} ms "
        f"p99={percentile(ms, 99):.1f} ms mean={statistics.fmean(ms):.1f} ms"
    )


def histogram_summary(metrics_text: str, name: str) -> str:
    """p50/p99 upper bounds read from a Prometheus histogram's buckets."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return "no observations"
    total = buckets[-1][1]

    def bound(q: float) -> str:
        limit = next(b for b, count in buckets if count >= q * total)
        return f"<= {limit * 1000:g} ms"

    return f"n={int(total)} p50 {bound(0.5)} p99 {bound(0.99)}"


def run_on_cpu(cpu: int) -> None:
    """Keep this (load-generating) process on one CPU, away from the server's."""
    if (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    """Run on one CPU (taskset)."""
    prefix: list[str] = []
    if cpu is not None and shutil.which("taskset"):
        prefix += ["taskset", "-c", cpu]
    return prefix + argv


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def admin_headers(self) -> dict[str, str]:
        response = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def enrollment_token(self) -> str:
        response = httpx.post(
            f"{self.url}/api/enrollment-tokens",
            json={"expires_in_seconds": 86400},
            headers=self.admin_headers(),
        )
        response.raise_for_status()
        return str(response.json()["token"])


@contextlib.contextmanager
def backend_env(backend: str) -> Iterator[dict[str, str]]:
    if backend == "sqlite":
        yield {}
        return
    if backend != "postgres":
        raise SystemExit(f"unknown backend {backend!r}: sqlite or postgres")
    os.environ["SDD_TEST_DATABASE_URL"] = PG_URL
    with fresh_database() as url:
        assert url is not None
        yield {
            "SDD_DATABASE_URL": url,
            "SDD_REDIS_URL": REDIS_URL,
            "SDD_REDIS_PREFIX": f"bench-{os.getpid()}",
        }


@contextlib.contextmanager
def servers(backend: str, count: int = 1, cpu: str | None = "0", **env: str) -> Iterator[list[Server]]:
    """`count` server replicas sharing one backend (replicas need the postgres backend)."""
    if count > 1 and backend != "postgres":
        raise SystemExit("several replicas need --backend postgres")
    with backend_env(backend) as shared, tempfile.TemporaryDirectory(prefix="sdd-bench-") as tmp:
        started: list[Server] = []
        try:
            for index in range(count):
                data_dir = Path(tmp) / f"server-{index}"
                data_dir.mkdir()
                port = free_port()
                full_env = (
                    os.environ
                    | {
                        "SDD_DATA_DIR": str(data_dir),
                        "SDD_ADMIN_PASSWORD": ADMIN_PASSWORD,
                        "SDD_SECRET_KEY": "benchmark-signing-key-32-chars-long!",
                        "SDD_MAX_SESSIONS_PER_USER": "100000",
                    }
                    | shared
                    | env
                )
                log = (data_dir / "server.log").open("ab")
                argv = pinned(
                    cpu,
                    [
                        sys.executable,
                        "-m",
                        "sdd.cli",
                        "server",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                )
                process = subprocess.Popen(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT)
                server = Server(f"http://127.0.0.1:{port}", process, data_dir)
                started.append(server)
                _wait_healthy(server)
            yield started
        finally:
            for server in started:
                server.process.terminate()
                try:
                    server.process.wait(15)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait()


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit((server.data_dir / "server.log").read_text()[-3000:])
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"server at {server.url} did not come up")


def server_pid(server: Server) -> int:
    """The Python process behind the prlimit/taskset wrappers (they exec, so it is the same pid)."""
    return server.process.pid
