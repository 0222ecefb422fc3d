"""frps's server-plugin hooks: frps asks the control plane before it admits a frpc or opens a proxy.

- `Login`: only enrolled, unrevoked agents (their id and credential travel in frpc's
  `metadatas`) may connect.
- `NewProxy`: an agent may only open the remote port (tcp) or subdomain (http) of one of its own
  live sessions.
- `Ping`: a revoked agent's frpc is turned away at its next ping.

frps reaches this route at `/api/frp/plugin/<SDD_FRP_PLUGIN_SECRET>`: frps cannot send a bearer
token, so the secret is in the path (and is compared in constant time).
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from sdd.protocol import ID_PATTERN, LIVE_SESSION_STATUSES
from sdd.server.api.deps import Ctx
from sdd.server.models import Session
from sdd.server.services import agents as agent_service
from sdd.server.services.errors import NotFound, ServiceError

router = APIRouter(tags=["frp"], include_in_schema=False)

LIVE = [s.value for s in LIVE_SESSION_STATUSES]


class PluginRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str = ""
    op: str
    content: dict[str, Any]


def _allow() -> dict[str, Any]:
    return {"reject": False, "unchange": True}


def _reject(reason: str) -> dict[str, Any]:
    return {"reject": True, "reject_reason": reason}


@router.post("/api/frp/plugin/{secret}")
async def frp_plugin(ctx: Ctx, secret: str, body: PluginRequest) -> dict[str, Any]:
    expected = ctx.settings.frp_plugin_secret
    if expected is None or not hmac.compare_digest(secret, expected.get_secret_value()):
        raise NotFound("not found")
    content = body.content
    metas = content.get("metas") if body.op == "Login" else (content.get("user") or {}).get("metas")
    metas = metas or {}
    agent_id, credential = str(metas.get("agent_id", "")), str(metas.get("credential", ""))
    if not re.fullmatch(ID_PATTERN, agent_id) or "\x00" in credential:
        return _reject("not an enrolled SDD agent: malformed agent_id or credential metadata")
    try:
        agent = await agent_service.authenticate(ctx, f"Bearer {agent_id}:{credential}")
    except ServiceError as exc:
        return _reject(f"not an enrolled SDD agent: {exc.detail}")
    if body.op != "NewProxy":
        return _allow()
    async with ctx.db.read() as db:
        rows = (
            await db.execute(
                select(Session.remote_port, Session.subdomain).where(
                    Session.agent_id == agent.id, Session.status.in_(LIVE)
                )
            )
        ).all()
    proxy_type = content.get("proxy_type")
    if proxy_type == "tcp":
        port = content.get("remote_port")
        if any(row.remote_port == port for row in rows):
            return _allow()
        return _reject(f"remote port {port} is not allocated to a live session of agent {agent.name}")
    if proxy_type == "http":
        subdomain = content.get("subdomain")
        if subdomain and any(row.subdomain == subdomain for row in rows):
            return _allow()
        return _reject(f"subdomain {subdomain!r} is not allocated to a live session of agent {agent.name}")
    return _reject(f"proxy type {proxy_type!r} is not used by SDD")
