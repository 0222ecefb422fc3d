"""mock_code_server behaves like code-server 4.x to a supervisor and a browser.

Each test runs the real program in a child process and talks to it over a real socket.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PASSWORD = "correct horse battery staple"
LISTENING = re.compile(r"HTTP server listening on (http://\S+?)/?$")


@dataclass
class RunningCodeServer:
    process: subprocess.Popen[str]
    url: str
    stdout: StdoutReader


def start(args: list[str], password: str | None = PASSWORD) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "PASSWORD"}
    if password is not None:
        env["PASSWORD"] = password
    return subprocess.Popen(
        [sys.executable, "-m", "sdd.mock_bin.mock_code_server", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class StdoutReader:
    """Collects a child's stdout lines on a thread, so a test can wait for one with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 10) -> re.Match[str]:
        while True:
            line = self.lines.get(timeout=timeout)
            self.seen.append(line)
            if match := pattern.search(line):
                return match

    def everything(self) -> str:
        """All of stdout, once the process has exited."""
        self._thread.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)


def wait_listening(process: subprocess.Popen[str]) -> tuple[str, StdoutReader]:
    """Read stdout until the "HTTP server listening on" line, as a supervisor would."""
    reader = StdoutReader(process)
    return reader.wait_for(LISTENING).group(1), reader


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.fixture
def code_server(tmp_path: Path) -> Iterator[RunningCodeServer]:
    process = start(
        ["--bind-addr", "127.0.0.1:0", "--auth", "password", "--disable-telemetry", str(tmp_path)]
    )
    try:
        url, lines = wait_listening(process)
        yield RunningCodeServer(process, url, lines)
    finally:
        stop(process)


def test_healthz_answers_without_login(code_server: RunningCodeServer) -> None:
    response = httpx.get(f"{code_server.url}/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "alive"
    assert isinstance(body["lastHeartbeat"], int)


def test_root_redirects_to_login_when_not_logged_in(code_server: RunningCodeServer) -> None:
    response = httpx.get(f"{code_server.url}/")

    assert response.status_code == 302
    assert response.headers["location"].startswith("/login")


def test_login_page_is_a_password_form(code_server: RunningCodeServer) -> None:
    response = httpx.get(f"{code_server.url}/login")

    assert response.status_code == 200
    assert 'method="post"' in response.text
    assert 'name="password"' in response.text


def test_wrong_password_is_refused(code_server: RunningCodeServer) -> None:
    response = httpx.post(f"{code_server.url}/login", data={"password": "nope"})

    assert response.status_code == 401
    assert "Incorrect password" in response.text
    assert "set-cookie" not in response.headers


def test_right_password_sets_a_session_cookie_that_opens_the_workbench(
    code_server: RunningCodeServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=code_server.url) as browser:
        login = browser.post("/login", data={"password": PASSWORD})
        page = browser.get("/")

    assert login.status_code == 302
    assert login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("code-server-session=")
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert PASSWORD not in cookie
    assert page.status_code == 200
    assert "Mock Code Server is running..." in page.text
    assert str(tmp_path) in page.text


def test_forged_session_cookie_is_refused(code_server: RunningCodeServer) -> None:
    response = httpx.get(f"{code_server.url}/", cookies={"code-server-session": "abc.def"})

    assert response.status_code == 302


def test_password_is_never_printed(code_server: RunningCodeServer) -> None:
    httpx.post(f"{code_server.url}/login", data={"password": PASSWORD})
    httpx.post(f"{code_server.url}/login", data={"password": "wrong"})
    code_server.process.send_signal(signal.SIGTERM)
    code_server.process.wait(timeout=10)
    assert code_server.process.stderr is not None

    printed = code_server.stdout.everything() + code_server.process.stderr.read()
    assert PASSWORD not in printed
    assert "wrong" not in printed


def test_cookie_suffix_is_appended_to_the_cookie_name() -> None:
    process = start(["--bind-addr", "127.0.0.1:0", "--cookie-suffix", "sess42"])
    try:
        url, _ = wait_listening(process)
        with httpx.Client(base_url=url) as browser:
            login = browser.post("/login", data={"password": PASSWORD})
            page = browser.get("/")
    finally:
        stop(process)

    assert login.headers["set-cookie"].startswith("code-server-session-sess42=")
    assert page.status_code == 200


def test_auth_none_leaves_everything_open() -> None:
    process = start(["--bind-addr", "127.0.0.1:0", "--auth", "none"], password=None)
    try:
        url, _ = wait_listening(process)
        page = httpx.get(f"{url}/")
    finally:
        stop(process)

    assert page.status_code == 200
    assert "Mock Code Server is running..." in page.text


def test_missing_password_exits_2_with_a_clear_message() -> None:
    process = start(["--bind-addr", "127.0.0.1:0", "--auth", "password"], password=None)
    _, err = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "PASSWORD" in err


def test_unknown_flag_exits_2_like_argparse() -> None:
    process = start(["--no-such-flag"])
    _, err = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in err


def test_sigterm_shuts_down_cleanly(code_server: RunningCodeServer) -> None:
    code_server.process.send_signal(signal.SIGTERM)

    assert code_server.process.wait(timeout=10) == 0
