"""Typed dependencies: who is asking, and the server's parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sdd.protocol import ID_PATTERN, Role
from sdd.server.models import User
from sdd.server.services import agents as agent_service
from sdd.server.services.context import AgentIdentity, ServerContext
from sdd.server.services.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="A login token from POST /api/auth/login")


async def get_context(request: Request) -> ServerContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread hop on
    # every request for a dictionary lookup.
    context: ServerContext = request.app.state.context
    return context


Ctx = Annotated[ServerContext, Depends(get_context)]

IdPath = Annotated[str, Path(pattern=ID_PATTERN, description="An id the server handed out")]
"""An id in a path: anything else is a 422 before it reaches the database."""


async def user_from_token(ctx: ServerContext, token: str | None) -> User:
    refused = Unauthorized("not signed in, or the sign-in has expired; POST /api/auth/login")
    if not token:
        raise refused
    claims = ctx.signer.verify(token)
    if claims is None:
        raise refused
    async with ctx.db.read() as db:
        user = await db.get(User, claims.user_id)
    # A disabled user, a changed password or a logout bumps token_version: old tokens die at once.
    if user is None or not user.is_active or user.token_version != claims.token_version:
        raise refused
    return user


async def get_current_user(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    return await user_from_token(ctx, credentials.credentials if credentials else None)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin(user: CurrentUser) -> User:
    if user.role != Role.ADMIN.value:
        raise Forbidden("this needs an admin")
    return user


AdminUser = Annotated[User, Depends(get_admin)]


async def get_current_agent(
    ctx: Ctx,
    authorization: Annotated[str | None, Header(description="Bearer <agent id>:<credential>")] = None,
) -> AgentIdentity:
    return await agent_service.authenticate(ctx, authorization)


CurrentAgent = Annotated[AgentIdentity, Depends(get_current_agent)]
