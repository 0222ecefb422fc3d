"""The agent's identity on disk: a node key (kept forever) and its credential (0600)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credential:
    server: str
    agent_id: str
    secret: str

    @property
    def header(self) -> str:
        return f"Bearer {self.agent_id}:{self.secret}"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (no moment where it is world-readable or
    half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Identity:
    def __init__(self, runtime_dir: Path) -> None:
        self.node_key_path = runtime_dir / "node_key"
        self.credential_path = runtime_dir / "credential.json"

    def node_key(self) -> str:
        if self.node_key_path.exists():
            return self.node_key_path.read_text().strip()
        key = secrets.token_urlsafe(32)
        write_private(self.node_key_path, key)
        return key

    def load(self, server: str) -> Credential | None:
        try:
            data = json.loads(self.credential_path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("server") != server:
            return None
        return Credential(server=server, agent_id=str(data["agent_id"]), secret=str(data["credential"]))

    def save(self, credential: Credential) -> None:
        write_private(
            self.credential_path,
            json.dumps(
                {
                    "server": credential.server,
                    "agent_id": credential.agent_id,
                    "credential": credential.secret,
                }
            ),
        )
