"""Candidates for a request and the target of one attempt (docs/routing.md).

``Router.candidates(model, key, group, affinity)`` gives every (channel, model) pair
that may serve the request, in the order to try them:

1. the models of the request's chain (``Catalog.chain``: the model, then its route's
   fallbacks, expanded);
2. for each, the enabled channels that serve it and admit the user's group
   (``config.groups``), by priority tier, highest first;
3. inside a tier, weighted random order — or, with an affinity key, the same
   weighted order for every request of that key (``routing/order.py``).

Circuits and failed channels are the attempt loop's business (``relay/attempt.py``):
it skips pairs whose circuit is open and comes back to them last.

``Router.target`` builds one attempt's :class:`Target`: the channel's next usable
upstream key (rotation per worker; keys the upstream rejected are left out through
``usable_keys``, ``routing/health.py``), or the key an affinity key sticks to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from relaygate.catalog import Catalog
from relaygate.errors import InvalidRequest, ModelNotFound, ServiceUnavailable
from relaygate.providers.base import Target
from relaygate.providers.surfaces import channel_serves
from relaygate.routing.breakers import Scope
from relaygate.routing.keys import KeyRotation
from relaygate.routing.order import AFFINITY_MODES, key_slot, weighted_order
from relaygate.storage.records import ChannelRecord, KeyRecord

__all__ = ["Candidate", "ChannelPolicy", "Router"]

Candidate = tuple[ChannelRecord, str]  # a channel and the public model it serves
Timeouts = tuple[float | None, float | None, float | None]  # connect, first byte, idle


@dataclass(slots=True, frozen=True)
class ChannelPolicy:
    """A channel's routing settings, parsed once per configuration revision from its
    (validated) ``config``."""

    groups: frozenset[str] | None  # None: every group
    timeouts: Timeouts | None
    max_concurrency: int  # 0: no cap
    key_concurrency: int  # 0: no cap
    queue_timeout: float
    queue_size: int

    @property
    def capped(self) -> bool:
        return bool(self.max_concurrency or self.key_concurrency)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_policy(config: dict[str, Any]) -> ChannelPolicy:
    groups = config.get("groups")
    timeouts = config.get("timeouts")
    queue_size = _num(config.get("queue_size"))  # 0 is "nobody waits", not the default
    parsed: Timeouts | None = None
    if isinstance(timeouts, dict) and timeouts:
        parsed = (
            _num(timeouts.get("connect")),
            _num(timeouts.get("first_byte")),
            _num(timeouts.get("idle")),
        )
    return ChannelPolicy(
        groups=frozenset(groups) if isinstance(groups, list) and groups else None,
        timeouts=parsed,
        max_concurrency=int(_num(config.get("max_concurrency")) or 0),
        key_concurrency=int(_num(config.get("key_concurrency")) or 0),
        queue_timeout=_num(config.get("queue_timeout")) or 0.0,
        queue_size=100 if queue_size is None else int(queue_size),
    )


_NO_POLICY = parse_policy({})


def serves(ch: ChannelRecord, surface: str) -> bool:
    return channel_serves(ch.provider, ch.profile, ch.config, surface)


class Router:
    def __init__(self, catalog: Catalog, affinity: str = "conversation") -> None:
        if affinity not in AFFINITY_MODES:
            raise ValueError(
                f"RELAYGATE_AFFINITY must be one of {', '.join(AFFINITY_MODES)}, not {affinity!r}"
            )
        self.affinity = affinity
        self._catalog = catalog
        self.keys = KeyRotation()
        #: keys the upstream has not rejected (set to ``ChannelHealth.usable_keys``)
        self.usable_keys: Callable[[ChannelRecord], tuple[str, ...]] | None = None
        self._rev = -1
        self._tiers: dict[tuple[str, str], tuple[tuple[ChannelRecord, ...], ...]] = {}
        self._policies: dict[int, ChannelPolicy] = {}
        self._fixed: dict[tuple[str, str], list[Candidate]] = {}

    # ---- configuration-derived caches ---------------------------------------
    def _fresh(self) -> None:
        if self._catalog.revision != self._rev:
            self._rev = self._catalog.revision
            self._tiers = {}
            self._fixed = {}
            self._policies = {
                ch.id: parse_policy(ch.config) if ch.config else _NO_POLICY
                for ch in self._catalog.all_channels()
            }

    def policy(self, channel: ChannelRecord) -> ChannelPolicy:
        self._fresh()
        return self._policies.get(channel.id, _NO_POLICY)

    def _tiers_of(self, model: str, group: str) -> tuple[tuple[ChannelRecord, ...], ...]:
        found = self._tiers.get((model, group))
        if found is not None:
            return found
        tiers: list[tuple[ChannelRecord, ...]] = []
        current: list[ChannelRecord] = []
        for ch in self._catalog.channels_for(model) or ():
            groups = self._policies.get(ch.id, _NO_POLICY).groups
            if groups is not None and group not in groups:
                continue
            if current and current[0].priority != ch.priority:
                tiers.append(tuple(current))
                current = []
            current.append(ch)
        if current:
            tiers.append(tuple(current))
        out = self._tiers[(model, group)] = tuple(tiers)
        return out

    # ---- hot path ---------------------------------------------------------
    def candidates(
        self, model: str, key: KeyRecord, group: str = "default", affinity: str | None = None
    ) -> list[Candidate]:
        """Every (channel, model) that may serve ``model`` for ``key``, in the order to
        try them. Never empty: raises ``ModelNotFound`` or ``ServiceUnavailable``. The list
        may be shared between requests: callers must not change it."""
        if key.models is not None and model not in key.models:
            raise ModelNotFound(
                f"The model `{model}` is not allowed for this API key.", param="model"
            )
        self._fresh()
        fixed = self._fixed.get((model, group))
        if fixed is not None:
            return fixed  # one channel per tier: the same list every time (never mutated)
        out: list[Candidate] = []
        random_order = False
        for m in self._catalog.chain(model):
            for tier in self._tiers_of(m, group):
                if len(tier) == 1:
                    out.append((tier[0], m))
                else:
                    random_order = True
                    out.extend((ch, m) for ch in weighted_order(tier, affinity))
        if out and not random_order:
            self._fixed[(model, group)] = out
        if not out:
            catalog = self._catalog
            if any(catalog.is_known(m) for m in catalog.chain(model)):
                raise ServiceUnavailable(
                    f"No channel is available for the model `{model}` right now; retry later."
                )
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        return out

    # ---- the rest of the API surface (relay/surface.py, relay/objects.py) ------------
    def surface_candidates(
        self,
        surface: str,
        model: str,
        key: KeyRecord,
        group: str = "default",
        affinity: str | None = None,
    ) -> list[Candidate]:
        """:meth:`candidates` for ``model``, keeping the channels that serve ``surface``
        (``providers/surfaces.py``); 400 ``unsupported_endpoint`` when none does."""
        found = [c for c in self.candidates(model, key, group, affinity) if serves(c[0], surface)]
        if not found:
            raise InvalidRequest(
                f"No channel serving the model `{model}` offers this endpoint ({surface}).",
                code="unsupported_endpoint",
                param="model",
            )
        return found

    def surface_channels(
        self, surface: str, group: str = "default", affinity: str | None = None
    ) -> list[Candidate]:
        """The enabled channels that serve ``surface`` for ``group`` (requests that name
        no model: a file upload, a thread), by priority tier, weighted inside a tier;
        503 when there is none."""
        self._fresh()
        tiers: dict[int, list[ChannelRecord]] = {}
        for ch in self._catalog.all_channels():
            if ch.status != "enabled" or not serves(ch, surface):
                continue
            groups = self._policies.get(ch.id, _NO_POLICY).groups
            if groups is not None and group not in groups:
                continue
            tiers.setdefault(ch.priority, []).append(ch)
        out: list[Candidate] = []
        for priority in sorted(tiers, reverse=True):
            tier = sorted(tiers[priority], key=lambda c: c.id)
            out.extend((ch, "") for ch in weighted_order(tuple(tier), affinity))
        if not out:
            raise ServiceUnavailable(
                f"No channel is configured to serve this endpoint ({surface})."
            )
        return out

    def channel_candidate(self, channel_id: int, model: str | None) -> list[Candidate]:
        """The one channel that holds an object (a file, a job, a thread): calls on it go
        there and nowhere else; 503 when that channel is gone or disabled."""
        for ch in self._catalog.all_channels():
            if ch.id == channel_id and ch.status == "enabled":
                if model and model not in ch.models:
                    raise ModelNotFound(
                        f"The model `{model}` is not served by the channel that holds this object.",
                        param="model",
                    )
                return [(ch, model or "")]
        raise ServiceUnavailable(
            "The channel that holds this object is disabled or was removed; "
            "the object cannot be reached until it is back."
        )

    def public_model(self, channel_id: int, upstream: str) -> str:
        """The public name a channel serves ``upstream`` under (its ``model_mapping``
        read backwards): prices are kept by public name. ``upstream`` itself if none."""
        for ch in self._catalog.all_channels():
            if ch.id == channel_id:
                for public in ch.models:
                    if ch.model_mapping.get(public, public) == upstream:
                        return public
        return upstream

    def key_order(self, channel: ChannelRecord, affinity: str | None = None) -> tuple[str, ...]:
        """The channel's usable upstream keys, the one to use first at the front."""
        keys = channel.keys
        if self.usable_keys is not None and keys:
            keys = self.usable_keys(channel) or keys  # all rejected: still build a target
        n = len(keys)
        if n <= 1:
            return keys
        if affinity is not None:
            first = key_slot(affinity, channel.id, n)
        else:
            first = self.keys.next_index(channel.id, n)
        return keys[first:] + keys[:first] if first else keys

    def target(
        self,
        channel: ChannelRecord,
        model: str,
        affinity: str | None = None,
        api_key: str | None = None,
    ) -> Target:
        """Where one attempt on ``channel`` for ``model`` goes: ``api_key``, or the
        channel's next usable key (the affinity key's own key when one is given)."""
        if api_key is None:
            keys = self.key_order(channel, affinity)
            api_key = keys[0] if keys else ""
        return Target(
            channel_id=channel.id,
            provider=channel.provider,
            profile=channel.profile,
            base_url=channel.base_url,
            api_key=api_key,
            upstream_model=channel.model_mapping.get(model, model),
            config=channel.config,
        )

    # ---- circuits ----------------------------------------------------------
    def scopes(self) -> Iterator[Scope]:
        """Every circuit scope of the enabled channels (for reading shared circuits)."""
        for ch in self._catalog.all_channels():
            if ch.status != "enabled":
                continue
            yield (ch.id, "")
            for m in ch.models:
                yield (ch.id, m)
