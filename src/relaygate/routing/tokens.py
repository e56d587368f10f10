"""Short-lived upstream tokens (Baidu OAuth access tokens, Google service-account
tokens, Zhipu JWTs), resolved for adaptors so they stay free of I/O.

An adaptor that is a ``TokenSource`` builds the token request and parses the
answer; this cache sends it on the shared transport, once per (channel, key) at a
time (concurrent requests wait for the same exchange), and keeps the token until
``REFRESH_MARGIN`` seconds before it expires. A ``LocalTokenSource`` (JWT) is
computed here and cached the same way. Adaptors and channels that need no token
are remembered, so the common path is one set lookup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from relaygate.errors import RelayError
from relaygate.providers.base import Adaptor, LocalTokenSource, Target, TokenSource
from relaygate.transport.base import Transport

__all__ = ["REFRESH_MARGIN", "TOKEN_EXPIRED", "TokenCache"]

#: a cached token is renewed this long before it expires
REFRESH_MARGIN = 60.0
#: the error code an adaptor gives an upstream answer saying the token it was sent is
#: invalid or expired (Baidu ``error_code`` 110/111: ``providers/baidu_errors.py``): the
#: relay drops the token and retries once (:meth:`TokenCache.renew`, used by ``relay/attempt.py``
#: and the channel tests of ``routing/health.py``)
TOKEN_EXPIRED = "upstream_token_expired"

_Key = tuple[int, str, str]  # channel id, profile, upstream key


class TokenCache:
    def __init__(self, transport: Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self._transport = transport
        self._clock = clock
        self._tokens: dict[_Key, tuple[str, float]] = {}  # -> (token, renew at)
        self._pending: dict[_Key, asyncio.Future[tuple[str, float]]] = {}
        self._plain: set[tuple[str, int, str]] = set()  # (adaptor, channel, profile): no token

    async def resolve(self, adaptor: Adaptor, target: Target) -> Target:
        """``target`` with its short-lived token filled in (unchanged when none)."""
        plain_key = (adaptor.name, target.channel_id, target.profile)
        if plain_key in self._plain:
            return target
        key = (target.channel_id, target.profile, target.api_key)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > self._clock():
            return dataclasses.replace(target, token=cached[0])
        if isinstance(adaptor, LocalTokenSource):
            made = adaptor.local_token(target, time.time())
            if made is None:
                self._plain.add(plain_key)
                return target
            return dataclasses.replace(target, token=self._keep(key, made))
        if isinstance(adaptor, TokenSource):
            token = await self._exchange(adaptor, target, key)
            if token is None:
                self._plain.add(plain_key)
                return target
            return dataclasses.replace(target, token=token)
        self._plain.add(plain_key)
        return target

    @staticmethod
    def refused(err: RelayError, target: Target) -> bool:
        """True when ``err`` is the upstream refusing the cached short-lived token ``target``
        carried (expired early, revoked): worth one more try after :meth:`renew`."""
        return err.code == TOKEN_EXPIRED and target.token is not None

    async def renew(self, adaptor: Adaptor, target: Target) -> Target:
        """``target`` with a fresh token, its refused one dropped first."""
        self.invalidate(target)
        return await self.resolve(adaptor, target)

    def invalidate(self, target: Target) -> bool:
        """Drop ``target``'s cached token if it is still the one ``target`` carries (a
        token another request has renewed meanwhile is kept). True when one was dropped."""
        key = (target.channel_id, target.profile, target.api_key)
        cached = self._tokens.get(key)
        if cached is None or target.token is None or cached[0] != target.token:
            return False
        del self._tokens[key]
        return True

    def _keep(self, key: _Key, made: tuple[str, float]) -> str:
        token, expires_in = made
        renew_at = self._clock() + max(expires_in - REFRESH_MARGIN, expires_in / 2, 0.0)
        self._tokens[key] = (token, renew_at)
        return token

    async def _exchange(self, adaptor: TokenSource, target: Target, key: _Key) -> str | None:
        pending = self._pending.get(key)
        if pending is not None:
            return (await asyncio.shield(pending))[0]
        ureq = adaptor.token_request(target)
        if ureq is None:
            return None
        fut: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            async with self._transport.request(ureq, stream=False) as resp:
                raw = await resp.read()
                status = resp.status
            made = adaptor.token_response(target, status, raw)
            token = self._keep(key, made)
            fut.set_result((token, made[1]))
            return token
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            del self._pending[key]
