"""Asking an installed program for its version, the only proof that what we unpacked actually runs.

A file with the right name and an exec bit can still be the wrong architecture, need a missing shared
library, or (for code-server) have native modules built for another node; running `--version` catches
all of these before a runtime is renamed into place.

Asking must leave no trace: code-server writes `~/.config/code-server/config.yaml` (with a generated
password) and `~/.local/share/code-server/` even for `--version`, so every probe runs with its XDG
directories pointed at a scratch directory that is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence

from sdd.install.errors import InstallError

_VERSION = re.compile(r"\d+\.\d+\.\d+")
_XDG_DIRS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@contextlib.contextmanager
def _scratch_environment(env: Mapping[str, str] | None) -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="sdd-version-probe-") as scratch:
        isolated = dict(os.environ if env is None else env)
        for variable in _XDG_DIRS:
            isolated[variable] = scratch
        yield isolated


def _run_version(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    with _scratch_environment(env) as isolated:
        return subprocess.run(
            [*argv, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=isolated,
            stdin=subprocess.DEVNULL,
        )


def probe_version(
    argv: Sequence[str], *, timeout: float = 60.0, env: Mapping[str, str] | None = None
) -> str | None:
    """The first x.y.z in `argv --version`'s output, or None when it does not run or says nothing usable."""
    try:
        result = _run_version(argv, timeout, env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    match = _VERSION.search(result.stdout) or _VERSION.search(result.stderr)
    return match.group(0) if match else None


def verify_version(
    argv: Sequence[str],
    expected: str,
    what: str,
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> None:
    """Raise InstallError unless `argv --version` runs and reports `expected`."""
    try:
        result = _run_version(argv, timeout, env)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"{what} --version did not answer within {timeout:.0f}s") from exc
    except OSError as exc:
        raise InstallError(
            f"{what} does not run on this machine: {exc}",
            "the binary may be for another CPU architecture or libc",
        ) from exc
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or expected not in _VERSION.findall(output):
        tail = "\n".join(output.splitlines()[-10:])
        raise InstallError(
            f"{what} --version should report {expected} but exited {result.returncode} with:\n{tail}"
        )
