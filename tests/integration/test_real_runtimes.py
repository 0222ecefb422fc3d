"""Real frps + real frpc (and real code-server) through the whole chain.

The runtimes come from `sdd runtime install` (the test command runs it first; it is reused when
present). Without them these tests are skipped with the command that installs them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from sdd.install import find_code_server, find_frpc, find_frps
from sdd.server.frps import FrpsOptions, FrpsProcess
from support import AgentProcess, Api, ServerProcess, free_port, wait_for

pytestmark = pytest.mark.integration

AgentFactory = Callable[..., AgentProcess]
FRPS = find_frps()
needs_frp = pytest.mark.skipif(FRPS is None or find_frpc() is None, reason="run `sdd runtime install` first")
needs_code_server = pytest.mark.skipif(find_code_server() is None, reason="run `sdd runtime install` first")
TOKEN = "frps-token-for-tests"
SUBDOMAIN_HOST = "sdd.localhost"


@pytest.fixture
def frps(tmp_path: Path) -> Iterator[FrpsProcess]:
    assert FRPS is not None
    vhost = free_port()
    options = FrpsOptions(
        bind_addr="127.0.0.1",
        bind_port=free_port(),
        token=TOKEN,
        port_min=23000,
        port_max=23999,
        subdomain_host=SUBDOMAIN_HOST,
        vhost_http_port=vhost,
    )
    process = FrpsProcess(FRPS.argv, tmp_path / "frps", options).start()
    yield process
    process.stop()


def frp_env(frps: FrpsProcess, *, subdomains: bool = False) -> dict[str, str]:
    env = {
        "SDD_FRP_SERVER_ADDR": "127.0.0.1",
        "SDD_FRP_SERVER_PORT": str(frps.options.bind_port),
        "SDD_FRP_TOKEN": TOKEN,
        "SDD_FRP_PUBLIC_HOST": "127.0.0.1",
        "SDD_REMOTE_PORT_MIN": "23000",
        "SDD_REMOTE_PORT_MAX": "23999",
    }
    if subdomains:
        env |= {
            "SDD_FRP_SUBDOMAIN_HOST": SUBDOMAIN_HOST,
            "SDD_FRP_VHOST_HTTP_PORT": str(frps.options.vhost_http_port),
        }
    return env


def fetch(url: str, path: str = "/", **kw: object) -> httpx.Response:
    """GET a session link. `*.sdd.localhost` names resolve to loopback in browsers, not in every
    resolver: connect to 127.0.0.1 and send the Host header a browser would."""
    parsed = httpx.URL(url)
    target = parsed.copy_with(host="127.0.0.1", path=path)
    return httpx.get(str(target), headers={"Host": parsed.netloc.decode()}, timeout=10, **kw)  # type: ignore[arg-type]


@needs_frp
def test_a_session_through_real_frp_in_tcp_mode(
    frps: FrpsProcess, server_factory: Callable[..., ServerProcess], agent_factory: AgentFactory
) -> None:
    server = server_factory(**frp_env(frps))
    admin = Api(server.url)
    agent_factory(server, admin.enrollment_token(), "node", tunnel="real")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE", "FAILED")
    assert active["status"] == "ACTIVE", active["status_reason"]
    assert active["url"] == f"http://127.0.0.1:{active['remote_port']}/"
    assert fetch(active["url"], "/healthz").status_code == 200

    admin.post(f"/api/sessions/{session['id']}/stop")
    assert admin.wait_session(session["id"], "STOPPED", "FAILED")["status"] == "STOPPED"
    with pytest.raises(httpx.HTTPError):
        fetch(active["url"], "/healthz")


@needs_frp
def test_a_session_through_real_frp_in_subdomain_mode(
    frps: FrpsProcess, server_factory: Callable[..., ServerProcess], agent_factory: AgentFactory
) -> None:
    server = server_factory(**frp_env(frps, subdomains=True))
    admin = Api(server.url)
    agent_factory(server, admin.enrollment_token(), "node", tunnel="real")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE", "FAILED")
    assert active["status"] == "ACTIVE", active["status_reason"]
    vhost = frps.options.vhost_http_port
    assert active["url"] == f"http://sdd-{session['id']}.{SUBDOMAIN_HOST}:{vhost}/"
    assert fetch(active["url"], "/healthz").status_code == 200
    # Another subdomain on the same frps is not this session.
    assert fetch(f"http://nobody.{SUBDOMAIN_HOST}:{vhost}/", "/healthz").status_code == 404


@needs_frp
def test_frpc_killed_mid_session_comes_back_and_the_link_works_again(
    frps: FrpsProcess, server_factory: Callable[..., ServerProcess], agent_factory: AgentFactory
) -> None:
    server = server_factory(**frp_env(frps))
    admin = Api(server.url)
    agent = agent_factory(server, admin.enrollment_token(), "node", tunnel="real")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE")
    frpc = [p for p in agent.descendants() if _name(p) == "frpc"]
    assert len(frpc) == 1
    frpc[0].send_signal(signal.SIGKILL)
    wait_for(
        lambda: [p for p in agent.descendants() if _name(p) == "frpc" and p.pid != frpc[0].pid],
        15,
        what="a new frpc",
    )
    wait_for(lambda: fetch(active["url"], "/healthz").status_code == 200, 20, what="the link to work again")
    assert admin.session(session["id"])["status"] == "ACTIVE"


@needs_frp
@needs_code_server
def test_real_code_server_through_real_frp(
    frps: FrpsProcess, server_factory: Callable[..., ServerProcess], agent_factory: AgentFactory
) -> None:
    server = server_factory(**frp_env(frps))
    admin = Api(server.url)
    agent = agent_factory(server, admin.enrollment_token(), "node", ide="real", tunnel="real")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE", "FAILED", timeout=60)
    assert active["status"] == "ACTIVE", active["status_reason"]

    with httpx.Client(base_url=active["url"], timeout=30, follow_redirects=True) as browser:
        login = browser.get("/")
        assert login.url.path.endswith("/login") and "password" in login.text.lower()
        wrong = browser.post("/login", data={"password": "wrong"})
        assert "Incorrect password" in wrong.text or wrong.status_code >= 400
        workbench = browser.post("/login", data={"password": active["password"]})
        assert workbench.status_code == 200
        assert "workbench-web-configuration" in workbench.text
        assert f"code-server-session-{session['id']}" in browser.cookies

    ide = [p for p in agent.descendants() if session["id"] in " ".join(_cmdline(p))]
    assert ide
    admin.post(f"/api/sessions/{session['id']}/stop")
    assert admin.wait_session(session["id"], "STOPPED", "FAILED", timeout=30)["status"] == "STOPPED"
    _gone, alive = psutil.wait_procs(ide, timeout=15)
    assert alive == []
    assert not (agent.runtime_dir / "frpc" / "proxies" / f"{session['id']}.toml").exists()
    with pytest.raises(httpx.HTTPError):
        fetch(active["url"], "/healthz")


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:  # it exited while we looked
        return ""


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
