"""shaping: per-model request-shaping rules on model routes (defaults, overrides, dropped
parameters, a system-prompt prefix; services/shaping.py)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_routes") as batch:
        batch.add_column(sa.Column("shaping", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_routes") as batch:
        batch.drop_column("shaping")
