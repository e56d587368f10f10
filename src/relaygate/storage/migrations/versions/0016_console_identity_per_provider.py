"""console sign-in identities: at most one identity per provider for a user (a unique index
on user and provider, which also serves the lookups by user that the old index did), so two
links of different identities of one provider at the same moment cannot both be saved
(docs/console.md, "Linking")

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_console_identities_user_provider",
        "console_identities",
        ["user_id", "provider"],
        unique=True,
    )
    op.drop_index("ix_console_identities_user", "console_identities")


def downgrade() -> None:
    op.create_index("ix_console_identities_user", "console_identities", ["user_id"])
    op.drop_index("uq_console_identities_user_provider", "console_identities")
