"""A stand-in for frpc 0.65 that also plays frps: each tcp proxy's remote port opens on this host.

The agent writes the same TOML it would write for the real frpc (``serverAddr``, ``auth.token``,
``webServer.*``, ``includes`` and ``[[proxies]]``), starts ``mock_frpc -c FILE`` the same way and
drives it through the same admin API (``GET /api/reload``, ``GET /api/status``). Instead of dialling
an frps, the mock listens on every tcp proxy's ``remotePort`` itself, at ``$MOCK_FRPC_BIND_ADDR``
(default 127.0.0.1), and forwards each connection to ``localIP:localPort``.

Where the real frpc has a quirk the agent must live with, the mock keeps it, so the mock cannot
hide a bug: relative ``includes`` resolve against the working directory (not the config file's),
a bad config on reload answers 400 and keeps the running proxies, names get a ``user.`` prefix,
and a proxy whose remote port is taken stays in "start error" and is retried every 30 s.

Only the standard library is imported (``tomllib`` reads the config), so it starts in a blink.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fnmatch
import hmac
import json
import os
import re
import signal
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

VERSION = "0.65.0"
PROXY_TYPES = ("tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp")
CONNECT_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024
ENV_TEMPLATE = re.compile(r"\{\{\s*\.Envs\.(\w+)\s*\}\}")


class ConfigError(Exception):
    """The config cannot be used; the message names the file and the problem."""


def log(level: str, message: str) -> None:
    """One line to stderr in frpc's shape (``time [I] [source] message``); never a secret."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    print(f"{stamp} [{level}] [mock_frpc] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ProxyConfig:
    """One ``[[proxies]]`` entry; ``raw`` makes any edit count as a change worth a restart."""

    name: str
    type: str
    local_ip: str
    local_port: int
    remote_port: int
    plugin: str
    raw: str = field(repr=False)


@dataclass(frozen=True)
class ClientConfig:
    server_addr: str
    admin_addr: str
    admin_port: int
    admin_user: str
    admin_password: str = field(repr=False)
    proxies: tuple[ProxyConfig, ...]


