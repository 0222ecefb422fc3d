"""The shipped deployment files parse, and name only settings and options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from sdd.cli import app
from sdd.server.settings import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
SERVER_SETTINGS = {f"SDD_{name.upper()}" for name in Settings.model_fields}


def command(*path: str) -> Any:
    """A (sub)command of `sdd`, as typer builds it (typer carries its own copy of click)."""
    group: Any = typer.main.get_command(app)
    for name in path:
        found = getattr(group, "commands", {}).get(name)
        assert found is not None, f"`sdd {' '.join(path)}` does not exist"
        group = found
    return group


def options_and_envvars(cmd: Any) -> tuple[set[str], set[str]]:
    options: set[str] = set()
    envvars: set[str] = set()
    for param in cmd.params:
        if param.param_type_name == "option":
            options.update(o.split("=")[0] for o in param.opts + param.secondary_opts)
            if param.envvar:
                envvars.update([param.envvar] if isinstance(param.envvar, str) else param.envvar)
    return options, envvars


def test_the_compose_file_parses_and_uses_real_settings_and_commands() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"postgres", "redis", "server", "nginx", "frps"} <= set(compose["services"])
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}) or {}:
            if variable.startswith("SDD_"):
                assert variable in SERVER_SETTINGS, f"{name}: {variable} is not a server setting"
        argv = service.get("command") or []
        text = " ".join(argv)
        for match in re.finditer(r"\bsdd ([a-z-]+)", text):
            command(match.group(1))
        if argv[:2] == ["sdd", "server"]:
            options, _ = options_and_envvars(command("server"))
            assert {a for a in argv[2:] if a.startswith("--")} <= options


def test_the_compose_server_env_names_the_scale_out_backends() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = compose["services"]["server"]["environment"]
    assert env["SDD_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["SDD_REDIS_URL"].startswith("redis://")


def test_nginx_keeps_long_polls_and_event_streams_open() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1))  # type: ignore[union-attr]
    assert timeout > Settings.model_fields["poll_timeout"].metadata[1].le  # type: ignore[attr-defined]
    assert "proxy_buffering off;" in conf


def test_the_shipped_files_carry_a_fleet_of_ten_thousand_agents() -> None:
    """One connection per agent to the server, two through nginx (docs/deployment.md, Sizing)."""
    agents = 10_000
    conf = (DEPLOY / "nginx.conf").read_text()
    workers = int(re.search(r"worker_connections (\d+);", conf).group(1))  # type: ignore[union-attr]
    files = int(re.search(r"worker_rlimit_nofile (\d+);", conf).group(1))  # type: ignore[union-attr]
    assert workers >= 2 * agents and files >= 2 * agents
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["nginx"]["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    for name, needed in (("server", agents + 1000), ("nginx", 2 * agents)):
        service = compose["services"][name]
        assert service["ulimits"]["nofile"]["soft"] >= needed, name
        assert service["sysctls"]["net.core.somaxconn"] >= 4096, name


def test_the_agent_unit_runs_a_real_command_with_real_settings() -> None:
    lines = [line.strip() for line in (DEPLOY / "sdd-agent.service").read_text().splitlines()]
    assert "[Service]" in lines and "[Install]" in lines
    entries = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    options, envvars = options_and_envvars(command("agent"))
    exec_start = shlex.split(next(value for key, value in entries if key == "ExecStart"))
    assert exec_start[1] == "agent"
    assert {a for a in exec_start if a.startswith("--")} <= options
    for key, value in entries:
        if key == "Environment":
            name = value.split("=", 1)[0]
            assert name in envvars, f"{name} is not read by `sdd agent`"


def test_the_dockerfile_copies_files_that_exist() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
