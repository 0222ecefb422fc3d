"""Checking, and on Debian as root installing, what code-server's native modules need to compile.

`npm install code-server` builds C++ addons with node-gyp (g++, make, python3), and its `kerberos`
addon includes `<gssapi/gssapi.h>`. Without them npm fails minutes in with a wall of compiler output,
so we check up front and either fix it (root on Debian, where apt-get is the obvious remedy) or stop
with the exact command to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sdd.install.errors import InstallError
from sdd.install.live_command import run_with_live_status

GSSAPI_HEADER = Path("/usr/include/gssapi/gssapi.h")


@dataclass(frozen=True)
class BuildRequirement:
    """One thing the native build needs, how to tell it is present, and the Debian package providing it."""

    what: str
    present: Callable[[], bool]
    debian_package: str


def _has_gssapi_headers() -> bool:
    return GSSAPI_HEADER.is_file() or shutil.which("krb5-config") is not None


BUILD_REQUIREMENTS: tuple[BuildRequirement, ...] = (
    BuildRequirement("a C++ compiler (g++)", lambda: bool(shutil.which("g++") or shutil.which("c++")), "g++"),
    BuildRequirement("make", lambda: shutil.which("make") is not None, "make"),
    BuildRequirement("python3 (node-gyp runs it)", lambda: shutil.which("python3") is not None, "python3"),
    BuildRequirement("GSSAPI headers (for the kerberos module)", _has_gssapi_headers, "libkrb5-dev"),
)


def missing_requirements() -> list[BuildRequirement]:
    return [requirement for requirement in BUILD_REQUIREMENTS if not requirement.present()]


def is_debian() -> bool:
    """Debian or a derivative (Ubuntu...), where the fix is an apt-get command we can name exactly."""
    return Path("/etc/debian_version").exists()


def can_use_apt() -> bool:
    """True when we may fix things ourselves: root, on Debian or a derivative, with apt-get."""
    return os.geteuid() == 0 and is_debian() and shutil.which("apt-get") is not None


def apt_install_command(packages: Sequence[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def ensure_build_requirements(console: Console, logs_dir: Path) -> None:
    """Return when all is present; install it via apt-get when allowed; otherwise raise with the fix."""
    missing = missing_requirements()
    if not missing:
        return
    needs = ", ".join(requirement.what for requirement in missing)
    packages = [requirement.debian_package for requirement in missing]
    command = " ".join(apt_install_command(packages))
    if not can_use_apt():
        if is_debian():
            hint = f"run: sudo {command}   then run the install again"
        else:
            hint = "install a C++ toolchain, make, python3 and the Kerberos/GSSAPI development headers"
        raise InstallError(f"code-server's native modules need {needs}, which this machine lacks", hint)
    console.print(
        f"  code-server's native modules need {needs}: installing {' '.join(packages)} with apt-get"
    )
    _apt_install(packages, console, logs_dir)
    still_missing = missing_requirements()
    if still_missing:
        raise InstallError(
            f"still missing after apt-get: {', '.join(r.what for r in still_missing)}",
            f"see {logs_dir / 'apt-get.log'}",
        )


def _apt_install(packages: Sequence[str], console: Console, logs_dir: Path) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = logs_dir / "apt-get.log"
    result = run_with_live_status(
        apt_install_command(packages), label="apt-get install", console=console, log_path=log, env=env
    )
    if result.returncode != 0:
        # A fresh container has no package lists at all; refresh them once and try again.
        update = run_with_live_status(
            ["apt-get", "update"], label="apt-get update", console=console, log_path=log, env=env
        )
        if update.returncode == 0:
            result = run_with_live_status(
                apt_install_command(packages), label="apt-get install", console=console, log_path=log, env=env
            )
    if result.returncode != 0:
        raise InstallError(
            f"apt-get could not install {' '.join(packages)}:\n{result.tail_text}",
            f"run `{' '.join(apt_install_command(packages))}` yourself to see why (full log: {log})",
        )
