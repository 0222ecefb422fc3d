from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from sdd.protocol import CreateSessionRequest, ForceFailRequest, SessionOut
from sdd.server.api.deps import AdminUser, Ctx, CurrentUser, IdPath
from sdd.server.models import Session
from sdd.server.services import sessions as session_service
from sdd.server.services.errors import Conflict
from sdd.server.services.views import session_views

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(ctx: Ctx, user: CurrentUser, body: CreateSessionRequest | None = None) -> SessionOut:
    """Start a session on the given agent, or on the least-loaded online agent."""
    return await session_service.create_session(ctx, user, (body or CreateSessionRequest()).agent_id)


@router.get("")
async def list_sessions(ctx: Ctx, user: CurrentUser, all: bool = False) -> list[SessionOut]:
    """Your sessions, newest first. Admins may pass all=true to see everyone's."""
    async with ctx.db.read() as db:
        query = select(Session).order_by(Session.created_at.desc()).limit(500)
        if not (all and user.role == "admin"):
            query = query.where(Session.owner_id == user.id)
        return await session_views(db, (await db.execute(query)).scalars().all())


@router.get("/{session_id}")
async def get_session(ctx: Ctx, user: CurrentUser, session_id: IdPath) -> SessionOut:
    async with ctx.db.read() as db:
        session = await session_service.load_visible(db, user, session_id)
        return (await session_views(db, [session]))[0]


@router.post("/{session_id}/stop", status_code=status.HTTP_202_ACCEPTED)
async def stop_session(ctx: Ctx, user: CurrentUser, session_id: IdPath) -> SessionOut:
    return await session_service.stop_session(ctx, user, session_id)


@router.post("/{session_id}/fail")
async def force_fail(
    ctx: Ctx, admin: AdminUser, session_id: IdPath, body: ForceFailRequest | None = None
) -> SessionOut:
    """Admin: force a stuck session to FAILED (recorded in the audit log)."""
    reason = (body or ForceFailRequest()).reason
    view = await session_service.fail_session(ctx, session_id, reason, actor=admin.username)
    if view is None:
        raise Conflict(f"session {session_id} has already ended")
    return view
