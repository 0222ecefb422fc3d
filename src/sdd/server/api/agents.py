from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy import select

from sdd.protocol import AgentOut, CreateEnrollmentTokenRequest, EnrollmentTokenCreated, EnrollmentTokenOut
from sdd.server.api.deps import AdminUser, Ctx, CurrentUser, IdPath
from sdd.server.models import Agent
from sdd.server.services import agents as agent_service
from sdd.server.services.errors import NotFound
from sdd.server.services.views import agent_out

router = APIRouter(tags=["agents"])


@router.get("/agents")
async def list_agents(ctx: Ctx, user: CurrentUser) -> list[AgentOut]:
    async with ctx.db.read() as db:
        agents = (await db.execute(select(Agent).order_by(Agent.name, Agent.id))).scalars().all()
    return [agent_out(a, ctx.presence) for a in agents]


@router.get("/agents/{agent_id}")
async def get_agent(ctx: Ctx, user: CurrentUser, agent_id: IdPath) -> AgentOut:
    async with ctx.db.read() as db:
        agent = await db.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    return agent_out(agent, ctx.presence)


@router.delete("/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_agent(ctx: Ctx, admin: AdminUser, agent_id: IdPath) -> None:
    """Revoke an agent: its credential stops working at once, its frpc can no longer log in to frps,
    and its live sessions fail."""
    await agent_service.revoke_agent(ctx, admin, agent_id)


def _server_url(ctx: Ctx, request: Request) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


@router.post("/enrollment-tokens", status_code=status.HTTP_201_CREATED)
async def create_enrollment_token(
    ctx: Ctx, admin: AdminUser, request: Request, body: CreateEnrollmentTokenRequest | None = None
) -> EnrollmentTokenCreated:
    return await agent_service.create_enrollment_token(
        ctx, admin, body or CreateEnrollmentTokenRequest(), _server_url(ctx, request)
    )


@router.get("/enrollment-tokens")
async def list_enrollment_tokens(ctx: Ctx, admin: AdminUser) -> list[EnrollmentTokenOut]:
    return await agent_service.list_enrollment_tokens(ctx)


@router.delete("/enrollment-tokens/{token_id}")
async def revoke_enrollment_token(ctx: Ctx, admin: AdminUser, token_id: IdPath) -> EnrollmentTokenOut:
    return await agent_service.revoke_enrollment_token(ctx, admin, token_id)
