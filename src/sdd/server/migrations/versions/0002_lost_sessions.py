"""Sessions may be LOST (their agent offline): the live-port index covers them too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = "status IN ('PENDING', 'STARTING', 'ACTIVE', 'STOPPING')"
NEW = "status IN ('PENDING', 'STARTING', 'ACTIVE', 'LOST', 'STOPPING')"


def _recreate(where: str) -> None:
    op.drop_index("uq_sessions_live_remote_port", table_name="sessions")
    op.create_index(
        "uq_sessions_live_remote_port",
        "sessions",
        ["remote_port"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    _recreate(NEW)


def downgrade() -> None:
    _recreate(OLD)
