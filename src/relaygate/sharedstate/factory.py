"""Pick the shared state for a worker: Redis when ``RELAYGATE_REDIS_URL`` is set, else
in-process.

A Redis that does not answer at start-up is logged as an error and the worker runs with
in-process state (limits then hold per worker, not across workers) rather than not at
all. Reconnecting to Redis later, and reconciling what was held meanwhile, is issue 18.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.sharedstate.memory import InProcessState

__all__ = ["create_shared_state", "redact_url"]

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


async def create_shared_state(settings: Settings) -> SharedState:
    if not settings.redis_url:
        return InProcessState()
    where = redact_url(settings.redis_url)
    # imported only when configured: the redis client costs ~16 MiB of memory per worker
    from relaygate.sharedstate.redis import RedisState

    try:
        state = await RedisState.connect(settings.redis_url, prefix=settings.redis_prefix)
    except (SharedStateError, ValueError) as exc:  # ValueError: a malformed URL
        log.error(
            "Redis shared state unavailable: using in-process state, so limits hold per "
            "worker only until this worker restarts",
            extra={"redis_url": where, "error": str(exc)},
        )
        return InProcessState()
    log.info("shared state in Redis", extra={"redis_url": where, "prefix": settings.redis_prefix})
    return state
