"""Order inside a priority tier: weighted random, or sticky by an affinity key.

Both use one rule (Efraimidis–Spirakis): channel *i* gets the score
``log(u_i) / w_i`` for a uniform ``u_i`` in (0, 1) and the tier is tried in
descending score — the first choice is channel *i* with probability ``w_i / Σw``,
and the rest follow in the same weighted way. Without affinity ``u_i`` is
``random()``; with an affinity key it is a hash of (key, channel id), so one key
always gets the same order on every worker and node (rendezvous hashing: adding or
removing a channel moves only the keys that channel wins or loses) while the keys
as a whole still split by weight. A channel of weight 0 is a standby: it comes after
every weighted channel of its tier.

The affinity key (``affinity_key``) is the conversation a request belongs to — a
``X-Session-Id`` / ``X-Conversation-Id`` / ``X-Relaygate-Affinity`` header or the
body's ``prompt_cache_key`` — and, when ``RELAYGATE_AFFINITY=key``, the API key when no
conversation is named. ``off`` disables it.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from relaygate.storage.records import ChannelRecord

__all__ = ["AFFINITY_HEADERS", "AFFINITY_MODES", "affinity_key", "key_slot", "weighted_order"]

AFFINITY_MODES = ("off", "conversation", "key")
AFFINITY_HEADERS = (b"x-relaygate-affinity", b"x-session-id", b"x-conversation-id")
_MAX_KEY = 256  # longer affinity values are cut (they are hashed anyway)
_SCALE = float(1 << 64)


def affinity_key(
    mode: str, headers: Mapping[bytes, bytes], body: Mapping[str, Any], api_key_id: int
) -> str | None:
    """The request's affinity key under ``mode``, or None."""
    if mode == "off":
        return None
    for name in AFFINITY_HEADERS:
        value = headers.get(name)
        if value:
            return "c:" + value[:_MAX_KEY].decode("latin-1")
    cache_key = body.get("prompt_cache_key")
    if isinstance(cache_key, str) and cache_key:
        return "c:" + cache_key[:_MAX_KEY]
    if mode == "key":
        return f"k:{api_key_id}"
    return None


_MASK = (1 << 64) - 1


def _base(affinity: str) -> int:
    """The affinity key as a number, the same in every process (CRC-32: C speed; the
    mixing below spreads it)."""
    return zlib.crc32(affinity.encode())


def _unit(base: int, salt: int) -> float:
    """A uniform number in (0, 1) from (key, salt): SplitMix64's finaliser over the key's
    number and the salt — a few integer operations instead of a cryptographic hash per
    channel (the routing CPU budget, docs/performance.md)."""
    x = (base ^ (salt * 0x9E3779B97F4A7C15)) & _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return (x + 0.5) / _SCALE


def key_slot(affinity: str, channel_id: int, n: int) -> int:
    """Which of a channel's ``n`` upstream keys an affinity key sticks to."""
    return int(_unit(_base(affinity), -channel_id - 1) * n) % n


def weighted_order(
    tier: Sequence[ChannelRecord], affinity: str | None, rand: random.Random | None = None
) -> list[ChannelRecord]:
    """``tier`` (channels of one priority) in the order to try them."""
    if len(tier) == 1:
        return [tier[0]]
    draw = (rand or random).random
    base = _base(affinity) if affinity is not None else 0
    scored = []
    standby = []
    for ch in tier:
        if ch.weight <= 0:
            standby.append(ch)
            continue
        u = _unit(base, ch.id) if affinity is not None else draw() or 1e-300
        scored.append((math.log(u) / ch.weight, ch.id, ch))
    scored.sort(reverse=True)
    out = [s[2] for s in scored]
    if standby:
        if affinity is not None:
            standby.sort(key=lambda c: _unit(base, c.id), reverse=True)
        out.extend(standby)
    return out
