"""content safety: operator word lists (categories, actions, user groups), their words, and
the audit of every hit (docs/safety.md)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "safety_lists",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("category", sa.String(64), nullable=False, server_default=""),
        sa.Column("action", sa.String(8), nullable=False, server_default="block"),
        sa.Column("groups", sa.JSON, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("description", sa.String(512), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "safety_words",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column(
            "list_id",
            sa.Integer,
            sa.ForeignKey("safety_lists.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("word", sa.String(100), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("action", sa.String(8), nullable=True),
        sa.UniqueConstraint("list_id", "word", name="uq_safety_words_list_word"),
    )
    op.create_table(
        "safety_audit",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("list_id", sa.Integer, nullable=True),
        sa.Column("list_name", sa.String(64), nullable=False, server_default=""),
        sa.Column("category", sa.String(64), nullable=False, server_default=""),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("word", sa.String(100), nullable=False, server_default=""),
        sa.Column("where", sa.String(16), nullable=False),
        sa.Column("excerpt", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index("ix_safety_audit_created", "safety_audit", ["created_at"])
    op.create_index("ix_safety_audit_user_created", "safety_audit", ["user_id", "created_at"])
    op.create_index("ix_safety_audit_list_created", "safety_audit", ["list_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_safety_audit_list_created", table_name="safety_audit")
    op.drop_index("ix_safety_audit_user_created", table_name="safety_audit")
    op.drop_index("ix_safety_audit_created", table_name="safety_audit")
    op.drop_table("safety_audit")
    op.drop_table("safety_words")
    op.drop_table("safety_lists")
