from __future__ import annotations

from fastapi import APIRouter, status

from sdd.protocol import CreateUserRequest, UpdateUserRequest, UserOut
from sdd.server.api.deps import AdminUser, Ctx, IdPath
from sdd.server.services import users as user_service

router = APIRouter(prefix="/users", tags=["users"])


@router.get("")
async def list_users(ctx: Ctx, admin: AdminUser) -> list[UserOut]:
    return await user_service.list_users(ctx)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(ctx: Ctx, admin: AdminUser, body: CreateUserRequest) -> UserOut:
    return await user_service.create_user(ctx, body, admin.username)


@router.patch("/{user_id}")
async def update_user(ctx: Ctx, admin: AdminUser, user_id: IdPath, body: UpdateUserRequest) -> UserOut:
    return await user_service.update_user(ctx, user_id, body, admin)
