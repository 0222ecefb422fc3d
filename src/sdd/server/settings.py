"""Every setting of the control plane, declared once with its help text.

Read from the environment with the `SDD_` prefix. docs/configuration.md lists the same settings;
tests/unit/test_docs.py keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "sdd" / "server"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDD_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the server keeps its SQLite database and signing key. "
        "Default: ~/.local/share/sdd/server.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL, e.g. "
        "postgresql+asyncpg://user@host/db. Default: SQLite file "
        "<data_dir>/sdd.db in WAL mode.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://host:port/0 to share wake-ups and live "
        "events between several server replicas. Default: in-process.",
    )
    redis_prefix: str = Field(
        "sdd",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Prefix of SDD's Redis channels, so several SDD installations can share one Redis.",
    )
    admin_password: SecretStr | None = Field(
        None,
        description="Password of the `admin` user created "
        "on first start. Default: a random one, printed once.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that signs login tokens. Default: "
        "generated once and kept 0600 in <data_dir>/secret_key. "
        "Replicas must share it.",
    )
    ui_dir: Path | None = Field(
        None,
        description="Folder of the built web UI (index.html and assets). Default: the UI bundled in "
        "the package, else frontend/dist of a source checkout.",
    )
    public_url: str | None = Field(
        None,
        description="The address people and agents use to reach the "
        "server, used in the ready-to-paste `sdd agent` command. Default: "
        "derived from the request.",
    )
    registration_open: bool = Field(
        False,
        description="Let anyone create an account on the login page. "
        "Closed by default: an admin creates users.",
    )
    token_ttl_seconds: int = Field(12 * 3600, ge=60, description="How long a login token is valid.")

    heartbeat_interval: float = Field(5.0, gt=0, description="Seconds between an agent's heartbeats.")
    offline_after_beats: float = Field(
        3.0, gt=1, description="An agent missing this many heartbeat intervals is OFFLINE."
    )
    poll_timeout: float = Field(
        25.0,
        gt=0,
        le=120,
        description="Longest an agent's task long-poll is held open before it returns empty.",
    )
    task_ack_timeout: float = Field(
        15.0,
        gt=0,
        description="A leased task not acknowledged by its "
        "agent within this many seconds is delivered again.",
    )
    pending_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a session may stay PENDING (its "
        "agent has not picked up the start task) before it FAILS.",
    )
    start_timeout: float = Field(
        120.0, gt=0, description="Seconds a session may stay STARTING before it FAILS."
    )
    stop_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a session may stay STOPPING before it "
        "FAILS with a reason saying the node did not confirm the stop.",
    )
    lost_timeout: float = Field(
        3600.0,
        gt=0,
        description="Seconds a session may stay LOST (its agent offline) before it FAILS; it turns "
        "ACTIVE again if the agent returns and still runs it.",
    )
    reconcile_interval: float = Field(1.0, gt=0, description="How often deadlines are enforced.")
    presence_flush_interval: float = Field(
        2.0,
        gt=0,
        description="Heartbeats are kept in memory and "
        "written to the database in one batch at this interval.",
    )

    remote_port_min: int = Field(
        20000, ge=1024, le=65535, description="Lowest tunnel (frps) port given to a session."
    )
    remote_port_max: int = Field(
        20999, ge=1024, le=65535, description="Highest tunnel (frps) port given to a session."
    )
    frp_server_addr: str = Field("127.0.0.1", description="Address agents' frpc dial to reach frps.")
    frp_server_port: int = Field(7000, ge=1, le=65535, description="frps bind port.")
    frp_token: SecretStr | None = Field(None, description="frps auth token handed to agents.")
    frp_public_host: str = Field(
        "127.0.0.1",
        description="Host name or address of frps as people reach it: the host part of every session link.",
    )
    frp_plugin_secret: SecretStr | None = Field(
        None,
        description="Secret in the path of the frps server-plugin hook (/api/frp/plugin/<secret>). "
        "Set it, and point frps's httpPlugins at it (`sdd frps-config --plugin-addr`), so frps admits "
        "only enrolled agents and only their sessions' ports.",
    )
    frp_subdomain_host: str | None = Field(
        None,
        description="When set, sessions use http proxies at <subdomain>.<this host> instead of a tcp port.",
    )
    frp_vhost_http_port: int = Field(
        80, ge=1, le=65535, description="frps vhostHTTPPort, used in subdomain links."
    )

    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token a Prometheus scraper sends to read /metrics. Unset: only admins "
        "(with a login token) may read it.",
    )
    max_sessions_per_user: int = Field(20, ge=1, description="Live sessions one user may hold at once.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted.")

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("SDD_SECRET_KEY must be at least 32 characters (use a random string)")
        return value

    @model_validator(mode="after")
    def _check_port_range(self) -> Settings:
        if self.remote_port_min > self.remote_port_max:
            raise ValueError(
                f"SDD_REMOTE_PORT_MIN ({self.remote_port_min}) is above SDD_REMOTE_PORT_MAX "
                f"({self.remote_port_max})"
            )
        return self

    @property
    def offline_timeout(self) -> float:
        return self.heartbeat_interval * self.offline_after_beats

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'sdd.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def settings_table() -> str:
    """The settings as a Markdown table, for docs/configuration.md (a test keeps them equal)."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        if info.default_factory is not None:
            default = "see meaning"
        elif info.default is None:
            default = "unset"
        else:
            default = f"`{info.default}`"
        rows.append(f"| `SDD_{name.upper()}` | {default} | {info.description or ''} |")
    return "\n".join(rows) + "\n"