def _get(table: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = table.get(key, default)
    # bool is an int in Python but never a port in frp.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _table(table: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value: dict[str, Any] = _get(table, key, dict, {}, where)
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from error
    # frpc renders its config as a Go template first; {{ .Envs.NAME }} is the part people use.
    text = ENV_TEMPLATE.sub(lambda match: os.environ.get(match.group(1), "<no value>"), text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: toml: {error}") from error


def _included_files(patterns: list[Any], where: str) -> list[Path]:
    """Expand ``includes`` the way frpc does: a name pattern in a directory, relative to the cwd."""
    files: list[Path] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ConfigError(f"{where}: includes must be a list of strings, got {pattern!r}")
        directory = Path(pattern).parent.absolute()
        if not directory.is_dir():
            raise ConfigError(f"{where}: includes directory {directory} does not exist")
        for entry in sorted(directory.iterdir()):
            if entry.is_file() and fnmatch.fnmatchcase(entry.name, Path(pattern).name):
                files.append(entry)
    return files


def _parse_proxy(entry: Any, user: str, where: str) -> ProxyConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each [[proxies]] entry must be a table")
    name = _get(entry, "name", str, "", where)
    if not name:
        raise ConfigError(f"{where}: a proxy has no name")
    where = f"{where}: proxy [{name}]"
    proxy_type = _get(entry, "type", str, "", where)
    if proxy_type not in PROXY_TYPES:
        raise ConfigError(f"{where}: unknown proxy type {proxy_type!r}")
    plugin = _get(_table(entry, "plugin", where), "type", str, "", where)
    local_port = _get(entry, "localPort", int, 0, where)
    remote_port = _get(entry, "remotePort", int, 0, where)
    if not plugin and not 0 < local_port <= 65535:
        raise ConfigError(f"{where}: localPort must be 1-65535, got {local_port}")
    if not 0 <= remote_port <= 65535:
        raise ConfigError(f"{where}: remotePort must be 0-65535, got {remote_port}")
    return ProxyConfig(
        name=f"{user}.{name}" if user else name,
        type=proxy_type,
        local_ip=_get(entry, "localIP", str, "", where) or "127.0.0.1",
        local_port=local_port,
        remote_port=remote_port,
        plugin=plugin,
        raw=json.dumps(entry, sort_keys=True, default=str),
    )


def load_config(path: Path) -> ClientConfig:
    """Read the main file and its includes into one config, or raise ConfigError."""
    where = str(path)
    main = _read_toml(path)
    user = _get(main, "user", str, "", where)
    web = _table(main, "webServer", where)
    _get(_table(main, "auth", where), "token", str, "", where)  # checked, never kept: a secret

    entries = [(entry, where) for entry in _get(main, "proxies", list, [], where)]
    for include in _included_files(_get(main, "includes", list, [], where), where):
        extra = _read_toml(include)
        entries += [(entry, str(include)) for entry in _get(extra, "proxies", list, [], str(include))]

    start = set(_get(main, "start", list, [], where))
    proxies: dict[str, ProxyConfig] = {}
    for entry, source in entries:
        proxy = _parse_proxy(entry, user, source)
        if entry.get("enabled", True) is False or (start and entry["name"] not in start):
            continue
        if proxy.name in proxies:
            raise ConfigError(f"{source}: proxy [{proxy.name}] is duplicated")
        proxies[proxy.name] = proxy

    return ClientConfig(
        server_addr=_get(main, "serverAddr", str, "0.0.0.0", where),
        admin_addr=_get(web, "addr", str, "127.0.0.1", where),
        admin_port=_get(web, "port", int, 0, where),
        admin_user=_get(web, "user", str, "", where),
        admin_password=_get(web, "password", str, "", where),
        proxies=tuple(proxies.values()),
    )


class Proxy:
    """One proxy: its listener on the remote port, its open connections, its status."""

    def __init__(self, config: ProxyConfig, bind_addr: str, retry_seconds: float) -> None:
        self.config = config
        self.bind_addr = bind_addr
        self.retry_seconds = retry_seconds
        self.status = "new"
        self.err = ""
        self.bound_port = 0
        self._listener: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.config.type != "tcp" or self.config.plugin:
            what = f"plugin {self.config.plugin!r}" if self.config.plugin else f"type {self.config.type!r}"
            self._fail(f"{what} is not supported by mock_frpc; use a tcp proxy without a plugin")
            return
        try:
            self._listener = await asyncio.start_server(
                self._forward, self.bind_addr, self.config.remote_port, reuse_address=True
            )
        except OSError as error:
            self._fail(f"listen on {self.bind_addr}:{self.config.remote_port}: {error.strerror or error}")
            if self._retry is None:
                self._retry = asyncio.create_task(self._retry_later())
            return
        self.bound_port = self._listener.sockets[0].getsockname()[1]
        self.status, self.err = "running", ""
        target = f"{self.config.local_ip}:{self.config.local_port}"
        log("I", f"[{self.config.name}] start proxy success: {self.bind_addr}:{self.bound_port} -> {target}")

    async def stop(self) -> None:
        """Close the listener and every connection through it, as frpc does on removal."""
        if self._retry is not None:
            self._retry.cancel()
        if self._listener is not None:
            self._listener.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        self.status = "closed"
        log("I", f"[{self.config.name}] proxy closed")

    def as_status(self, server_addr: str) -> dict[str, str]:
        """The entry for ``/api/status``, field for field as frpc 0.65 reports it."""
        local = f"{self.config.local_ip}:{self.config.local_port}" if self.config.local_port else ""
        remote = f"{server_addr}:{self.bound_port}" if self.status == "running" else ""
        return {
            "name": self.config.name,
            "type": self.config.type,
            "status": self.status,
            "err": self.err,
            "local_addr": local,
            "plugin": self.config.plugin,
            "remote_addr": remote,
        }

    def _fail(self, err: str) -> None:
        self.status, self.err = "start error", err
        log("W", f"[{self.config.name}] start error: {err}")

    async def _retry_later(self) -> None:
        """frpc asks frps again every 30 s while a proxy is in "start error"."""
        try:
            while self.status == "start error":
                await asyncio.sleep(self.retry_seconds)
                await self.start()
        finally:
            self._retry = None

    async def _forward(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._connect_and_pipe(client_reader, client)
        except asyncio.CancelledError:
            # stop() cancels us. End quietly rather than re-raise: Python 3.11's stream server
            # calls task.exception() on its handler tasks and would print a traceback.
            pass
        finally:
            client.close()
            self._connections.discard(task)

    async def _connect_and_pipe(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        try:
            local_reader, local = await asyncio.wait_for(
                asyncio.open_connection(self.config.local_ip, self.config.local_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            log("W", f"[{self.config.name}] connect to local service failed: {error}")
            return
        try:
            await asyncio.gather(_pipe(client_reader, local), _pipe(local_reader, client))
        finally:
            local.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; pass a clean EOF on as a half-close, and abort both on an error."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on one side must not leave the other open forever.
        writer.transport.abort()


class Client:
    """The running mock: its proxies, the admin API, and how a reload changes them."""

    def __init__(self, config_path: Path, config: ClientConfig) -> None:
        self.config_path = config_path
        self.config = config
        self.bind_addr = os.environ.get("MOCK_FRPC_BIND_ADDR", "127.0.0.1")
        self.retry_seconds = float(os.environ.get("MOCK_FRPC_RETRY_SECONDS", "30"))
        self.proxies: dict[str, Proxy] = {}
        self.stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    async def apply(self, proxies: tuple[ProxyConfig, ...]) -> None:
        """Diff by name: stop removed and changed proxies, start new and changed ones."""
        wanted = {proxy.name: proxy for proxy in proxies}
        for name, running in list(self.proxies.items()):
            if wanted.get(name) != running.config:
                await running.stop()
                del self.proxies[name]
        for name, proxy_config in wanted.items():
            if name not in self.proxies:
                self.proxies[name] = Proxy(proxy_config, self.bind_addr, self.retry_seconds)
                await self.proxies[name].start()

    async def reload(self) -> str | None:
        """Re-read the files; return an error text (and change nothing) if they are unusable."""
        async with self._reload_lock:
            try:
                config = load_config(self.config_path)
            except ConfigError as error:
                log("W", f"reload frpc proxy config error: {error}")
                return str(error)
            # Like frpc, a reload changes proxies only; the admin API and server stay as started.
            await self.apply(config.proxies)
            log("I", "success reload conf")
            return None

    def status(self) -> dict[str, list[dict[str, str]]]:
        report: dict[str, list[dict[str, str]]] = {}
        for name in sorted(self.proxies):
            proxy = self.proxies[name]
            report.setdefault(proxy.config.type, []).append(proxy.as_status(self.config.server_addr))
        return report

    async def shutdown(self) -> None:
        await asyncio.gather(*(proxy.stop() for proxy in self.proxies.values()))
        self.proxies.clear()

    def authorized(self, header: str) -> bool:
        """HTTP basic auth against webServer.user/password; open when neither is set."""
        if not (self.config.admin_user or self.config.admin_password):
            return True
        scheme, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self.config.admin_user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.config.admin_password.encode())
        return scheme.lower() == "basic" and user_ok and password_ok

    async def handle_admin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer_admin_request(reader, writer)
        except asyncio.CancelledError:
            writer.close()  # shutting down mid-request; see Proxy._forward for why not re-raise

    async def _answer_admin_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A one-request-per-connection HTTP/1.1 server: enough for frpc's admin API."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length:
                await reader.readexactly(min(length, MAX_HEADER_BYTES))
            status, content_type, body = await self.route(method, target.split("?")[0], headers)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, content_type, body = 400, "text/plain; charset=utf-8", b"bad request\n"
        except ConnectionError:
            writer.close()
            return
        except Exception as error:  # an admin request must never take the mock down
            log("E", f"admin api {type(error).__name__}: {error}")
            status, content_type, body = 500, "text/plain; charset=utf-8", f"{error}\n".encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        extra = 'WWW-Authenticate: Basic realm="Restricted"\r\n' if status == 401 else ""
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        text = "text/plain; charset=utf-8"
        if path == "/healthz":
            return 200, text, b""
        if not self.authorized(headers.get("authorization", "")):
            return 401, text, b"Unauthorized\n"
        if (method, path) == ("GET", "/api/status"):
            return 200, "application/json", json.dumps(self.status()).encode()
        if (method, path) == ("GET", "/api/reload"):
            error = await self.reload()
            return (400, text, error.encode()) if error else (200, text, b"")
        if (method, path) == ("POST", "/api/stop"):
            self.stopping.set()
            return 200, text, b""
        return 404, text, b"404 page not found\n"


async def run(config_path: Path, config: ClientConfig) -> int:
    client = Client(config_path, config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, client.stopping.set)
    log("I", f"mock_frpc {VERSION} started, playing frps locally at {client.bind_addr}")
    # Proxies first: once the admin API answers, every proxy has been tried at least once,
    # so a supervisor can poll /api/status right away and trust what it reads.
    await client.apply(config.proxies)

    admin: asyncio.Server | None = None
    if config.admin_port:
        try:
            admin = await asyncio.start_server(
                client.handle_admin, config.admin_addr, config.admin_port, limit=MAX_HEADER_BYTES
            )
        except OSError as error:
            log("E", f"admin webServer cannot listen on {config.admin_addr}:{config.admin_port}: {error}")
            await client.shutdown()
            return 1
        log("I", f"admin server listen on {config.admin_addr}:{config.admin_port}")

    await client.stopping.wait()
    log("I", "exit: closing proxies")
    if admin is not None:
        admin.close()
    await client.shutdown()
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="frpc", description="Mock frpc: frp's client config, frps played locally."
    )
    parser.add_argument("command", nargs="?", choices=["verify"], help="verify: check the config and exit")
    parser.add_argument("-c", "--config", default="./frpc.ini", metavar="FILE", help="config file of frpc")
    # frpc's flag; the mock is always lenient about keys it does not use.
    parser.add_argument("--strict_config", nargs="?", const="true", default="true", metavar="BOOL")
    parser.add_argument("-v", "--version", action="version", version=VERSION)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config_path = Path(args.config)
    try:
        config = load_config(config_path)
    except ConfigError as error:
        print(f"mock_frpc: config error: {error}", file=sys.stderr)
        return 1
    if args.command == "verify":
        print(f"frpc: the configuration file {args.config} syntax is ok")
        return 0
    return asyncio.run(run(config_path, config))


if __name__ == "__main__":
    raise SystemExit(main())
