"""A stand-in for code-server 4.x: same flags, same login, same health check, no editor.

It exists so the whole chain (server → agent → tunnel → browser) can run where Node and
code-server are not installed. What the agent and the browser can observe is kept faithful:
the command line, the ``PASSWORD`` environment variable, the "HTTP server listening on" log line,
``/healthz``, the ``/login`` form and the session cookie name (including ``--cookie-suffix``).
Instead of VS Code, a logged-in browser gets a page saying ``Mock Code Server is running...``.

Only the standard library is imported, so the process is listening well within 150 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, quote, urlsplit

VERSION = "4.139.1"
SESSION_COOKIE = "code-server-session"
RUNNING_TEXT = "Mock Code Server is running..."
MAX_FORM_BYTES = 1_000_000  # code-server refuses larger bodies too


def cookie_name(suffix: str | None) -> str:
    """The session cookie's name, as code-server's ``getCookieSessionName`` builds it.

    A suffix keeps several code-servers on one host name from overwriting each other's login;
    characters a cookie name cannot carry become ``-``.
    """
    if not suffix:
        return SESSION_COOKIE
    return f"{SESSION_COOKIE}-{re.sub(r'[^A-Za-z0-9-]', '-', suffix)}"


@dataclass(frozen=True)
class Settings:
    """What one run serves; resolved once from flags, environment and ``--config``."""

    host: str
    port: int
    auth: str
    password: str | None
    cookie_name: str
    workspace: str | None
    user_data_dir: str | None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="code-server",
        description="Mock code-server: the real command line, a placeholder page instead of VS Code.",
    )
    # Defaults are None so a value from --config can fill in what the command line left out.
    parser.add_argument("--bind-addr", metavar="HOST:PORT", help="address to listen on (127.0.0.1:8080)")
    parser.add_argument("--auth", choices=["password", "none"], help="authentication type (password)")
    parser.add_argument("--config", metavar="FILE", help="code-server config.yaml (flat keys only)")
    parser.add_argument("--cookie-suffix", metavar="SUFFIX", help="appended to the session cookie name")
    parser.add_argument("--user-data-dir", metavar="DIR")
    parser.add_argument("--extensions-dir", metavar="DIR")
    parser.add_argument("--disable-telemetry", action="store_true")
    parser.add_argument("--disable-update-check", action="store_true")
    parser.add_argument("--disable-workspace-trust", action="store_true")
    parser.add_argument("--version", action="version", version=f"{VERSION} mock with Code (mock)")
    parser.add_argument("workspace", nargs="?", help="folder to open")
    return parser.parse_args(argv)


def read_config_file(path: str) -> dict[str, str]:
    """Read the flat ``key: value`` lines of a code-server config.yaml.

    code-server's own file holds only scalars (bind-addr, auth, password, cert), so this
    avoids a YAML dependency. A missing file is fine: code-server would create one.
    """
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith((" ", "#")):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def split_bind_addr(bind_addr: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); raise ValueError on anything else."""
    host, sep, port_text = bind_addr.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--bind-addr must be HOST:PORT, got {bind_addr!r}")
    return host.strip("[]"), int(port_text)


def resolve_settings(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    """Merge flags over the config file; ``$PASSWORD`` wins over both, as in code-server."""
    config = read_config_file(args.config) if args.config else {}
    host, port = split_bind_addr(args.bind_addr or config.get("bind-addr") or "127.0.0.1:8080")
    auth = args.auth or config.get("auth") or "password"
    if auth not in ("password", "none"):
        raise ValueError(f"auth must be 'password' or 'none', got {auth!r}")
    password = environ.get("PASSWORD") or config.get("password") or None
    return Settings(
        host=host,
        port=port,
        auth=auth,
        password=password,
        cookie_name=cookie_name(args.cookie_suffix or config.get("cookie-suffix")),
        workspace=args.workspace,
        user_data_dir=args.user_data_dir,
    )


class CodeServer(ThreadingHTTPServer):
    """The HTTP server plus the state every request needs; one per process."""

    daemon_threads = True  # a browser's idle keep-alive must not hold up shutdown

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Sessions are signed with a key that lives only in this process: the cookie never
        # carries the password (real code-server's does, a known weakness we need not copy).
        self.session_key = secrets.token_bytes(32)
        self.last_heartbeat_ms = int(time.time() * 1000)
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host, settings.port), CodeServerHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse-DNS lookup that can take
        # seconds on a badly configured host; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def is_valid_session(self, token: str) -> bool:
        nonce, _, signature = token.partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign(nonce))

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.session_key, nonce.encode(), hashlib.sha256).hexdigest()


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>code-server login</title></head>
<body><h1>Welcome to code-server</h1><p>Please log in below. {hint}</p>
<form method="post" action="login{query}">
<input type="password" name="password" placeholder="PASSWORD" autofocus required>
<input type="submit" value="Submit"></form>{error}</body></html>
"""

WORKBENCH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mock Code Server</title></head>
<body><h1>{running}</h1><p>Workspace: <code>{workspace}</code></p>
<p>Session: {session}</p><p>code-server {version} (mock)</p></body></html>
"""


