"""Installing code-server 4.139.1 from npm, built against SDD's own Node 24.

The npm package is the only code-server distribution reachable from PyPI/npm-only networks. Its
install compiles native modules, and node-gyp would try to download node's headers from nodejs.org
unless told where they are: `npm_config_nodedir` points it at the headers inside our Node tree. Our
node/bin goes first on PATH because code-server's postinstall runs `npm` and `node` by name and
refuses any node but 24.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rich.console import Console

from sdd.install.errors import InstallError
from sdd.install.layout import (
    CODE_SERVER_VERSION,
    NODE_VERSION,
    Layout,
    code_server_entry_in,
    new_manifest,
    read_manifest,
    write_manifest,
)
from sdd.install.live_command import run_with_live_status
from sdd.install.prerequisites import ensure_build_requirements
from sdd.install.staging import staged_directory
from sdd.install.versions import verify_version

PACKAGE = f"code-server@{CODE_SERVER_VERSION}"
# The tree is ~620 MB, and npm's cache holds a compressed copy besides.
NEEDED_FREE_BYTES = 2 * 1024**3
NPM_TIMEOUT_SECONDS = 30 * 60
# npm 11 lists packages whose install scripts nobody approved, and says a later npm will skip them.
# code-server's postinstall (which installs VS Code's own dependencies) and argon2's native build are
# the two it needs; approving them by name keeps the install working when that default flips.
PREFIX_PACKAGE_JSON = {
    "name": "sdd-code-server-runtime",
    "private": True,
    "description": "code-server as installed by `sdd runtime install`",
    "allowScripts": {"code-server": True, "argon2": True},
}


def code_server_is_current(layout: Layout) -> bool:
    """True for a complete install of the pinned version whose native modules match our current node."""
    manifest = read_manifest(layout.code_server_dir)
    return (
        manifest is not None
        and manifest.version == CODE_SERVER_VERSION
        and manifest.node_version == NODE_VERSION
        and layout.code_server_entry.is_file()
        and layout.node.is_file()
    )


def npm_environment(layout: Layout) -> dict[str, str]:
    """The environment npm runs in: our node first on PATH, and node-gyp pointed at our node's headers."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(layout.node.parent), env.get("PATH", os.defpath)])
    env["npm_config_nodedir"] = str(layout.node_dir)
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    # node-gyp builds with `make -j1` unless told otherwise; the native modules are most of the wait.
    env.setdefault("JOBS", "max")
    # A FORCE_NODE_VERSION left in the environment would let code-server build against the wrong node.
    env.pop("FORCE_NODE_VERSION", None)
    return env


def check_disk_space(directory: Path) -> None:
    free = shutil.disk_usage(directory).free
    if free < NEEDED_FREE_BYTES:
        raise InstallError(
            f"code-server needs about {NEEDED_FREE_BYTES / 1024**3:.0f} GB free in {directory}, "
            f"but only {free / 1024**3:.1f} GB is",
            "free some space, or set SDD_RUNTIMES_DIR to a directory on a larger disk",
        )


def install_code_server(layout: Layout, console: Console) -> None:
    """npm-install code-server into a staging prefix with our node, check it runs, and move it into place."""
    if not layout.node.is_file():
        raise InstallError("code-server needs SDD's node, which is not installed", "install node first")
    ensure_build_requirements(console, layout.logs_dir)
    check_disk_space(layout.root)
    env = npm_environment(layout)
    with staged_directory(layout.code_server_dir) as staging:
        log = layout.logs_dir / "code-server-npm.log"
        (staging / "package.json").write_text(json.dumps(PREFIX_PACKAGE_JSON, indent=2) + "\n")
        argv = [
            str(layout.node),
            str(layout.npm_cli),
            "install",
            "--prefix",
            str(staging),
            "--save-exact",
            # Without these npm is silent for minutes (it buffers script output); with them the live
            # status can show each fetch and each compile as it happens.
            "--loglevel=http",
            "--foreground-scripts",
            PACKAGE,
        ]
        console.print(f"  npm install {PACKAGE} (a few minutes; ~600 MB; full output in {log})")
        result = run_with_live_status(
            argv,
            label=f"npm install {PACKAGE}",
            console=console,
            log_path=log,
            env=env,
            cwd=staging,
            timeout=NPM_TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            raise InstallError(
                f"npm install {PACKAGE} failed (exit {result.returncode}); last lines:\n{result.tail_text}",
                f"the full output is in {log}; a network failure can simply be retried",
            )
        entry = code_server_entry_in(staging)
        if not entry.is_file():
            raise InstallError(f"npm finished but {entry} is missing", f"see {log}")
        with console.status(f"checking code-server {CODE_SERVER_VERSION} runs"):
            verify_version([str(layout.node), str(entry)], CODE_SERVER_VERSION, "code-server", env=env)
        write_manifest(
            staging,
            new_manifest("code-server", CODE_SERVER_VERSION, f"npm:{PACKAGE}", node_version=NODE_VERSION),
        )
