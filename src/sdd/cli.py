"""The `sdd` command: server, agent, and `up` (everything on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sdd import __version__

if TYPE_CHECKING:
    from sdd.agent.main import Agent
    from sdd.install import Runtime

app = typer.Typer(
    help="SDD: self-hosted cloud development environments (VS Code in the browser, on your machines).",
    no_args_is_help=True,
    add_completion=False,
)


class Choice(enum.StrEnum):
    auto = "auto"
    mock = "mock"
    real = "real"


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _logging(level: str, log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        from logging.handlers import RotatingFileHandler

        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT, handlers=handlers
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the control plane (settings come from SDD_* environment variables)."""
    _logging(log_level)
    try:
        from sdd.server.run import serve
        from sdd.server.settings import Settings
    except ImportError as exc:
        typer.echo(f"the server needs the `server` extra: pip install 'sdd[server]' ({exc})", err=True)
        raise typer.Exit(2) from exc
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"invalid server settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    serve(settings, host=host, port=port, log_level=log_level)


@app.command()
def agent(
    server_url: Annotated[
        str,
        typer.Option(
            "--server", help="The server's URL, e.g. http://sdd.example:8000", envvar="SDD_AGENT_SERVER"
        ),
    ],
    enrollment_token: Annotated[
        str | None,
        typer.Option(help="Token from an admin; needed the first time.", envvar="SDD_AGENT_ENROLLMENT_TOKEN"),
    ] = None,
    runtime_dir: Annotated[
        Path,
        typer.Option(
            help="Where the agent keeps its credential, logs and per-session files.",
            envvar="SDD_AGENT_RUNTIME_DIR",
        ),
    ] = (Path.home() / ".local" / "share" / "sdd" / "agent"),
    name: Annotated[str | None, typer.Option(help="The agent's name (default: the host name).")] = None,
    mock: Annotated[
        bool,
        typer.Option("--mock", help="Use mock_code_server and mock_frpc (same as --ide mock --tunnel mock)."),
    ] = False,
    ide: Annotated[
        Choice, typer.Option(help="code-server: real, mock, or auto (real if installed).")
    ] = Choice.auto,
    tunnel: Annotated[
        Choice, typer.Option(help="frpc: real, mock, or auto (real if installed).")
    ] = Choice.auto,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run an agent on this node: register, heartbeat, run sessions' IDEs and the tunnel."""
    from sdd.agent.main import Agent, AgentOptions

    if not server_url.startswith(("http://", "https://")):
        typer.echo(f"--server must be an http:// or https:// URL, got {server_url!r}", err=True)
        raise typer.Exit(2)
    runtime_dir = runtime_dir.expanduser().resolve()
    _logging(log_level, runtime_dir / "agent.log")
    ide_argv, frpc_argv, runtimes = _runtime_commands(
        Choice.mock if mock else ide, Choice.mock if mock else tunnel
    )
    logging.getLogger("sdd.agent").info("runtimes: %s", runtimes)
    options = AgentOptions(
        server=server_url,
        runtime_dir=runtime_dir,
        enrollment_token=enrollment_token,
        ide_command=ide_argv,
        frpc_command=frpc_argv,
    )
    if name:
        options.name = name
    _run_until_signal(Agent(options))


def _runtime_commands(ide: Choice, tunnel: Choice) -> tuple[list[str], list[str], str]:
    """The IDE and tunnel commands to run, and a line saying which they are. `auto` takes the
    real program when it is installed (or configured), else the mock."""
    from sdd.agent.main import mock_frpc_command, mock_ide_command
    from sdd.install import InstallError, find_code_server, find_frpc

    def pick(
        choice: Choice, find: Callable[[], Runtime | None], mock: list[str], what: str
    ) -> tuple[list[str], str]:
        if choice is Choice.mock:
            return mock, f"mock {what}"
        try:
            found = find()
        except InstallError as exc:
            typer.echo(f"{exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), err=True)
            raise typer.Exit(2) from exc
        if found is not None:
            return list(found.argv), f"{found.name} {found.version or ''} ({found.source})".replace("  ", " ")
        if choice is Choice.real:
            typer.echo(f"{what} is not installed: run `sdd runtime install` (or use --{what}=mock)", err=True)
            raise typer.Exit(2)
        return mock, f"mock {what} (the real one is not installed: `sdd runtime install`)"

    ide_argv, ide_text = pick(ide, find_code_server, mock_ide_command(), "ide")
    frpc_argv, frpc_text = pick(tunnel, find_frpc, mock_frpc_command(), "tunnel")
    return ide_argv, frpc_argv, f"IDE: {ide_text}; tunnel: {frpc_text}"


def _run_until_signal(agent_instance: Agent) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent_instance.stopping.set)
        await agent_instance.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    if agent_instance.revoked:
        typer.echo("this agent was revoked by an admin; it has stopped its sessions and exits", err=True)
        raise typer.Exit(3)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the web UI and API.", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(help="Where the server and the local agent keep their state.")] = (
        Path.home() / ".local" / "share" / "sdd"
    ),
    mock: Annotated[
        bool, typer.Option("--mock", help="Use the mock IDE and tunnel even if the real ones are installed.")
    ] = False,
) -> None:
    """Everything on one machine: the server (SQLite), and a local agent enrolled automatically."""
    from sdd.up import run_up

    _logging("info")
    raise typer.Exit(run_up(port=port, host=host, data_dir=data_dir.expanduser().resolve(), mock=mock))


