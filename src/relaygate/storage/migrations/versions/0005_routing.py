"""routing: why the gateway changed a channel's status, the attempt chain of a logged request,
model routes (aliases, fallback chains, per-model hedging)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("status_reason", sa.String(256), nullable=True))
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("attempts", sa.Text, nullable=True))
    op.create_table(
        "model_routes",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("fallbacks", sa.JSON, nullable=False),
        sa.Column("hedge_after_ms", sa.Integer, nullable=True),
        sa.Column("description", sa.String(512), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_routes")
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("attempts")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("status_reason")
