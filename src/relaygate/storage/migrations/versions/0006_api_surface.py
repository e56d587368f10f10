"""api surface: objects created upstream through a channel (files, jobs, assistants, …) with
their owner and channel; media prices (per character, training tokens, per image by size and
quality)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_objects",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("channel_id", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.String(160), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("billed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_upstream_objects_owner", "upstream_objects", ["user_id", "kind", "created_at"]
    )
    with op.batch_alter_table("prices") as batch:
        batch.add_column(sa.Column("per_character", sa.String(32), nullable=True))
        batch.add_column(sa.Column("training", sa.String(32), nullable=True))
        batch.add_column(sa.Column("image_prices", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.drop_column("image_prices")
        batch.drop_column("training")
        batch.drop_column("per_character")
    op.drop_index("ix_upstream_objects_owner", "upstream_objects")
    op.drop_table("upstream_objects")
