"""`sdd runtime install` and `sdd runtime status`: the two entry points the CLI calls.

`install` is idempotent so it can sit in provisioning scripts and CI: a runtime already present at the
pinned version is skipped in milliseconds, and `force` rebuilds it. `status` reports what SDD would
actually run, including operator-provided programs that take precedence over ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from rich.console import Console
from rich.table import Table

from sdd.install import pypi
from sdd.install.code_server import code_server_is_current, install_code_server
from sdd.install.errors import InstallError
from sdd.install.frp import frp_is_current, install_frp
from sdd.install.layout import (
    CODE_SERVER_VERSION,
    COMPONENTS,
    FRP_VERSION,
    NODE_VERSION,
    Component,
    Layout,
)
from sdd.install.locate import Runtime, Source, find_code_server, find_frpc, find_frps, find_node
from sdd.install.node import install_node, node_is_current
from sdd.install.staging import install_lock, sweep_leftovers
from sdd.install.versions import probe_version

DEFAULT_COMPONENTS: frozenset[Component] = frozenset({"frp", "code-server"})
PINNED: dict[Component, str] = {"frp": FRP_VERSION, "node": NODE_VERSION, "code-server": CODE_SERVER_VERSION}
IS_CURRENT: dict[Component, Callable[[Layout], bool]] = {
    "frp": frp_is_current,
    "node": node_is_current,
    "code-server": code_server_is_current,
}


@dataclass(frozen=True)
class InstallResult:
    component: Component
    version: str
    path: Path
    action: Literal["installed", "already installed"]
    seconds: float


def resolve_components(components: Iterable[str]) -> list[Component]:
    """Validate names, add node when code-server is wanted (it is built against it), and order the steps."""
    wanted = set(components)
    unknown = wanted - set(COMPONENTS)
    if unknown:
        raise InstallError(
            f"unknown runtime {', '.join(sorted(unknown))}", f"choose from {', '.join(COMPONENTS)}"
        )
    if "code-server" in wanted:
        wanted.add("node")
    return [component for component in COMPONENTS if component in wanted]


def install(
    components: Iterable[str] = DEFAULT_COMPONENTS,
    *,
    force: bool = False,
    console: Console | None = None,
    layout: Layout | None = None,
    client: httpx.Client | None = None,
) -> list[InstallResult]:
    """Install the runtimes SDD needs into its runtimes directory, skipping those already current.

    `force` rebuilds the components named, not the node that code-server merely depends on. Raises
    InstallError, with a hint, on the first component that fails; components installed before it stay
    installed, and the failed one leaves nothing behind.
    """
    console = console or Console(stderr=True)
    layout = layout or Layout.default()
    named = set(components)
    steps = resolve_components(named)
    results: list[InstallResult] = []
    own_client = client is None
    http = client or pypi.make_client()
    try:
        with install_lock(layout.root, console):
            sweep_leftovers(layout.root)
            for component in steps:
                forced = force and component in named
                results.append(_install_one(component, layout, http, console, force=forced))
    finally:
        if own_client:
            http.close()
    _mention_overrides(steps, layout, console)
    return results


def _install_one(
    component: Component, layout: Layout, client: httpx.Client, console: Console, *, force: bool
) -> InstallResult:
    version = PINNED[component]
    path = layout.component_dir(component)
    started = time.monotonic()
    if not force and IS_CURRENT[component](layout):
        console.print(f"[green]✓[/] {component} {version} already installed in {path}")
        return InstallResult(component, version, path, "already installed", time.monotonic() - started)
    console.print(f"[bold]installing {component} {version}[/] into {path}")
    if component == "frp":
        install_frp(layout, client, console)
    elif component == "node":
        install_node(layout, client, console)
    else:
        install_code_server(layout, console)
    elapsed = time.monotonic() - started
    console.print(f"[green]✓[/] {component} {version} installed in {elapsed:.0f}s")
    return InstallResult(component, version, path, "installed", elapsed)


def _mention_overrides(steps: list[Component], layout: Layout, console: Console) -> None:
    """Say so when an operator setting or PATH entry will be used instead of what we just installed."""
    finders: list[tuple[Component, Callable[[Layout | None], Runtime | None]]] = [
        ("frp", find_frpc),
        ("frp", find_frps),
        ("code-server", find_code_server),
    ]
    for component, finder in finders:
        if component not in steps:
            continue
        try:
            runtime = finder(layout)
        except InstallError as exc:
            console.print(f"[yellow]note:[/] {exc.message}")
            continue
        if runtime is not None and runtime.source != "sdd":
            console.print(
                f"[yellow]note:[/] {runtime.name} from {runtime.source} ({runtime.path}) "
                "takes precedence over the one SDD installed"
            )


@dataclass(frozen=True)
class RuntimeStatus:
    """What SDD would run for one program, or why it cannot."""

    name: str
    installed: bool
    version: str | None
    path: Path | None
    source: Source | None
    expected_version: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.installed and self.problem is None and self.version == self.expected_version


def status(layout: Layout | None = None, *, probe: bool = True) -> list[RuntimeStatus]:
    """Per program (frpc, frps, code-server, node): found?, version, path, and where it came from.

    With `probe`, operator-provided programs are asked `--version` (about a second for code-server);
    ours report the version from their manifest.
    """
    layout = layout or Layout.default()
    checks: list[tuple[str, str, Callable[[Layout | None], Runtime | None]]] = [
        ("frpc", FRP_VERSION, find_frpc),
        ("frps", FRP_VERSION, find_frps),
        ("code-server", CODE_SERVER_VERSION, find_code_server),
        ("node", NODE_VERSION, find_node),
    ]
    report: list[RuntimeStatus] = []
    for name, expected, finder in checks:
        try:
            runtime = finder(layout)
        except InstallError as exc:
            report.append(RuntimeStatus(name, False, None, None, "env", expected, problem=exc.message))
            continue
        if runtime is None:
            report.append(RuntimeStatus(name, False, None, None, None, expected))
            continue
        version = runtime.version
        problem = None
        if version is None and probe:
            version = probe_version(runtime.argv)
            if version is None:
                problem = f"`{' '.join(runtime.argv)} --version` failed"
        report.append(RuntimeStatus(name, True, version, runtime.path, runtime.source, expected, problem))
    return report


def render_status(report: list[RuntimeStatus], console: Console, layout: Layout | None = None) -> None:
    """Print `status()` as a table, with the command that fixes anything missing."""
    layout = layout or Layout.default()
    table = Table(title=f"SDD runtimes (directory: {layout.root})", title_justify="left")
    # Our node only matters for our code-server; with an operator's code-server its absence is fine.
    node_needed = any(e.name == "code-server" and e.source in (None, "sdd") for e in report)
    for column in ("runtime", "version", "source", "path"):
        table.add_column(column)
    for entry in report:
        if not entry.installed and entry.name == "node" and not node_needed:
            version = "[dim]not needed[/]"
        elif not entry.installed:
            version = f"[red]{entry.problem or 'not installed'}[/]"
        elif entry.problem:
            version = f"[red]{entry.problem}[/]"
        elif entry.version != entry.expected_version:
            version = f"[yellow]{entry.version or '?'}[/] (SDD expects {entry.expected_version})"
        else:
            version = f"[green]{entry.version}[/]"
        table.add_row(entry.name, version, entry.source or "", str(entry.path or ""))
    console.print(table)
    if any(not entry.installed and entry.name != "node" for entry in report):
        console.print("install the missing runtimes with: [bold]sdd runtime install[/]")
