"""One typed settings object, read from the environment (``RELAYGATE_*``).

Every option is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ENVELOPE_FORMATS", "Settings"]


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


#: the client formats RELAYGATE_ENVELOPE_FORMATS may name
ENVELOPE_FORMATS = ("openai", "responses", "anthropic", "gemini")


def _envelope_formats() -> tuple[str, ...]:
    """RELAYGATE_ENVELOPE_FORMATS, checked: an unknown name stops the start."""
    raw = os.environ.get("RELAYGATE_ENVELOPE_FORMATS")
    if raw is None or not raw.strip():
        return ("openai", "responses")
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in ENVELOPE_FORMATS]
    if unknown:
        raise ValueError(
            f"RELAYGATE_ENVELOPE_FORMATS: unknown format {unknown[0]!r}; "
            f"use a comma-separated list of {', '.join(ENVELOPE_FORMATS)}"
        )
    if "openai" not in names:
        raise ValueError(
            "RELAYGATE_ENVELOPE_FORMATS must include openai: the OpenAI endpoints always "
            "follow RELAYGATE_ENVELOPE (set RELAYGATE_ENVELOPE=0 to turn the envelope off)"
        )
    return names


@dataclass(slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("data"))
    database_url: str = ""
    secret_key: str = ""  # Fernet/HMAC secret; generated into data_dir when empty
    envelope: bool = True  # add code/msg to non-streaming JSON responses
    #: the client formats whose non-stream bodies carry the envelope when it is on
    #: (openai, responses, anthropic, gemini; relay/envelope.py)
    envelope_formats: tuple[str, ...] = ("openai", "responses")
    openai_status_codes: bool = False  # use OpenAI's statuses instead of the seed table
    #: console sign-up as an admin set it at runtime (services/runtime_settings.py); None:
    #: RELAYGATE_CONSOLE_SIGNUP, which the console reads itself (console/config.py)
    console_signup: bool | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    #: multipart uploads (files, audio, image edits, video references): streamed to a spool
    #: file, never held whole in memory; over it: 413 (relay/multipart.py)
    max_upload_bytes: int = 512 * 1024 * 1024
    max_header_bytes: int = 64 * 1024  # request line + headers; over it: 431 (edge/protocol.py)
    max_headers: int = 100  # header fields per request; over it: 431
    header_timeout: float = 10.0  # to receive a complete request head; then 408
    body_timeout: float = 30.0  # longest silence while reading a request body; then 408
    max_inflight: int = 1024  # per worker; beyond it the gateway sheds load with 503
    connect_timeout: float = 10.0
    first_byte_timeout: float = 120.0  # until the upstream sends response headers
    read_timeout: float = 300.0  # max silence between upstream bytes
    log_level: str = "INFO"
    log_content: bool = False  # log request/response content (off: never)
    log_requests: bool = True  # write one usage-log row per request (background, batched)
    refresh_interval: float = 2.0  # how often workers check for config changes
    key_prefix: str = "sk-"
    trust_request_id: bool = True  # reuse a sane incoming X-Request-Id
    # relay core (routing, streams, shutdown, CORS)
    max_attempts: int = 3  # upstream attempts per request (channels tried before the first byte)
    sse_keepalive: float = 15.0  # ": keep-alive" to the client after this much silence; 0: off
    drain_seconds: float = 30.0  # on SIGTERM: let open requests finish this long, then cut them
    cors_origins: tuple[str, ...] = ("*",)  # origins allowed to call the model API; () = none
    extra_filters: tuple[str, ...] = ()  # "module:factory" filters added after the built-in ones
    http_client: str = "fast"  # upstream HTTP client: fast | aiohttp (see transport/factory.py)
    total_timeout: float = 1800.0  # whole upstream exchange, from sending to the last byte; 0: off
    max_upstream_body_bytes: int = 64 * 1024 * 1024  # largest non-streamed upstream body read
    ca_bundle: str = ""  # PEM file of trusted CAs for upstream TLS (empty: the system store)
    # channel health (docs/channel-health.md)
    channel_test_timeout: float = 15.0  # a channel test's whole exchange
    channel_test_interval: float = 60.0  # re-test auto-disabled channels this often; 0: off
    key_reject_ttl: float = 600.0  # an upstream key the upstream refused stays out this long
    # accounts and billing (docs/billing.md)
    api_key_prefix: str = "zk-"  # API keys (code, high concurrency); RELAYGATE_KEY_PREFIX too
    personal_key_prefix: str = "zp-"  # personal keys (one person in AI tools)
    personal_concurrency: int = 2  # default concurrency limit of a personal key
    billing: bool = True  # reserve, charge and refuse on exhausted balance; off: log only
    currency: str = "CNY"  # the operator's currency: balances and the ledger are in it
    usd_rate: str = "7.2"  # CNY per USD, to convert prices given in the other currency
    default_max_output: int = 4096  # output tokens reserved when a request sets no max_tokens
    lease_units: int = 10_000_000  # most a worker leases of one budget at once (10.00)
    tokenizer: str = "cl100k_base"  # local token counting vocabulary (billing/tokens.py)
    redis_url: str = ""  # shared state across workers and nodes (limits, reservations)
    redis_prefix: str = "rg:"  # of every Redis key (several installations on one Redis)
    local_limit_share: float = 0.0  # a worker's share of each limit without Redis (0: 1/N)
    log_retention_days: int = 0  # raw request rows kept this long; 0 = forever
    log_database_url: str = ""  # request rows in a separate database (empty: the main one)
    # routing and failover (docs/routing.md)
    retry_budget: float = 60.0  # no new attempt starts this long after the request began
    retry_after_max: float = 5.0  # longest upstream Retry-After waited for, last channel only
    breaker_failures: int = 5  # a run of this many failures opens a circuit
    breaker_rate: float = 0.5  # ... or this failure rate over the window,
    breaker_min_requests: int = 20  # once the window holds this many outcomes
    breaker_window: float = 30.0  # seconds
    breaker_cooldown: float = 10.0  # first open period; doubles on a failed probe
    breaker_max_cooldown: float = 300.0
    breaker_sync: float = 0.5  # how often a worker reads circuits other workers opened
    affinity: str = "conversation"  # off | conversation | key (routing/order.py)
    workers: int = 1  # worker processes on this node (set by `serve --workers`)

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("RELAYGATE_DATA_DIR", "data"))
        s = cls(
            data_dir=data_dir,
            database_url=os.environ.get("RELAYGATE_DATABASE_URL", ""),
            secret_key=os.environ.get("RELAYGATE_SECRET_KEY", ""),
            envelope=_flag("RELAYGATE_ENVELOPE", True),
            envelope_formats=_envelope_formats(),
            openai_status_codes=_flag("RELAYGATE_OPENAI_STATUS_CODES", False),
            max_body_bytes=_int("RELAYGATE_MAX_BODY_BYTES", 16 * 1024 * 1024),
            max_upload_bytes=_int("RELAYGATE_MAX_UPLOAD_BYTES", 512 * 1024 * 1024),
            max_header_bytes=_int("RELAYGATE_MAX_HEADER_BYTES", 64 * 1024),
            max_headers=_int("RELAYGATE_MAX_HEADERS", 100),
            header_timeout=_float("RELAYGATE_HEADER_TIMEOUT", 10.0),
            body_timeout=_float("RELAYGATE_BODY_TIMEOUT", 30.0),
            max_inflight=_int("RELAYGATE_MAX_INFLIGHT", 1024),
            connect_timeout=_float("RELAYGATE_CONNECT_TIMEOUT", 10.0),
            first_byte_timeout=_float("RELAYGATE_FIRST_BYTE_TIMEOUT", 120.0),
            read_timeout=_float("RELAYGATE_READ_TIMEOUT", 300.0),
            log_level=os.environ.get("RELAYGATE_LOG_LEVEL", "INFO").upper(),
            log_content=_flag("RELAYGATE_LOG_CONTENT", False),
            log_requests=_flag("RELAYGATE_LOG_REQUESTS", True),
            refresh_interval=_float("RELAYGATE_REFRESH_INTERVAL", 2.0),
            key_prefix=os.environ.get("RELAYGATE_KEY_PREFIX", "sk-"),
            api_key_prefix=os.environ.get(
                "RELAYGATE_API_KEY_PREFIX", os.environ.get("RELAYGATE_KEY_PREFIX", "zk-")
            ),
            personal_key_prefix=os.environ.get("RELAYGATE_PERSONAL_KEY_PREFIX", "zp-"),
            personal_concurrency=_int("RELAYGATE_PERSONAL_CONCURRENCY", 2),
            billing=_flag("RELAYGATE_BILLING", True),
            currency=os.environ.get("RELAYGATE_CURRENCY", "CNY").strip().upper(),
            usd_rate=os.environ.get("RELAYGATE_USD_RATE", "7.2").strip(),
            default_max_output=_int("RELAYGATE_DEFAULT_MAX_OUTPUT", 4096),
            lease_units=_int("RELAYGATE_LEASE_UNITS", 10_000_000),
            tokenizer=os.environ.get("RELAYGATE_TOKENIZER", "cl100k_base").strip(),
            redis_url=os.environ.get("RELAYGATE_REDIS_URL", "").strip(),
            redis_prefix=os.environ.get("RELAYGATE_REDIS_PREFIX", "rg:"),
            local_limit_share=_float("RELAYGATE_LOCAL_LIMIT_SHARE", 0.0),
            log_retention_days=_int("RELAYGATE_LOG_RETENTION_DAYS", 0),
            log_database_url=os.environ.get("RELAYGATE_LOG_DATABASE_URL", "").strip(),
            retry_budget=_float("RELAYGATE_RETRY_BUDGET", 60.0),
            retry_after_max=_float("RELAYGATE_RETRY_AFTER_MAX", 5.0),
            breaker_failures=_int("RELAYGATE_BREAKER_FAILURES", 5),
            breaker_rate=_float("RELAYGATE_BREAKER_RATE", 0.5),
            breaker_min_requests=_int("RELAYGATE_BREAKER_MIN_REQUESTS", 20),
            breaker_window=_float("RELAYGATE_BREAKER_WINDOW", 30.0),
            breaker_cooldown=_float("RELAYGATE_BREAKER_COOLDOWN", 10.0),
            breaker_max_cooldown=_float("RELAYGATE_BREAKER_MAX_COOLDOWN", 300.0),
            breaker_sync=_float("RELAYGATE_BREAKER_SYNC", 0.5),
            affinity=os.environ.get("RELAYGATE_AFFINITY", "conversation").strip().lower(),
            workers=max(1, _int("RELAYGATE_WORKERS", 1)),
            trust_request_id=_flag("RELAYGATE_TRUST_REQUEST_ID", True),
            max_attempts=_int("RELAYGATE_MAX_ATTEMPTS", 3),
            sse_keepalive=_float("RELAYGATE_SSE_KEEPALIVE", 15.0),
            drain_seconds=_float("RELAYGATE_DRAIN_SECONDS", 30.0),
            cors_origins=tuple(
                o.strip()
                for o in os.environ.get("RELAYGATE_CORS_ORIGINS", "*").split(",")
                if o.strip()
            ),
            extra_filters=tuple(
                f.strip() for f in os.environ.get("RELAYGATE_FILTERS", "").split(",") if f.strip()
            ),
            http_client=os.environ.get("RELAYGATE_HTTP_CLIENT", "fast").strip().lower(),
            total_timeout=_float("RELAYGATE_TOTAL_TIMEOUT", 1800.0),
            max_upstream_body_bytes=_int("RELAYGATE_MAX_UPSTREAM_BODY_BYTES", 64 * 1024 * 1024),
            ca_bundle=os.environ.get("RELAYGATE_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE", ""),
            channel_test_timeout=_float("RELAYGATE_CHANNEL_TEST_TIMEOUT", 15.0),
            channel_test_interval=_float("RELAYGATE_CHANNEL_TEST_INTERVAL", 60.0),
            key_reject_ttl=_float("RELAYGATE_KEY_REJECT_TTL", 600.0),
        )
        return s

    def resolved_log_database_url(self) -> str:
        """The request-log database's async URL; empty: the main database holds the log."""
        if not self.log_database_url:
            return ""
        return Settings(database_url=self.log_database_url).resolved_database_url()

    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # accept plain postgresql:// URLs and use the async driver
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            elif url.startswith("sqlite:///"):
                url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'relaygate.db').resolve()}"
