"""runtime settings: values an admin changed from the console or the admin API, applied on
top of the environment by every worker (docs/configuration.md, "Runtime settings")

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("runtime_settings")
