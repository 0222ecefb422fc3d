"""Making an install all-or-nothing: build beside the target, rename into place, one installer at a time.

A runtime is built in a hidden sibling directory and renamed over the target only once it is complete
and verified. A rename within one filesystem is atomic, so an install interrupted at any point (Ctrl-C,
a full disk, a kill -9) leaves either the old runtime or the new one, never a half-written tree that
looks complete. Leftover staging directories from a killed run are swept up by the next install.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

STAGING_MARK = ".staging-"
RETIRED_MARK = ".retired-"
LOCK_NAME = ".install.lock"


@contextlib.contextmanager
def install_lock(root: Path, console: Console) -> Iterator[None]:
    """Hold an exclusive lock on the runtimes directory so two installs never build the same runtime."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"[yellow]another install is running in {root}; waiting for it to finish[/]")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_leftovers(root: Path) -> None:
    """Remove staging and retired directories that an interrupted install left behind.

    Only call this while holding `install_lock`: otherwise it could delete another installer's work.
    """
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name.startswith(".") and (STAGING_MARK in entry.name or RETIRED_MARK in entry.name):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty directory beside `target`; on a clean exit it replaces `target`, else it vanishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARK}", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it 0700; the runtime must be usable by whoever runs agents
        _replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _replace(staging: Path, target: Path) -> None:
    """Move `staging` to `target`, retiring any old tree first (rename cannot replace a non-empty dir)."""
    retired: Path | None = None
    if target.exists() or target.is_symlink():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}{RETIRED_MARK}", dir=target.parent))
        retired.rmdir()
        target.rename(retired)
    try:
        staging.rename(target)
    except OSError:
        if retired is not None:
            retired.rename(target)  # put the old runtime back rather than leave nothing
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
