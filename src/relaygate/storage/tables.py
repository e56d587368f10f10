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
    UniqueConstraint,
    false,
    true,
)

__all__ = [
    "api_keys",
    "balance_leases",
    "channels",
    "ledger",
    "metadata",
    "model_routes",
    "plans",
    "price_groups",
    "prices",
    "redemption_codes",
    "request_logs",
    "revisions",
    "safety_audit",
    "safety_lists",
    "safety_words",
    "upstream_objects",
    "usage_daily",
    "user_packages",
    "users",
]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False, default="user"),  # user | admin
    Column("status", String(16), nullable=False, default="active"),  # active | disabled
    Column("created_at", DateTime(timezone=True), nullable=False),
    # money in minor units (docs/billing.md): committed balance; part of it leased to workers
    Column("balance", BigInteger, nullable=False, default=0, server_default="0"),
    Column("leased", BigInteger, nullable=False, default=0, server_default="0"),
    Column("group_name", String(32), nullable=False, default="default", server_default="default"),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("concurrency_limit", Integer, nullable=True),
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
    Column("tpm_limit", Integer, nullable=True),  # tokens per minute; null = no limit
    Column("spend_limit", BigInteger, nullable=True),  # spending cap in minor units; null = none
    Column("spent", BigInteger, nullable=False, default=0, server_default="0"),
    Column("leased", BigInteger, nullable=False, default=0, server_default="0"),
    Column("ip_allow", JSON, nullable=True),  # IPs / CIDRs; null = any address
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
    # enabled | disabled | auto_disabled (set by the gateway)
    Column("status", String(16), nullable=False, default="enabled"),
    Column("config", JSON, nullable=False),  # provider extras (api_version, …)
    Column("is_emulator", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # why the gateway last changed the status (auto-disable); None after an operator's change
    Column("status_reason", String(256), nullable=True),
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
    Column("cost", BigInteger, nullable=False, default=0, server_default="0"),  # minor units
    Column("counts", BigInteger, nullable=False, default=0, server_default="0"),  # package use
    Column("package_id", Integer, nullable=True),
    Column("billing", String(16), nullable=True),  # how it was paid (billing/charges.py)
    # JSON array of the attempts (context.Attempt.to_json) when there was more than one
    Column("attempts", Text, nullable=True),
    # JSON object of an online request's search: {"status", "hits", "ms"} (online/stage.py)
    Column("search", Text, nullable=True),
)

Index("ix_request_logs_user_created", request_logs.c.user_id, request_logs.c.created_at)
Index("ix_request_logs_created", request_logs.c.created_at)
Index("ux_request_logs_log_uid", request_logs.c.log_uid, unique=True)
Index("ix_request_logs_key_created", request_logs.c.key_id, request_logs.c.created_at)

_BIG = BigInteger().with_variant(Integer, "sqlite")

