"""request log: cached and reasoning tokens, and a unique row id for idempotent replay

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("log_uid", sa.String(40), nullable=True))
    op.create_index("ux_request_logs_log_uid", "request_logs", ["log_uid"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_request_logs_log_uid", table_name="request_logs")
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("log_uid")
        batch.drop_column("reasoning_tokens")
        batch.drop_column("cached_tokens")
