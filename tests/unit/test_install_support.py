"""The machinery under every install: staging, the npm step, build prerequisites, long commands."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sdd.install import InstallError, install, prerequisites
from sdd.install import code_server as code_server_module
from sdd.install.layout import (
    CODE_SERVER_VERSION,
    NODE_VERSION,
    Layout,
    new_manifest,
    read_manifest,
    write_manifest,
)
from sdd.install.live_command import run_with_live_status
from sdd.install.staging import staged_directory, sweep_leftovers
from sdd.install.versions import probe_version


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


# --- staging -------------------------------------------------------------------------------------------


def test_staged_directory_replaces_the_old_tree_on_success(tmp_path: Path) -> None:
    target = tmp_path / "frp"
    target.mkdir()
    (target / "old").write_text("old")

    with staged_directory(target) as staging:
        (staging / "new").write_text("new")

    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frp"]


def test_staged_directory_leaves_the_old_tree_alone_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "frp"
    target.mkdir()
    (target / "old").write_text("old")

    with pytest.raises(RuntimeError), staged_directory(target) as staging:
        (staging / "half-written").write_text("x")
        raise RuntimeError("interrupted")

    assert sorted(p.name for p in target.iterdir()) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frp"]


def test_leftovers_of_a_killed_install_are_swept(tmp_path: Path) -> None:
    (tmp_path / ".code-server.staging-abc").mkdir()
    (tmp_path / ".frp.retired-def").mkdir()
    (tmp_path / "frp").mkdir()

    sweep_leftovers(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["frp"]


# --- long commands -------------------------------------------------------------------------------------


def test_live_command_keeps_the_full_log_and_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    program = "import sys\nfor i in range(40): print(f'line {i}')\nsys.exit(3)"

    result = run_with_live_status([sys.executable, "-c", program], label="t", console=quiet(), log_path=log)

    assert result.returncode == 3
    assert result.tail[-1] == "line 39" and len(result.tail) == 25
    assert "line 0" in log.read_text()


def test_live_command_that_overruns_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="did not finish"):
        run_with_live_status(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            label="sleeper",
            console=quiet(),
            log_path=tmp_path / "x.log",
            timeout=0.5,
        )


# --- build prerequisites -------------------------------------------------------------------------------


def test_missing_headers_without_root_fail_with_the_exact_command(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = prerequisites.BuildRequirement("GSSAPI headers", lambda: False, "libkrb5-dev")
    monkeypatch.setattr(prerequisites, "BUILD_REQUIREMENTS", (absent,))
    monkeypatch.setattr(prerequisites, "can_use_apt", lambda: False)
    monkeypatch.setattr(prerequisites, "is_debian", lambda: True)

    with pytest.raises(InstallError, match="need GSSAPI headers") as caught:
        prerequisites.ensure_build_requirements(quiet(), Path("/nonexistent"))

    assert caught.value.hint is not None
    assert "apt-get install -y --no-install-recommends libkrb5-dev" in caught.value.hint


def test_present_prerequisites_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    present = prerequisites.BuildRequirement("make", lambda: True, "make")
    monkeypatch.setattr(prerequisites, "BUILD_REQUIREMENTS", (present,))

    prerequisites.ensure_build_requirements(quiet(), Path("/nonexistent"))


# --- the npm step, with a stand-in node that plays npm and code-server ---------------------------------

FAKE_NODE = """#!/bin/sh
# Called as `node npm-cli.js install --prefix DIR ...` or `node entry.js --version`.
if [ "$2" = "install" ]; then
    echo "$npm_config_nodedir" > "$4/nodedir-seen"
    [ -n "$FAIL_NPM" ] && { echo "gyp ERR! build error"; exit 1; }
    mkdir -p "$4/node_modules/code-server/out/node"
    echo "// code-server" > "$4/node_modules/code-server/out/node/entry.js"
    echo "added 412 packages"
    exit 0
fi
echo "@VERSION@ 0123abc with Code 1.109.0"
"""


@pytest.fixture
def node_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    layout = Layout(tmp_path / "runtimes")
    layout.node.parent.mkdir(parents=True)
    layout.node.write_text(FAKE_NODE.replace("@VERSION@", CODE_SERVER_VERSION))
    layout.node.chmod(0o755)
    layout.npm_cli.parent.mkdir(parents=True)
    layout.npm_cli.write_text("// npm")
    write_manifest(layout.node_dir, new_manifest("node", NODE_VERSION, "test"))
    monkeypatch.setattr(code_server_module, "ensure_build_requirements", lambda console, logs: None)
    return layout


def test_code_server_is_built_against_our_node_headers_and_recorded(node_layout: Layout) -> None:
    [result] = install({"code-server"}, console=quiet(), layout=node_layout)[1:]

    assert result.action == "installed"
    assert node_layout.code_server_entry.is_file()
    seen = (node_layout.code_server_dir / "nodedir-seen").read_text().strip()
    assert seen == str(node_layout.node_dir)
    manifest = read_manifest(node_layout.code_server_dir)
    assert manifest is not None
    assert (manifest.version, manifest.node_version) == (CODE_SERVER_VERSION, NODE_VERSION)


def test_code_server_is_rebuilt_when_our_node_changes(node_layout: Layout) -> None:
    install({"code-server"}, console=quiet(), layout=node_layout)
    write_manifest(
        node_layout.code_server_dir,
        new_manifest("code-server", CODE_SERVER_VERSION, "test", node_version="22.0.0"),
    )

    assert not code_server_module.code_server_is_current(node_layout)


def test_failed_npm_install_shows_its_last_lines_and_leaves_nothing(
    node_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_NPM", "1")

    with pytest.raises(InstallError, match="gyp ERR! build error") as caught:
        install({"code-server"}, console=quiet(), layout=node_layout)

    assert caught.value.hint is not None and "code-server-npm.log" in caught.value.hint
    assert not node_layout.code_server_dir.exists()
    assert not [p for p in node_layout.root.iterdir() if ".staging-" in p.name]


def test_npm_runs_with_our_node_first_on_path(node_layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_NODE_VERSION", "20")

    env = code_server_module.npm_environment(node_layout)

    assert env["PATH"].split(":")[0] == str(node_layout.node.parent)
    assert env["npm_config_nodedir"] == str(node_layout.node_dir)
    assert "FORCE_NODE_VERSION" not in env


def test_forcing_code_server_does_not_rebuild_the_node_it_depends_on(node_layout: Layout) -> None:
    install({"code-server"}, console=quiet(), layout=node_layout)

    results = install({"code-server"}, force=True, console=quiet(), layout=node_layout)

    assert [(r.component, r.action) for r in results] == [
        ("node", "already installed"),
        ("code-server", "installed"),
    ]


def test_asking_a_version_leaves_no_files_in_the_users_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chatty = tmp_path / "chatty"
    # Like code-server, which writes a default config even for --version.
    chatty.write_text(
        '#!/bin/sh\nmkdir -p "$XDG_CONFIG_HOME/chatty" && touch "$XDG_CONFIG_HOME/chatty/config"\necho 1.2.3\n'
    )
    chatty.chmod(0o755)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    assert probe_version([str(chatty)]) == "1.2.3"
    assert not (tmp_path / "config").exists()