# append-only: every credit and debit of a user's balance (docs/billing.md)
ledger = Table(
    "ledger",
    metadata,
    Column("id", _BIG, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # charge | topup | redeem | adjust | grant
    Column("amount", BigInteger, nullable=False),  # signed minor units (debits negative)
    Column("balance_after", BigInteger, nullable=False),
    Column("reason", String(256), nullable=False, default="", server_default=""),
    Column("request_id", String(64), nullable=True),
    Column("key_id", Integer, nullable=True),
    Column("ref", String(80), nullable=True),  # idempotency reference (unique)
    Column("actor", String(64), nullable=True),  # admin username / "system"
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_ledger_user_id", ledger.c.user_id, ledger.c.id)
Index("ux_ledger_ref", ledger.c.ref, unique=True)

# a share of a budget (user balance, key cap, package) a worker may spend without a
# database round trip; id = "<owner>:<scope>:<target id>"
balance_leases = Table(
    "balance_leases",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("scope", String(8), nullable=False),  # user | key | pkg
    Column("target_id", Integer, nullable=False),
    Column("owner", String(40), nullable=False),  # the worker (request-log writer uid)
    Column("amount", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
)
Index("ix_balance_leases_owner", balance_leases.c.owner)

# prices are decimal strings (exact); billing/prices.py compiles them to minor units
prices = Table(
    "prices",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("provider", String(64), nullable=False, default="", server_default=""),
    Column("currency", String(3), nullable=False, default="CNY", server_default="CNY"),
    Column("per", String(4), nullable=False, default="1m", server_default="1m"),  # 1k | 1m
    Column("input", String(32), nullable=False, default="0", server_default="0"),
    Column("output", String(32), nullable=False, default="0", server_default="0"),
    Column("cached_input", String(32), nullable=True),
    Column("cache_write_5m", String(32), nullable=True),
    Column("cache_write_1h", String(32), nullable=True),
    Column("per_request", String(32), nullable=True),
    Column("per_image", String(32), nullable=True),
    Column("per_second", String(32), nullable=True),
    Column("per_character", String(32), nullable=True),  # speech input, per character
    Column("training", String(32), nullable=True),  # fine-tuning, per `per` tokens
    Column("audio_input", String(32), nullable=True),  # realtime audio, per `per` tokens
    Column("audio_output", String(32), nullable=True),
    Column("image_prices", JSON, nullable=True),  # {"1024x1024/hd": "0.08", "1024x1024": …}
    Column("context_window", Integer, nullable=True),
    Column("max_output", Integer, nullable=True),
    Column("description", Text, nullable=False, default="", server_default=""),
    Column("source", String(256), nullable=False, default="", server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

price_groups = Table(
    "price_groups",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("multiplier", String(16), nullable=False, default="1", server_default="1"),
    Column("description", String(256), nullable=False, default="", server_default=""),
)

# 套餐 definitions: counts (each request uses counts), unlimited (fair use), credit (monthly)
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # counts | unlimited | credit
    Column("quota", BigInteger, nullable=True),  # counts, or credit in minor units, per period
    Column("period_days", Integer, nullable=False, default=30, server_default="30"),
    Column("models", JSON, nullable=True),  # models it covers; null = all
    Column("model_multipliers", JSON, nullable=True),  # model -> counts per request
    Column("rpm_limit", Integer, nullable=True),  # fair use
    Column("tpm_limit", Integer, nullable=True),
    Column("daily_requests", Integer, nullable=True),
    Column("status", String(16), nullable=False, default="active", server_default="active"),
    Column("description", String(256), nullable=False, default="", server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# a plan held by a user: budget = quota - used - leased (counts or minor units)
user_packages = Table(
    "user_packages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("plan_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("quota", BigInteger, nullable=False, default=0, server_default="0"),
    Column("used", BigInteger, nullable=False, default=0, server_default="0"),
    Column("leased", BigInteger, nullable=False, default=0, server_default="0"),
    Column("period_days", Integer, nullable=False, default=30, server_default="30"),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False, default="active", server_default="active"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_user_packages_user", user_packages.c.user_id)

redemption_codes = Table(
    "redemption_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("amount", BigInteger, nullable=False, default=0, server_default="0"),
    Column("plan_id", Integer, nullable=True),  # a code may grant a plan instead of money
    Column("batch", String(64), nullable=False, default="", server_default=""),
    Column("status", String(16), nullable=False, default="unused", server_default="unused"),
    Column("created_by", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("used_by", Integer, nullable=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)
Index("ix_redemption_codes_batch", redemption_codes.c.batch)

# daily aggregates kept after raw request rows expire (retention)
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("user_id", Integer, primary_key=True),
    Column("key_id", Integer, primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("requests", BigInteger, nullable=False, default=0, server_default="0"),
    Column("errors", BigInteger, nullable=False, default=0, server_default="0"),
    Column("prompt_tokens", BigInteger, nullable=False, default=0, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, default=0, server_default="0"),
    Column("cost", BigInteger, nullable=False, default=0, server_default="0"),
    Column("counts", BigInteger, nullable=False, default=0, server_default="0"),
)

# model aliases and fallback chains (services/routes.py): a request for ``name`` is served by
# name's own channels, then by each fallback in order
model_routes = Table(
    "model_routes",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("fallbacks", JSON, nullable=False),  # ordered list of model names
    Column("hedge_after_ms", Integer, nullable=True),  # hedging threshold; null = no hedging
    Column("description", String(512), nullable=False, default="", server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # request-shaping rules of requests for this model (services/shaping.py); null = none
    Column("shaping", JSON, nullable=True),
)

# an object created upstream through a channel (a file, a fine-tuning job, an assistant, a
# thread, a run, a vector store, a batch, a video): later calls on it go to that channel, and
# only its owner sees it (relay/objects.py). ``data`` is the last answer seen for it (list
# endpoints serve it); ``billed`` is set once its deferred charge (job, run, batch, video) is made.
upstream_objects = Table(
    "upstream_objects",
    metadata,
    Column("id", String(160), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("key_id", Integer, nullable=True),
    Column("channel_id", Integer, nullable=False),
    Column("parent_id", String(160), nullable=True),
    Column("model", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=True),
    Column("billed", Boolean, nullable=False, default=False, server_default=false()),
    Column("deleted", Boolean, nullable=False, default=False, server_default=false()),
)

Index(
    "ix_upstream_objects_owner",
    upstream_objects.c.user_id,
    upstream_objects.c.kind,
    upstream_objects.c.created_at,
)

# content safety (docs/safety.md): operator word lists, their words, and the audit of hits.
# A list's ``groups`` is a JSON array of user groups it applies to (null = every group); a
# word's ``category``/``action`` override the list's (null = the list's; CSV imports set them)
safety_lists = Table(
    "safety_lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("category", String(64), nullable=False, default="", server_default=""),
    Column("action", String(8), nullable=False, default="block", server_default="block"),
    Column("groups", JSON, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True, server_default=true()),
    Column("description", String(512), nullable=False, default="", server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

safety_words = Table(
    "safety_words",
    metadata,
    Column("id", _BIG, primary_key=True, autoincrement=True),
    Column(
        "list_id",
        Integer,
        ForeignKey("safety_lists.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("word", String(100), nullable=False),  # the text as entered (trimmed)
    Column("category", String(64), nullable=True),
    Column("action", String(8), nullable=True),
    UniqueConstraint("list_id", "word", name="uq_safety_words_list_word"),
)

# one row per hit (safety/audit.py writes them in background batches); ``where`` is
# prompt | answer | stream | reasoning | tool | search | moderation
safety_audit = Table(
    "safety_audit",
    metadata,
    Column("id", _BIG, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("user_id", Integer, nullable=True),
    Column("key_id", Integer, nullable=True),
    Column("model", String(128), nullable=True),
    Column("list_id", Integer, nullable=True),  # no foreign key: rows outlive their list
    Column("list_name", String(64), nullable=False, default="", server_default=""),
    Column("category", String(64), nullable=False, default="", server_default=""),
    Column("action", String(8), nullable=False),
    Column("word", String(100), nullable=False, default="", server_default=""),
    Column("where", String(16), nullable=False),
    Column("excerpt", String(200), nullable=False, default="", server_default=""),
)

Index("ix_safety_audit_created", safety_audit.c.created_at)
Index("ix_safety_audit_user_created", safety_audit.c.user_id, safety_audit.c.created_at)
Index("ix_safety_audit_list_created", safety_audit.c.list_id, safety_audit.c.created_at)
