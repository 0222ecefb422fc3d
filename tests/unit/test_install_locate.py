"""Which frpc, frps and code-server SDD runs: the operator's setting, then PATH, then our own install."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from sdd.install import InstallError, find_code_server, find_frpc, find_frps, render_status, status
from sdd.install.layout import (
    CODE_SERVER_VERSION,
    FRP_VERSION,
    NODE_VERSION,
    Layout,
    new_manifest,
    write_manifest,
)


def fake_program(path: Path, prints: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{prints}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    """An empty runtimes dir, an empty PATH, and no SDD_*_PATH settings: nothing is found yet."""
    for variable in ("SDD_FRPC_PATH", "SDD_FRPS_PATH", "SDD_CODE_SERVER_PATH"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setenv("SDD_RUNTIMES_DIR", str(tmp_path / "runtimes"))
    return Layout(tmp_path / "runtimes")


def install_fake_frp(layout: Layout) -> None:
    fake_program(layout.frpc, FRP_VERSION)
    fake_program(layout.frps, FRP_VERSION)
    write_manifest(layout.frp_dir, new_manifest("frp", FRP_VERSION, "test"))


def install_fake_code_server(layout: Layout) -> None:
    fake_program(layout.node, f"v{NODE_VERSION}")
    write_manifest(layout.node_dir, new_manifest("node", NODE_VERSION, "test"))
    layout.code_server_entry.parent.mkdir(parents=True)
    layout.code_server_entry.write_text("// entry")
    write_manifest(
        layout.code_server_dir,
        new_manifest("code-server", CODE_SERVER_VERSION, "test", node_version=NODE_VERSION),
    )


def test_nothing_found_when_nothing_is_installed(layout: Layout) -> None:
    assert find_frpc(layout) is None
    assert find_frps(layout) is None
    assert find_code_server(layout) is None


def test_our_install_is_found_with_its_manifest_version(layout: Layout) -> None:
    install_fake_frp(layout)

    frpc = find_frpc(layout)

    assert frpc is not None
    assert (frpc.source, frpc.argv, frpc.version) == ("sdd", (str(layout.frpc),), FRP_VERSION)


def test_binaries_without_a_manifest_are_not_trusted(layout: Layout) -> None:
    fake_program(layout.frpc, FRP_VERSION)  # e.g. a copy interrupted before installed.json was written

    assert find_frpc(layout) is None


def test_path_wins_over_our_install(layout: Layout, tmp_path: Path) -> None:
    install_fake_frp(layout)
    on_path = fake_program(tmp_path / "path" / "frps", "0.61.0")

    frps = find_frps(layout)

    assert frps is not None
    assert (frps.source, frps.path, frps.version) == ("PATH", on_path, None)


def test_explicit_setting_wins_over_path_and_our_install(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_frp(layout)
    fake_program(tmp_path / "path" / "frpc", "0.61.0")
    chosen = fake_program(tmp_path / "ops" / "my-frpc", FRP_VERSION)
    monkeypatch.setenv("SDD_FRPC_PATH", str(chosen))

    frpc = find_frpc(layout)

    assert frpc is not None
    assert (frpc.source, frpc.argv) == ("env", (str(chosen),))


def test_setting_pointing_nowhere_is_an_error_not_a_silent_fallback(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_frp(layout)
    monkeypatch.setenv("SDD_FRPC_PATH", str(tmp_path / "missing"))

    with pytest.raises(InstallError, match=r"SDD_FRPC_PATH=.* is not an executable") as caught:
        find_frpc(layout)
    assert caught.value.hint and "unset it" in caught.value.hint


def test_our_code_server_runs_under_our_node(layout: Layout) -> None:
    install_fake_code_server(layout)

    code_server = find_code_server(layout)

    assert code_server is not None
    assert code_server.argv == (str(layout.node), str(layout.code_server_entry))
    assert (code_server.source, code_server.version) == ("sdd", CODE_SERVER_VERSION)


def test_our_code_server_without_our_node_is_not_offered(layout: Layout) -> None:
    install_fake_code_server(layout)
    layout.node.unlink()

    assert find_code_server(layout) is None


def test_code_server_setting_wins(layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_code_server(layout)
    chosen = fake_program(tmp_path / "ops" / "code-server", CODE_SERVER_VERSION)
    monkeypatch.setenv("SDD_CODE_SERVER_PATH", str(chosen))

    code_server = find_code_server(layout)

    assert code_server is not None and code_server.argv == (str(chosen),)


def test_status_reports_each_program_with_version_and_source(layout: Layout, tmp_path: Path) -> None:
    install_fake_frp(layout)
    fake_program(tmp_path / "path" / "code-server", "4.100.0 abcdef with Code 1.99")

    report = {entry.name: entry for entry in status(layout)}

    assert report["frpc"].installed and report["frpc"].ok and report["frpc"].source == "sdd"
    assert report["code-server"].source == "PATH"
    assert report["code-server"].version == "4.100.0"  # probed, since PATH programs have no manifest
    assert not report["code-server"].ok  # runs, but is not the version SDD pins
    assert not report["node"].installed


def test_status_table_names_what_is_missing_and_how_to_install_it(layout: Layout) -> None:
    install_fake_frp(layout)
    output = io.StringIO()

    render_status(status(layout), Console(file=output, width=200), layout)

    text = output.getvalue()
    assert FRP_VERSION in text and str(layout.frpc) in text
    assert "not installed" in text
    assert "sdd runtime install" in text


def test_status_reports_a_broken_setting_instead_of_raising(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDD_FRPS_PATH", str(tmp_path / "missing"))

    report = {entry.name: entry for entry in status(layout)}

    assert not report["frps"].installed
    assert report["frps"].problem is not None and "SDD_FRPS_PATH" in report["frps"].problem
