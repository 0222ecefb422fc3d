"""Finding the frpc, frps and code-server to run, preferring what the operator chose over what we installed.

Order: an explicit `SDD_*_PATH` setting, then the program on PATH, then SDD's runtimes directory. An
operator who built or packaged their own frp or code-server should never be overridden by our copy;
ours is the fallback that makes a fresh machine work.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sdd.install.errors import InstallError
from sdd.install.layout import Layout, read_manifest

Source = Literal["env", "PATH", "sdd"]

FRPC_ENV = "SDD_FRPC_PATH"
FRPS_ENV = "SDD_FRPS_PATH"
CODE_SERVER_ENV = "SDD_CODE_SERVER_PATH"


@dataclass(frozen=True)
class Runtime:
    """A program ready to exec: `argv` is the prefix to which its own arguments are appended."""

    name: str
    argv: tuple[str, ...]
    path: Path
    source: Source
    # Known without running anything (from our manifest); None for operator-provided programs.
    version: str | None = None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_env(name: str, variable: str) -> Runtime | None:
    """The program named by `variable`; a setting that points nowhere is an error, not a silent fallback."""
    value = os.environ.get(variable)
    if not value:
        return None
    path = Path(value).expanduser()
    if not _is_executable(path):
        raise InstallError(
            f"{variable}={value} is not an executable file",
            f"point {variable} at a working {name}, or unset it to use the one SDD installs",
        )
    return Runtime(name=name, argv=(str(path),), path=path, source="env")


def _from_path(name: str) -> Runtime | None:
    found = shutil.which(name)
    if found is None:
        return None
    path = Path(found)
    return Runtime(name=name, argv=(str(path),), path=path, source="PATH")


def _find_frp_binary(name: str, variable: str, layout: Layout | None) -> Runtime | None:
    runtime = _from_env(name, variable) or _from_path(name)
    if runtime is not None:
        return runtime
    layout = layout or Layout.default()
    path = layout.frp_dir / name
    manifest = read_manifest(layout.frp_dir)
    if manifest is None or not _is_executable(path):
        return None
    return Runtime(name=name, argv=(str(path),), path=path, source="sdd", version=manifest.version)


def find_frpc(layout: Layout | None = None) -> Runtime | None:
    """The frpc to run: `SDD_FRPC_PATH`, else `frpc` on PATH, else SDD's own; None when there is none."""
    return _find_frp_binary("frpc", FRPC_ENV, layout)


def find_frps(layout: Layout | None = None) -> Runtime | None:
    """The frps to run: `SDD_FRPS_PATH`, else `frps` on PATH, else SDD's own; None when there is none."""
    return _find_frp_binary("frps", FRPS_ENV, layout)


def find_code_server(layout: Layout | None = None) -> Runtime | None:
    """The code-server to run: `SDD_CODE_SERVER_PATH`, else on PATH, else SDD's own (run by our node 24).

    Ours is `[node, entry.js]` rather than code-server's own launcher, whose `#!/usr/bin/env node` would
    pick whatever node is first on PATH, typically a distribution's older one that cannot load it.
    """
    runtime = _from_env("code-server", CODE_SERVER_ENV) or _from_path("code-server")
    if runtime is not None:
        return runtime
    layout = layout or Layout.default()
    manifest = read_manifest(layout.code_server_dir)
    entry = layout.code_server_entry
    if manifest is None or not entry.is_file() or not _is_executable(layout.node):
        return None
    return Runtime(
        name="code-server",
        argv=(str(layout.node), str(entry)),
        path=entry,
        source="sdd",
        version=manifest.version,
    )


def find_node(layout: Layout | None = None) -> Runtime | None:
    """SDD's private node 24, the one code-server was built against; never the system's."""
    layout = layout or Layout.default()
    manifest = read_manifest(layout.node_dir)
    if manifest is None or not _is_executable(layout.node):
        return None
    return Runtime(
        name="node", argv=(str(layout.node),), path=layout.node, source="sdd", version=manifest.version
    )
