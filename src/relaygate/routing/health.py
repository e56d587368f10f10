"""Channel health: upstream keys taken out of rotation, auto-disable, channel tests.

:class:`ChannelHealth` holds three things (``docs/channel-health.md``):

* **Rejected upstream keys.** The attempt loop calls :meth:`ChannelHealth.key_rejected`
  when the upstream refuses a key's credentials (the adaptor's ``upstream_auth_failed``,
  see :func:`is_key_rejection`). The key leaves rotation for ``RELAYGATE_KEY_REJECT_TTL``
  seconds, in this worker at once and in every other worker and node within about a
  second (``routing/rejected.py``: one value in the shared state, read by a background
  loop). The router asks
  :meth:`ChannelHealth.usable_keys` / :meth:`ChannelHealth.is_rejected`: memory only.
* **Auto-disable.** When every key of a channel is rejected (or a channel without keys
  is), the channel is set ``auto_disabled`` with a reason and the catalog reloaded, so it
  leaves rotation at once.
* **Channel tests.** :meth:`ChannelHealth.test` sends one minimal chat request ("ping",
  ``max_tokens`` 1) and reports the status, latency and error (an upstream that refuses the
  cached short-lived token, Baidu's 110/111, gets one more try with a fresh token, as a
  relayed request does); the admin API's
  ``POST /admin/api/channels/{id}/test`` and the scheduler (:meth:`ChannelHealth.run_scheduled`)
  use it. The scheduler re-tests ``auto_disabled`` channels every
  ``RELAYGATE_CHANNEL_TEST_INTERVAL`` seconds and re-enables one that works again; one
  worker or node runs a round at a time. Channels the operator disabled are never touched.

Upstream keys never leave the worker: the shared state holds a hash of each
rejected key, and logs name keys by their position in the channel's list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relaygate.catalog import Catalog
from relaygate.errors import RelayError, UpstreamTimeout
from relaygate.providers.base import Adaptor, Target
from relaygate.providers.registry import AdaptorRegistry
from relaygate.routing.rejected import RejectedKeys
from relaygate.routing.tokens import TokenCache
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.storage.records import ChannelRecord
from relaygate.transport.base import Transport

__all__ = [
    "AUTH_FAILED",
    "ChannelHealth",
    "ChannelStatusStore",
    "ProbeResult",
    "TargetBuilder",
    "is_key_rejection",
]

log = logging.getLogger("relaygate.health")

#: the error code adaptors give an upstream 401/403 (providers/base.py ``error_from_status``)
AUTH_FAILED = "upstream_auth_failed"
#: the shared-state counter that lets one worker or node run a scheduled round
ROUND_KEY = "health:round"
#: status_reason is a String(256) column
_REASON_MAX = 256


def is_key_rejection(err: RelayError) -> bool:
    """Whether ``err`` means the upstream refused the channel's credentials (401/403)."""
    return err.code == AUTH_FAILED


class ChannelStatusStore(Protocol):
    """What health needs of ``storage/channels.py`` ``ChannelStore``."""

    async def get(self, channel_id: int) -> ChannelRecord | None: ...

    async def set_status(
        self, channel_id: int, status: str, reason: str | None
    ) -> ChannelRecord | None: ...


