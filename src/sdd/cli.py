"""The `sdd` command: server, agent, and `up` (everything on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from sdd import __version__

app = typer.Typer(
    help="SDD: self-hosted cloud development environments (VS Code in the browser, on your machines).",
    no_args_is_help=True,
    add_completion=False,
)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
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
    mock: Annotated[bool, typer.Option("--mock", help="Use mock_code_server and mock_frpc.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run an agent on this node: register, heartbeat, run sessions' IDEs and the tunnel."""
    from sdd.agent.main import Agent, AgentOptions, mock_frpc_command, mock_ide_command

    _logging(log_level)
    if not server_url.startswith(("http://", "https://")):
        typer.echo(f"--server must be an http:// or https:// URL, got {server_url!r}", err=True)
        raise typer.Exit(2)
    runtime_dir = runtime_dir.expanduser().resolve()
    ide, frpc = _runtime_commands(mock)
    options = AgentOptions(
        server=server_url,
        runtime_dir=runtime_dir,
        enrollment_token=enrollment_token,
        ide_command=ide or mock_ide_command(),
        frpc_command=frpc or mock_frpc_command(),
    )
    if name:
        options.name = name
    _run_until_signal(Agent(options))


def _runtime_commands(mock: bool) -> tuple[list[str] | None, list[str] | None]:
    """The real code-server and frpc if installed (and not --mock), else None for the mocks."""
    if mock:
        return None, None
    try:
        from sdd.install import find_code_server, find_frpc
    except ImportError:
        return None, None
    ide = find_code_server()
    frpc = find_frpc()
    return (list(ide.argv) if ide else None, list(frpc.argv) if frpc else None)


def _run_until_signal(agent_instance: object) -> None:
    from sdd.agent.main import Agent

    assert isinstance(agent_instance, Agent)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent_instance.stopping.set)
        await agent_instance.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


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


def main() -> None:
    # Exit quietly on a closed pipe (e.g. `sdd ... | head`).
    with contextlib.suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
