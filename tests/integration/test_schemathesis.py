"""Schemathesis against the OpenAPI document of a running server: generated requests, valid and
not, to every operation; no response may be a 5xx, and every status must be documented."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from support import Api, FakeAgent, ServerProcess

pytestmark = pytest.mark.integration


def schemathesis(url: str, authorization: str, *selection: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance",
            "--max-examples", "15",
            "--header", f"Authorization: {authorization}",
            "--request-timeout", "10",
            "--workers", "1",
            "--suppress-health-check", "all",
            *selection,
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_people_endpoints_give_no_server_errors_and_only_documented_statuses(
    server: ServerProcess, admin: Api
) -> None:
    FakeAgent(server.url, admin.enrollment_token()).heartbeat()  # so sessions can be created
    result = schemathesis(
        server.url,
        admin.client.headers["Authorization"],
        "--exclude-path-regex", "^/api/agent/",
        # An allowed event stream never ends; logging out, or a generated password change for the
        # admin, would revoke the token the run uses (both are covered by tests/unit/test_api.py).
        "--exclude-path", "/api/events",
        "--exclude-path", "/api/auth/logout",
        "--exclude-path", "/api/users/{user_id}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_agent_endpoints_give_no_server_errors_and_only_documented_statuses(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # Generated polls would each be held for the poll timeout: keep it short here.
    server = server_factory(SDD_POLL_TIMEOUT="0.2")
    admin = Api(server.url)
    agent = FakeAgent(server.url, admin.enrollment_token())
    agent.heartbeat()
    result = schemathesis(
        server.url, agent.client.headers["Authorization"], "--include-path-regex", "^/api/agent/"
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