@app.command("frps-config")
def frps_config_command(
    bind_addr: Annotated[str, typer.Option(help="Address frps listens on.")] = "0.0.0.0",
    plugin_addr: Annotated[
        str | None,
        typer.Option(
            help="host:port where frps reaches the SDD server; with SDD_FRP_PLUGIN_SECRET set, frps "
            "asks the server before admitting a frpc or opening a proxy."
        ),
    ] = None,
) -> None:
    """Print a frps config (TOML) that matches this server's SDD_FRP_* and port-range settings."""
    import tomli_w

    from sdd.server.frps import FrpsOptions, frps_config
    from sdd.server.settings import Settings

    settings = Settings()
    options = FrpsOptions(
        bind_addr=bind_addr,
        bind_port=settings.frp_server_port,
        token=settings.frp_token.get_secret_value() if settings.frp_token else None,
        port_min=settings.remote_port_min,
        port_max=settings.remote_port_max,
        subdomain_host=settings.frp_subdomain_host,
        vhost_http_port=settings.frp_vhost_http_port,
        plugin_addr=plugin_addr,
        plugin_secret=settings.frp_plugin_secret.get_secret_value() if settings.frp_plugin_secret else None,
    )
    if plugin_addr and options.plugin_secret is None:
        typer.echo("--plugin-addr needs SDD_FRP_PLUGIN_SECRET (the same as the server's)", err=True)
        raise typer.Exit(2)
    typer.echo(tomli_w.dumps(frps_config(options)), nl=False)


runtime_app = typer.Typer(
    help="Install and inspect the real runtimes: frp and code-server.", no_args_is_help=True
)
app.add_typer(runtime_app, name="runtime")


@runtime_app.command("install")
def runtime_install(
    components: Annotated[
        list[str] | None, typer.Argument(help="frp, node and/or code-server (default: frp and code-server).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Reinstall even if the right version is there.")
    ] = False,
) -> None:
    """Install frp 0.65.0 and code-server 4.139.1 (on Node 24) into the runtimes dir, idempotently."""
    from rich.console import Console

    from sdd.install import COMPONENTS, DEFAULT_COMPONENTS, InstallError, install

    unknown = sorted(set(components or ()) - set(COMPONENTS))
    if unknown:
        typer.echo(
            f"unknown component(s): {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}", err=True
        )
        raise typer.Exit(2)
    console = Console(stderr=True)
    try:
        install(components or DEFAULT_COMPONENTS, force=force, console=console)
    except InstallError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        if exc.hint:
            console.print(f"[yellow]hint:[/yellow] {exc.hint}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("interrupted; nothing half-installed was left in place")
        raise typer.Exit(130) from None


@runtime_app.command("status")
def runtime_status() -> None:
    """Say which runtimes are installed, which versions, and where they come from."""
    from rich.console import Console

    from sdd.install import render_status, status

    report = status()
    render_status(report, Console())
    # node matters only for our own code-server; one brought by the operator needs none of ours.
    code_server = next((r for r in report if r.name == "code-server"), None)
    needs_node = code_server is None or code_server.source == "sdd"
    if not all(r.ok for r in report if r.name != "node" or needs_node):
        raise typer.Exit(1)


def main() -> None:
    # Exit quietly on a closed pipe (e.g. `sdd ... | head`).
    with contextlib.suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
