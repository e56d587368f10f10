"""audio prices: per-token prices of realtime audio input and output tokens
(billing/prices.py token_cost; unset, audio tokens cost the text prices)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.add_column(sa.Column("audio_input", sa.String(32), nullable=True))
        batch.add_column(sa.Column("audio_output", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.drop_column("audio_output")
        batch.drop_column("audio_input")
