"""People: the first admin, sign-in, and user administration."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sdd.protocol import CreateUserRequest, Role, TokenResponse, UpdateUserRequest, UserOut
from sdd.server.models import AuditEvent, User, new_id
from sdd.server.services.context import ServerContext
from sdd.server.services.errors import Conflict, NotFound, Unauthorized
from sdd.server.services.security import generate_password, hash_password, verify_password

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user)


async def ensure_admin(ctx: ServerContext) -> str | None:
    """Create the `admin` user on first start. Returns its password if it was generated (for the
    caller to print once), else None."""
    async with ctx.db.write() as db:
        if await db.scalar(select(func.count()).select_from(User)):
            return None
        configured = ctx.settings.admin_password
        password = configured.get_secret_value() if configured else generate_password(20)
        db.add(
            User(
                id=new_id(),
                username=ADMIN_USERNAME,
                password_hash=hash_password(password),
                role=Role.ADMIN.value,
                is_active=True,
                token_version=0,
                created_at=datetime.now(UTC),
            )
        )
        db.add(AuditEvent(actor="system", action="user.create", target=ADMIN_USERNAME))
    return None if configured else password


async def login(ctx: ServerContext, username: str, password: str, address: str = "") -> TokenResponse:
    ctx.login_throttle.check(username, address)
    async with ctx.db.read() as db:
        user = await db.scalar(select(User).where(User.username == username))
    # verify_password runs the same argon2 work when the user does not exist: no enumeration by
    # message or by timing.
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        ctx.login_throttle.failed(username, address)
        async with ctx.db.write() as db:
            db.add(AuditEvent(actor=username[:64], action="auth.login_failed"))
        raise Unauthorized("wrong username or password")
    token, expires_at = ctx.signer.issue(user.id, user.token_version)
    async with ctx.db.write() as db:
        db.add(AuditEvent(actor=user.username, action="auth.login"))
    return TokenResponse(access_token=token, expires_at=expires_at)


async def create_user(ctx: ServerContext, request: CreateUserRequest, actor: str) -> UserOut:
    try:
        async with ctx.db.write() as db:
            user = User(
                id=new_id(),
                username=request.username,
                password_hash=hash_password(request.password),
                role=request.role.value,
                is_active=True,
                token_version=0,
                created_at=datetime.now(UTC),
            )
            db.add(user)
            await db.flush()
            db.add(
                AuditEvent(
                    actor=actor,
                    action="user.create",
                    target=user.username,
                    detail=f"role={request.role.value}",
                )
            )
    except IntegrityError:
        raise Conflict(f"the username {request.username!r} is taken; choose another") from None
    return user_out(user)


async def update_user(ctx: ServerContext, user_id: str, request: UpdateUserRequest, actor: User) -> UserOut:
    async with ctx.db.write() as db:
        user = await db.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id!r} not found")
        if user.id == actor.id and (request.role == Role.USER or request.is_active is False):
            raise Conflict("you cannot demote or disable yourself; ask another admin")
        changes = []
        if request.role is not None and request.role.value != user.role:
            user.role = request.role.value
            changes.append(f"role={user.role}")
        if request.is_active is not None and request.is_active != user.is_active:
            user.is_active = request.is_active
            changes.append(f"active={user.is_active}")
            user.token_version += 1
        if request.password is not None:
            user.password_hash = hash_password(request.password)
            user.token_version += 1
            changes.append("password")
        db.add(
            AuditEvent(
                actor=actor.username, action="user.update", target=user.username, detail=", ".join(changes)
            )
        )
        return user_out(user)


async def list_users(ctx: ServerContext) -> list[UserOut]:
    async with ctx.db.read() as db:
        return [user_out(u) for u in (await db.execute(select(User).order_by(User.created_at))).scalars()]


async def logout(ctx: ServerContext, user: User) -> None:
    """Revoke every token of this user issued so far."""
    async with ctx.db.write() as db:
        stored = await db.get(User, user.id)
        if stored is not None:
            stored.token_version += 1
            db.add(AuditEvent(actor=user.username, action="auth.logout"))
