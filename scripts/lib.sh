# Shared by scripts/up and scripts/test. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION=0.13.9
UV="$ROOT/.tools/uv/bin/uv"
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The Python environment: .venv at the repository root, pinned by uv.lock.
python_env() {
    step "Python environment (.venv, from uv.lock)"
    command -v python3 >/dev/null || fail "python3 (3.11 or newer) is needed: install it (e.g. apt-get install python3 python3-venv)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fail "Python 3.11 or newer is needed; python3 is $(python3 --version)"
    if [ ! -x "$UV" ] || [ "$("$UV" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --target "$ROOT/.tools/uv" "uv==$UV_VERSION" \
            || fail "could not install uv $UV_VERSION with pip; check that PyPI is reachable"
    fi
    "$UV" sync --frozen --extra server --python "$(command -v python3)"
}

# The web UI, built into frontend/dist (which `sdd server` serves).
build_ui() {
    step "Web UI (npm ci, vite build)"
    command -v npm >/dev/null || fail "Node.js 20+ and npm are needed to build the web UI (apt-get install nodejs npm)"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build)
}

# The real runtimes (frp, code-server): installed once into ~/.local/share/sdd/runtimes, reused.
install_runtimes() {
    step "Runtimes: frp and code-server (reused when present)"
    "$ROOT/.venv/bin/sdd" runtime install
}

# PostgreSQL and Redis on this machine, for the scale-out test pass. Started if they are stopped.
ensure_services() {
    step "PostgreSQL and Redis (for the scale-out tests)"
    if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
        [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
            || fail "PostgreSQL and Redis are needed: apt-get install postgresql redis-server"
        apt-get update -qq && apt-get install -y -qq postgresql redis-server >/dev/null
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log
    fi
    for _ in $(seq 50); do
        pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) did not come up"
}

# Debian's Chromium, for the browser end-to-end test (playwright-core drives it).
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    step "Chromium (for the browser tests)"
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
        || fail "the browser tests need Chromium at /usr/bin/chromium: apt-get install chromium"
    apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
}
