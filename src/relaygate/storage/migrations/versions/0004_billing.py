"""billing: balances, key caps and limits, ledger, leases, prices, plans, packages,
redemption codes, usage aggregates, request-log cost columns

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("leased", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("group_name", sa.String(32), nullable=False, server_default="default")
        )
        batch.add_column(sa.Column("rpm_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("tpm_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("concurrency_limit", sa.Integer, nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("tpm_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("spend_limit", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("spent", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("leased", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("ip_allow", sa.JSON, nullable=True))
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("counts", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("package_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("billing", sa.String(16), nullable=True))
    op.create_index("ix_request_logs_key_created", "request_logs", ["key_id", "created_at"])

    op.create_table(
        "ledger",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(256), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("ref", sa.String(80), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ledger_user_id", "ledger", ["user_id", "id"])
    op.create_index("ux_ledger_ref", "ledger", ["ref"], unique=True)

    op.create_table(
        "balance_leases",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("target_id", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_balance_leases_owner", "balance_leases", ["owner"])

    op.create_table(
        "prices",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False, server_default="CNY"),
        sa.Column("per", sa.String(4), nullable=False, server_default="1m"),
        sa.Column("input", sa.String(32), nullable=False, server_default="0"),
        sa.Column("output", sa.String(32), nullable=False, server_default="0"),
        sa.Column("cached_input", sa.String(32), nullable=True),
        sa.Column("cache_write_5m", sa.String(32), nullable=True),
        sa.Column("cache_write_1h", sa.String(32), nullable=True),
        sa.Column("per_request", sa.String(32), nullable=True),
        sa.Column("per_image", sa.String(32), nullable=True),
        sa.Column("per_second", sa.String(32), nullable=True),
        sa.Column("context_window", sa.Integer, nullable=True),
        sa.Column("max_output", sa.Integer, nullable=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.String(256), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "price_groups",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("multiplier", sa.String(16), nullable=False, server_default="1"),
        sa.Column("description", sa.String(256), nullable=False, server_default=""),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quota", sa.BigInteger, nullable=True),
        sa.Column("period_days", sa.Integer, nullable=False, server_default="30"),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("model_multipliers", sa.JSON, nullable=True),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("tpm_limit", sa.Integer, nullable=True),
        sa.Column("daily_requests", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("description", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "user_packages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("plan_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quota", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("used", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("leased", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("period_days", sa.Integer, nullable=False, server_default="30"),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_user_packages_user", "user_packages", ["user_id"])
    op.create_table(
        "redemption_codes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("plan_id", sa.Integer, nullable=True),
        sa.Column("batch", sa.String(64), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="unused"),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.Integer, nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_redemption_codes_batch", "redemption_codes", ["batch"])
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("errors", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("counts", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("day", "user_id", "key_id", "model"),
    )


def downgrade() -> None:
    for table in (
        "usage_daily",
        "redemption_codes",
        "user_packages",
        "plans",
        "price_groups",
        "prices",
        "balance_leases",
        "ledger",
    ):
        op.drop_table(table)
    op.drop_index("ix_request_logs_key_created", table_name="request_logs")
    with op.batch_alter_table("request_logs") as batch:
        for col in ("billing", "package_id", "counts", "cost"):
            batch.drop_column(col)
    with op.batch_alter_table("api_keys") as batch:
        for col in ("ip_allow", "leased", "spent", "spend_limit", "tpm_limit"):
            batch.drop_column(col)
    with op.batch_alter_table("users") as batch:
        for col in (
            "concurrency_limit",
            "tpm_limit",
            "rpm_limit",
            "group_name",
            "leased",
            "balance",
        ):
            batch.drop_column(col)