class CodeServerHandler(BaseHTTPRequestHandler):
    """Routes: ``/healthz`` (open), ``/login``, ``/logout``, and a placeholder for everything else."""

    server: CodeServer
    protocol_version = "HTTP/1.1"
    server_version = "code-server-mock"

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet per request, as code-server does; nothing here may echo a password."""

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send_json({"status": "alive", "lastHeartbeat": self.server.last_heartbeat_ms})
            return
        self.server.last_heartbeat_ms = int(time.time() * 1000)
        if path == "/login":
            if self._logged_in():
                self._redirect(self._return_to())
            else:
                self._send_login_page(200, error="")
        elif path == "/logout":
            self._redirect("/login", cookie=f"{self.server.settings.cookie_name}=; Path=/; Max-Age=0")
        elif not self._logged_in():
            self._redirect("/login" if path == "/" else f"/login?to={quote(self.path, safe='')}")
        else:
            self._send_workbench()

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/login":
            self._send_text(405, "Method not allowed\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._send_text(413, "Payload is too large\n")
            self.close_connection = True
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        given = form.get("password", [""])[0]
        settings = self.server.settings
        if settings.auth == "none":
            self._redirect(self._return_to())
        elif settings.password and hmac.compare_digest(given.encode(), settings.password.encode()):
            cookie = f"{settings.cookie_name}={self.server.new_session()}; Path=/; HttpOnly; SameSite=Lax"
            self._redirect(self._return_to(), cookie=cookie)
        else:
            self._send_login_page(401, error="Incorrect password")

    def _logged_in(self) -> bool:
        if self.server.settings.auth == "none":
            return True
        token = self._cookies().get(self.server.settings.cookie_name, "")
        return bool(token) and self.server.is_valid_session(token)

    def _cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, sep, value = pair.strip().partition("=")
                if sep:
                    cookies.setdefault(name, value)
        return cookies

    def _return_to(self) -> str:
        """Where to go after login: the ``to`` query, if it stays on this server."""
        to = parse_qs(urlsplit(self.path).query).get("to", ["/"])[0]
        return to if to.startswith("/") and not to.startswith("//") else "/"

    def _send_login_page(self, status: int, error: str) -> None:
        query = urlsplit(self.path).query
        hint = "Check the PASSWORD environment variable of this code-server."
        error_html = f'<div class="error">{html.escape(error)}</div>' if error else ""
        page = LOGIN_PAGE.format(hint=hint, query=html.escape(f"?{query}" if query else ""), error=error_html)
        self._send(status, "text/html; charset=utf-8", page.encode())

    def _send_workbench(self) -> None:
        settings = self.server.settings
        session = "authentication disabled (--auth none)"
        if settings.auth == "password":
            session = f"logged in with cookie {settings.cookie_name}"
        page = WORKBENCH_PAGE.format(
            running=RUNNING_TEXT,
            workspace=html.escape(settings.workspace or "(no folder)"),
            session=html.escape(session),
            version=VERSION,
        )
        self._send(200, "text/html; charset=utf-8", page.encode())

    def _send_json(self, payload: object) -> None:
        self._send(200, "application/json", json.dumps(payload).encode())

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", text.encode())

    def _redirect(self, location: str, cookie: str | None = None) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def log(message: str) -> None:
    """Print a line the way code-server's logger does, to stdout, flushed for a supervisor."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    print(f"[{stamp}] info  {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = resolve_settings(args, dict(os.environ))
    except ValueError as error:
        print(f"code-server: error: {error}", file=sys.stderr)
        return 2
    if settings.auth == "password" and not settings.password:
        print(
            "code-server: error: --auth password needs a password: set the PASSWORD environment "
            "variable (or pass --auth none)",
            file=sys.stderr,
        )
        return 2
    try:
        server = CodeServer(settings)
    except OSError as error:
        print(
            f"code-server: error: cannot listen on {settings.host}:{settings.port}: {error}", file=sys.stderr
        )
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    host, port = server.socket.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    log(f"code-server {VERSION} (mock)")
    if settings.user_data_dir:
        log(f"Using user-data-dir {settings.user_data_dir}")
    log(f"HTTP server listening on http://{shown_host}:{port}/")
    log("  - Authentication is " + ("enabled" if settings.auth == "password" else "disabled"))
    log("  - Not serving HTTPS")

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
