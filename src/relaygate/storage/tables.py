"""SQLAlchemy Core tables. Migrations in ``storage/migrations`` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["api_keys", "channels", "metadata", "request_logs", "revisions", "users"]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False, default="user"),  # user | admin
    Column("status", String(16), nullable=False, default="active"),  # active | disabled
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("kind", String(16), nullable=False, default="api"),  # api | personal | admin
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(32), nullable=False),  # prefix…last4, safe to display
    Column("status", String(16), nullable=False, default="active"),  # active | disabled | revoked
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("models", JSON, nullable=True),  # allow-list; null = every model
    Column("rpm_limit", Integer, nullable=True),  # requests per minute; null = no limit
    Column("concurrency_limit", Integer, nullable=True),  # requests at once; null = no limit
    Column("created_at", DateTime(timezone=True), nullable=False),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("provider", String(32), nullable=False),  # adaptor: openai_compat | anthropic
    Column("profile", String(32), nullable=False, default="openai"),
    Column("base_url", String(512), nullable=False),
    Column("keys_encrypted", Text, nullable=False),  # Fernet token of a JSON list of keys
    Column("models", JSON, nullable=False),  # public model names this channel serves
    Column("model_mapping", JSON, nullable=False),  # public name -> upstream name
    Column("priority", Integer, nullable=False, default=0),
    Column("weight", Integer, nullable=False, default=1),
    Column("status", String(16), nullable=False, default="enabled"),  # enabled | disabled
    Column("config", JSON, nullable=False),  # provider extras (api_version, …)
    Column("is_emulator", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# one row per config domain; bumping it tells every worker to reload its snapshot
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

request_logs = Table(
    "request_logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user_id", Integer, nullable=True),
    Column("key_id", Integer, nullable=True),
    Column("endpoint", String(32), nullable=False),
    Column("model", String(128), nullable=True),
    Column("channel_id", Integer, nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("ttft_ms", Integer, nullable=True),
    Column("cached_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("reasoning_tokens", Integer, nullable=False, default=0, server_default="0"),
    # unique per recorded row (writer tag + sequence): a row replayed from the spool after a
    # crash is inserted once (ON CONFLICT DO NOTHING); NULL for rows written before 0003
    Column("log_uid", String(40), nullable=True),
)

Index("ix_request_logs_user_created", request_logs.c.user_id, request_logs.c.created_at)
Index("ix_request_logs_created", request_logs.c.created_at)
Index("ux_request_logs_log_uid", request_logs.c.log_uid, unique=True)