class TargetBuilder(Protocol):
    """What health needs of ``routing/router.py`` ``Router``: the Target of one attempt on
    ``channel`` for ``model`` (model mapping applied). Health replaces ``api_key`` when it
    tests a given key, so ``target`` must build a Target even when every key is rejected."""

    def target(self, channel: ChannelRecord, model: str) -> Target: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one channel test."""

    channel_id: int
    model: str
    ok: bool
    status: int  # the upstream's HTTP status; 0 when none arrived
    latency_ms: int
    error_code: str | None = None
    error_message: str | None = None

    def to_public(self) -> dict[str, Any]:
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message or ""}
        return {
            "channel_id": self.channel_id,
            "model": self.model,
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": error,
        }


class ChannelHealth:
    """Rejected keys, auto-disable and channel tests of one worker (see the module doc).

    Contract for the relay and the router:

    * ``await key_rejected(channel, key, status=..., message=...)`` after an attempt failed
      with :func:`is_key_rejection`. Never raises. Usually returns after one shared-state
      round trip; when it disables the channel it also writes the status and reloads the
      catalog (only then is the database involved).
    * ``usable_keys(channel)`` — the channel's keys in their configured order minus the
      rejected ones (``channel.keys`` itself when none is rejected; ``()`` when all are).
    * ``is_rejected(channel_id, key)`` — one dict lookup in the common case.

    Both are memory-only and safe to call on every request. ``await reset(channel_id)``
    puts every key of a channel back into rotation in every worker.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        channels: ChannelStatusStore,
        router: TargetBuilder,
        adaptors: AdaptorRegistry,
        tokens: TokenCache,
        transport: Transport,
        shared: SharedState,
        test_timeout: float = 15.0,
        reject_ttl: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._channels = channels
        self._router = router
        self._adaptors = adaptors
        self._tokens = tokens
        self._transport = transport
        self._shared = shared
        self.test_timeout = test_timeout
        #: the upstream keys out of rotation (routing/rejected.py)
        self.rejected = RejectedKeys(catalog, shared, reject_ttl, clock)
        #: memory only, for the router: see the class doc
        self.is_rejected = self.rejected.is_rejected
        self.usable_keys = self.rejected.usable_keys
        self.reset = self.rejected.reset
        self._disabling: set[int] = set()
        self._statuses = {c.id: c.status for c in catalog.all_channels()}
        self._tasks: list[asyncio.Task[None]] = []
        catalog.listeners.append(self._config_changed)

    # ---- rejections ----------------------------------------------------------------------
    async def key_rejected(
        self, channel: ChannelRecord, key: str, *, status: int = 0, message: str = ""
    ) -> None:
        """The upstream refused ``key`` of ``channel`` (HTTP ``status``, with ``message``
        if any): the key leaves rotation; if no key of the channel is left, the channel
        is auto-disabled. Never raises."""
        try:
            fresh = await self.rejected.add(channel.id, key)
        except Exception:  # the shared state failed oddly: this worker still skips the key
            log.warning("recording a rejected key failed", exc_info=True)
            fresh = False
        if fresh:
            log.warning(
                "upstream rejected a channel key; it leaves rotation",
                extra={
                    "channel_id": channel.id,
                    "key_index": _index(channel, key),
                    "status": status,
                    "ttl": self.rejected.ttl,
                },
            )
        current = self._current(channel)
        if current.status != "enabled" or self.usable_keys(current):
            return
        detail = f"HTTP {status}" if status else ""
        if message:
            detail = f"{detail}: {message}" if detail else message
        reason = "upstream rejected the credentials"
        await self._auto_disable(current, f"{reason}: {detail}" if detail else reason)

    def _current(self, channel: ChannelRecord) -> ChannelRecord:
        """The catalog's record of ``channel`` (newer status and keys), else ``channel``."""
        for c in self._catalog.all_channels():
            if c.id == channel.id:
                return c
        return channel

    async def _auto_disable(self, channel: ChannelRecord, reason: str) -> None:
        if channel.id in self._disabling:
            return
        self._disabling.add(channel.id)
        try:
            rec = await self._channels.set_status(channel.id, "auto_disabled", reason[:_REASON_MAX])
            if rec is None:
                return  # deleted meanwhile
            log.warning(
                "channel auto-disabled: the upstream rejected every key",
                extra={"channel_id": channel.id, "reason": reason[:_REASON_MAX]},
            )
            await self._catalog.load()
        except Exception:
            log.warning(
                "auto-disabling a channel failed", extra={"channel_id": channel.id}, exc_info=True
            )
        finally:
            self._disabling.discard(channel.id)

    async def _config_changed(self, revision: int) -> None:
        """A channel enabled again (by the operator or the scheduler) gets its keys back,
        in every worker: each one that sees the change resets the channel."""
        statuses = {c.id: c.status for c in self._catalog.all_channels()}
        for cid, status in statuses.items():
            before = self._statuses.get(cid)
            if status == "enabled" and before is not None and before != "enabled":
                await self.reset(cid)
        self.rejected.forget_missing(set(statuses))
        self._statuses = statuses

    # ---- channel tests -------------------------------------------------------------------
    def test_model(self, channel: ChannelRecord, model: str | None = None) -> str:
        """The model a test of ``channel`` asks for ("" when the channel lists none)."""
        if model:
            return model
        configured = channel.config.get("test_model")
        if isinstance(configured, str) and configured:
            return configured
        return channel.models[0] if channel.models else ""

    async def test(
        self,
        channel: ChannelRecord,
        model: str | None = None,
        *,
        key: str | None = None,
        within: float | None = None,
    ) -> ProbeResult:
        """Send one minimal chat request to ``channel`` (its next key, or ``key``) and say
        how it went. Bounded by ``within`` seconds (default ``RELAYGATE_CHANNEL_TEST_TIMEOUT``);
        never raises for upstream problems."""
        name = self.test_model(channel, model)
        if not name:
            return ProbeResult(
                channel.id, "", False, 0, 0, "invalid_request_error", "The channel lists no model."
            )
        limit = self.test_timeout if within is None else within
        began = time.perf_counter()
        status = 0
        try:
            async with asyncio.timeout(limit):
                status = await self._probe(channel, name, key)
        except TimeoutError:
            late = UpstreamTimeout(f"The channel did not answer the test within {limit:g} s.")
            return self._failed(channel, name, 0, began, late)
        except RelayError as err:
            return self._failed(channel, name, err.upstream_status or status, began, err)
        except Exception as exc:
            log.warning(
                "channel test failed unexpectedly", extra={"channel_id": channel.id}, exc_info=True
            )
            unexpected = RelayError(f"The test failed unexpectedly ({type(exc).__name__}).")
            return self._failed(channel, name, status, began, unexpected)
        return ProbeResult(channel.id, name, True, status, _ms(began))

    def _failed(
        self, channel: ChannelRecord, model: str, status: int, began: float, err: RelayError
    ) -> ProbeResult:
        return ProbeResult(channel.id, model, False, status, _ms(began), err.code, err.message)

    async def _probe(self, channel: ChannelRecord, model: str, key: str | None) -> int:
        """One exchange; returns the upstream status of a good answer, raises otherwise."""
        target = self._router.target(channel, model)
        if key is not None:
            target = dataclasses.replace(target, api_key=key)
        adaptor = self._adaptors.get(target.provider)
        target = await self._tokens.resolve(adaptor, target)
        try:
            return await self._exchange(adaptor, target, model)
        except RelayError as err:
            if not self._tokens.refused(err, target):
                raise
        # the upstream refused the cached short-lived token (expired early, revoked): test
        # once more with a fresh one, as a relayed request does
        target = await self._tokens.renew(adaptor, target)
        return await self._exchange(adaptor, target, model)

    async def _exchange(self, adaptor: Adaptor, target: Target, model: str) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        ureq = adaptor.chat_request(target, body, False)
        proxy = target.config.get("proxy") if target.config else None
        if isinstance(proxy, str):  # as relay/attempt.py build_request
            ureq.proxy = proxy
        async with self._transport.request(ureq, stream=False) as resp:
            raw = await resp.read()
            status = resp.status
        if status >= 400:
            err = adaptor.error(target, status, raw)
            err.upstream_status = status
            raise err
        try:
            adaptor.chat_response(target, raw)
        except RelayError as err:
            err.upstream_status = status
            raise
        return status

    # ---- the scheduler -------------------------------------------------------------------
    def start(self, test_interval: float) -> None:
        """Start reading other workers' rejections and, when ``test_interval`` > 0,
        the scheduler."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.rejected.run()))
        if test_interval > 0:
            self._tasks.append(loop.create_task(self.run_scheduled(test_interval)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def run_scheduled(self, interval: float) -> None:
        """Every ``interval`` seconds, run :meth:`run_round` if no other worker or node
        has run one within the interval."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self._shared.reserve(ROUND_KEY, 1, 1, ttl=interval):
                    await self.run_round()
            except SharedStateError:
                log.warning("the shared state is away; skipping a channel test round")
            except Exception:
                log.warning("a channel test round failed", exc_info=True)

    async def run_round(self) -> list[int]:
        """Test every ``auto_disabled`` channel and enable the ones that work again;
        returns their ids."""
        enabled: list[int] = []
        for channel in self._catalog.all_channels():
            if channel.status != "auto_disabled":
                continue
            if await self._retest(channel):
                enabled.append(channel.id)
        if enabled:
            await self._catalog.load()
        return enabled

    async def _retest(self, channel: ChannelRecord) -> bool:
        """Test the channel's keys in turn until one answers; stop at a failure that is
        not the key's (the upstream is down: the other keys would not tell more)."""
        for key in channel.keys or ("",):
            result = await self.test(channel, None, key=key)
            if result.ok:
                break
            if result.error_code != AUTH_FAILED:
                return False
        else:
            return False
        if await self._channels.set_status(channel.id, "enabled", None) is None:
            return False  # deleted meanwhile
        # every key back in rotation: one the upstream still refuses leaves again on
        # its first refusal (the channel stays enabled while another key works)
        await self.reset(channel.id)
        log.warning(
            "channel re-enabled: the scheduled test passed", extra={"channel_id": channel.id}
        )
        return True


def _index(channel: ChannelRecord, key: str) -> int:
    try:
        return channel.keys.index(key)
    except ValueError:
        return -1


def _ms(began: float) -> int:
    return round((time.perf_counter() - began) * 1000)
