"""Pick the shared state for a worker: Redis when ``RELAYGATE_REDIS_URL`` is set, else
in-process.

The Redis state is wrapped in ``fallback.py``'s :class:`FallbackState`: when Redis does not
answer (at start-up or later) the worker keeps serving with local limits (its share of each,
``RELAYGATE_LOCAL_LIMIT_SHARE``) and goes back to Redis, reconciling, once it answers.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.sharedstate.memory import InProcessState

__all__ = ["create_shared_state", "local_share", "redact_url"]

log = logging.getLogger("relaygate")


def redact_url(url: str) -> str:
    """``url`` without its password (safe to log)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


def local_share(settings: Settings) -> float:
    """The share of each limit one worker enforces while Redis is away:
    ``RELAYGATE_LOCAL_LIMIT_SHARE`` when set, else ``1 / RELAYGATE_WORKERS``."""
    share = settings.local_limit_share or 1.0 / max(1, settings.workers)
    return min(1.0, max(share, 0.0001))


async def create_shared_state(settings: Settings) -> SharedState:
    if not settings.redis_url:
        return InProcessState()
    where = redact_url(settings.redis_url)
    # imported only when configured: the redis client costs ~16 MiB of memory per worker
    from relaygate.sharedstate.fallback import FallbackState
    from relaygate.sharedstate.redis import RedisState

    try:
        primary = RedisState.create(settings.redis_url, prefix=settings.redis_prefix)
    except ValueError as exc:  # a malformed URL: nothing to come back to
        log.error(
            "RELAYGATE_REDIS_URL is not a Redis URL: using in-process state, so limits hold "
            "per worker only",
            extra={"redis_url": where, "error": str(exc)},
        )
        return InProcessState()
    share = local_share(settings)
    try:
        await primary.ping()
    except SharedStateError as exc:
        log.error(
            "Redis shared state unavailable at start-up: limits are enforced by each worker "
            "alone until it answers (checked every second)",
            extra={"redis_url": where, "error": str(exc), "local_limit_share": share},
        )
        return FallbackState(primary, share=share, up=False)
    log.info("shared state in Redis", extra={"redis_url": where, "prefix": settings.redis_prefix})
    return FallbackState(primary, share=share)
