"""admin audit log: one row per state-changing admin call, through the admin API or the
console (docs/console.md, "Admin audit log")

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(64), nullable=False, server_default=""),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(256), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("fields", sa.String(512), nullable=False, server_default=""),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_admin_audit_created", "admin_audit", ["created_at"])
    op.create_index("ix_admin_audit_actor_created", "admin_audit", ["actor_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_audit_actor_created", "admin_audit")
    op.drop_index("ix_admin_audit_created", "admin_audit")
    op.drop_table("admin_audit")
