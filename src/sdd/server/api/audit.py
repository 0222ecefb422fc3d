from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from sdd.protocol import AuditEventOut
from sdd.server.api.deps import AdminUser, Ctx
from sdd.server.models import AuditEvent

router = APIRouter(tags=["audit"])


@router.get("/audit")
async def audit_log(
    ctx: Ctx,
    admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Only events with an id below this (paging).")
    ] = None,
    action: Annotated[
        str | None, Query(pattern=r"^[a-z_.]{1,64}$", description="e.g. session.stop, auth.login")
    ] = None,
) -> list[AuditEventOut]:
    """Who did what, newest first: sign-ins (and failed ones), session starts and stops, agent
    registrations and revocations, user and token administration, forced failures."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if action:
        query = query.where(AuditEvent.action == action)
    async with ctx.db.read() as db:
        return [AuditEventOut.model_validate(e) for e in (await db.execute(query)).scalars()]
