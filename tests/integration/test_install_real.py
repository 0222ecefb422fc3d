"""The real runtimes, really installed: frp and code-server from PyPI and npm, run and asked for proof.

This installs into the real default runtimes directory on purpose: the first run takes a couple of
minutes (npm builds code-server's native modules), every later run finds it installed and takes
milliseconds, and the agent and `sdd up` then use the very same install.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from sdd.install import InstallResult, find_code_server, install
from sdd.install.layout import CODE_SERVER_VERSION, FRP_VERSION, Layout
from sdd.install.versions import probe_version

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def layout() -> Layout:
    return Layout.default()


@pytest.fixture(scope="module")
def installed(layout: Layout) -> list[InstallResult]:
    started = time.monotonic()
    results = install({"frp", "code-server"}, console=Console(file=sys.stderr))
    print(f"install took {time.monotonic() - started:.1f}s: {[(r.component, r.action) for r in results]}")
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("binary", ["frpc", "frps"])
def test_frp_binaries_report_the_pinned_version(installed: object, layout: Layout, binary: str) -> None:
    assert probe_version([str(layout.frp_dir / binary)]) == FRP_VERSION


def test_code_server_reports_the_pinned_version(installed: object, layout: Layout) -> None:
    assert probe_version([str(layout.node), str(layout.code_server_entry)]) == CODE_SERVER_VERSION


def test_a_second_install_is_a_quick_skip(installed: object, layout: Layout) -> None:
    started = time.monotonic()

    results = install({"frp", "code-server"}, console=Console(file=sys.stderr), layout=layout)

    assert {result.action for result in results} == {"already installed"}
    assert time.monotonic() - started < 5


@pytest.fixture
def code_server(installed: object, layout: Layout, tmp_path: Path) -> Iterator[str]:
    """Our code-server on a free loopback port with password auth; yields its base URL."""
    runtime = find_code_server(layout)
    assert runtime is not None
    # Run ours even when an operator's code-server is on PATH: this test is about what we installed.
    argv = (
        [str(layout.node), str(layout.code_server_entry)] if runtime.source != "sdd" else list(runtime.argv)
    )
    port = free_port()
    (tmp_path / "ws").mkdir()
    process = subprocess.Popen(
        [
            *argv,
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--auth",
            "password",
            "--disable-telemetry",
            "--disable-update-check",
            "--config",
            str(tmp_path / "config.yaml"),
            "--user-data-dir",
            str(tmp_path / "ud"),
            "--extensions-dir",
            str(tmp_path / "ext"),
            str(tmp_path / "ws"),
        ],
        # code-server keeps a heartbeat and logs under XDG_DATA_HOME and writes a default config under
        # XDG_CONFIG_HOME whatever --user-data-dir says; keep them in the test's own directory.
        env={
            **os.environ,
            "PASSWORD": "integration-secret",
            "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_code_server_serves_healthz_and_the_workbench(code_server: str) -> None:
    started = time.monotonic()
    with httpx.Client(base_url=code_server, follow_redirects=True, timeout=10) as client:
        while True:
            try:
                health = client.get("/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() - started < 60, "code-server did not answer /healthz within 60s"
                time.sleep(0.1)
        print(f"first /healthz after {time.monotonic() - started:.2f}s")
        assert health.status_code == 200

        assert client.get("/").url.path.endswith("/login")  # password auth is on
        workbench = client.post("/login", data={"password": "integration-secret"})

    assert workbench.status_code == 200
    assert "workbench" in workbench.text
