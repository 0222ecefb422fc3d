"""The two small interfaces the agent drives: an IDE per session and one tunnel per agent.

Mock and real programs sit behind the same classes (they speak the same command lines and config
files), so these interfaces exist for the runtimes still to come (say, an IDE in a container), not
to tell mock from real. A subclass that forgets a method cannot be instantiated.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path


class RuntimeFailed(Exception):
    """A runtime could not do what was asked; the message is for a person to act on."""


@dataclass(frozen=True)
class IdeSpec:
    session_id: str
    password: str
    local_port: int
    session_dir: Path


class IdeRuntime(abc.ABC):
    """One IDE process for one session."""

    @abc.abstractmethod
    async def start(self, spec: IdeSpec) -> None:
        """Launch, and return once the IDE answers its health check (raise RuntimeFailed if not)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop it and everything it started."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """None while running, else the exit status."""

    @abc.abstractmethod
    async def health(self) -> bool:
        """Whether it answers now."""

    @property
    @abc.abstractmethod
    def pid(self) -> int | None: ...


@dataclass(frozen=True)
class ProxySpec:
    session_id: str
    local_port: int
    remote_port: int
    subdomain: str | None = None


class TunnelRuntime(abc.ABC):
    """The agent's one tunnel client, with a proxy per session."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def poll(self) -> int | None: ...

    @abc.abstractmethod
    async def health(self) -> bool: ...

    @abc.abstractmethod
    async def open(self, proxy: ProxySpec) -> None:
        """Open a session's proxy; return once it serves (raise RuntimeFailed if it cannot)."""

    @abc.abstractmethod
    async def close(self, session_id: str) -> None:
        """Close a session's proxy (no error if it is not open)."""
