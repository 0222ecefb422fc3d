from __future__ import annotations

from fastapi import APIRouter, Request, status

from sdd import __version__
from sdd.protocol import (
    CreateUserRequest,
    LoginRequest,
    RegisterUserRequest,
    Role,
    ServerInfo,
    TokenResponse,
    UserOut,
)
from sdd.server.api.deps import Ctx, CurrentUser
from sdd.server.services import users as user_service
from sdd.server.services.errors import Forbidden

router = APIRouter(tags=["auth"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/info")
async def info(ctx: Ctx) -> ServerInfo:
    return ServerInfo(version=__version__, registration_open=ctx.settings.registration_open)


@router.post("/auth/login")
async def login(ctx: Ctx, body: LoginRequest, request: Request) -> TokenResponse:
    address = request.client.host if request.client else ""
    return await user_service.login(ctx, body.username, body.password, address)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(ctx: Ctx, user: CurrentUser) -> None:
    await user_service.logout(ctx, user)


@router.get("/auth/me")
async def me(user: CurrentUser) -> UserOut:
    return user_service.user_out(user)


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(ctx: Ctx, body: RegisterUserRequest) -> UserOut:
    if not ctx.settings.registration_open:
        raise Forbidden("registration is closed on this server; ask an admin to create your account")
    return await user_service.create_user(
        ctx, CreateUserRequest(username=body.username, password=body.password, role=Role.USER), body.username
    )
