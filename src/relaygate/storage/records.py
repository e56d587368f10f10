"""Plain in-memory records: what the hot path reads (never ORM objects)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ChannelRecord",
    "IPNetwork",
    "KeyRecord",
    "ModelRouteRecord",
    "UserRecord",
    "amount_text",
    "ip_networks",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: units per currency unit: the same as ``relaygate.billing.money.UNITS`` (storage sits below
#: billing, so it cannot import it; tests/unit/test_limits_fields.py checks they agree)
_UNITS = 1_000_000


def amount_text(units: int) -> str:
    """Units as an exact decimal string with at least four decimals (``12500000`` →
    ``"12.5000"``, ``1`` → ``"0.000001"``): like ``billing.money.format_amount`` for
    amounts it shows exactly, never truncated (a cap must show what it really is)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), _UNITS)
    digits = f"{frac:06d}".rstrip("0").ljust(4, "0")
    return f"{sign}{whole}.{digits}"


def ip_networks(entries: list[str] | tuple[str, ...] | None) -> tuple[IPNetwork, ...] | None:
    """The stored allow-list (validated strings: addresses or CIDRs) compiled once, when the
    snapshot is loaded, for the per-request check (``filters/limits.py``). An entry that is
    not an address or network (never written by the admin API) is left out: fail closed."""
    if entries is None:
        return None
    nets: list[IPNetwork] = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            continue  # written around the validation (by hand): it admits no address
    return tuple(nets)


@dataclass(slots=True, frozen=True)
class UserRecord:
    """A user as the hot path sees it. The balance is not here: it changes with every
    request and is read from the database by billing, never from the snapshot."""

    id: int
    username: str
    role: str
    status: str
    created_at: datetime
    group_name: str = "default"  # price tier (billing's group multiplier)
    rpm_limit: int | None = None  # requests per minute over all the user's keys
    tpm_limit: int | None = None  # tokens per minute over all the user's keys
    concurrency_limit: int | None = None  # requests at once over all the user's keys
    #: any limit set: the limits filter skips users without one with a single test
    limited: bool = field(init=False, default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "limited",
            self.rpm_limit is not None
            or self.tpm_limit is not None
            or self.concurrency_limit is not None,
        )

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "status": self.status,
            "group_name": self.group_name,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "concurrency_limit": self.concurrency_limit,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """A key as the hot path sees it. What it has spent (``spent``/``leased``) is billing's
    and read from the database; ``spend_limit`` is the cap in money units."""

    id: int
    user_id: int
    name: str
    kind: str  # api | personal | admin
    key_hash: str
    key_hint: str
    status: str
    expires_at: datetime | None
    models: frozenset[str] | None
    created_at: datetime
    rpm_limit: int | None = None
    concurrency_limit: int | None = None
    tpm_limit: int | None = None
    spend_limit: int | None = None  # money units (billing/money.py); None: no cap
    ip_allow: tuple[str, ...] | None = None  # addresses / CIDRs as stored; None: any address
    #: ``ip_allow`` compiled (see :func:`ip_networks`)
    ip_networks: tuple[IPNetwork, ...] | None = field(
        init=False, default=None, compare=False, repr=False
    )
    #: any rate, token, concurrency or address limit: one test skips the rest
    limited: bool = field(init=False, default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip_networks", ip_networks(self.ip_allow))
        object.__setattr__(
            self,
            "limited",
            self.rpm_limit is not None
            or self.tpm_limit is not None
            or self.concurrency_limit is not None
            or self.ip_allow is not None,
        )

    def to_public(self) -> dict[str, Any]:
        spend = self.spend_limit
        return {
            "id": self.id,
            "user_id": self.user_id,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "concurrency_limit": self.concurrency_limit,
            "spend_limit": amount_text(spend) if spend is not None else None,
            "spend_limit_units": spend,
            "ip_allow": list(self.ip_allow) if self.ip_allow is not None else None,
            "name": self.name,
            "kind": self.kind,
            "key_hint": self.key_hint,
            "status": self.status,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "models": sorted(self.models) if self.models is not None else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class ChannelRecord:
    id: int
    name: str
    provider: str
    profile: str
    base_url: str
    keys: tuple[str, ...]
    models: tuple[str, ...]
    model_mapping: dict[str, str]
    priority: int
    weight: int
    status: str
    config: dict[str, Any]
    is_emulator: bool
    created_at: datetime
    #: why the status last changed when the gateway changed it (auto-disable), else None
    status_reason: str | None = None

    def to_public(self) -> dict[str, Any]:
        """What the admin API shows: never the upstream keys themselves."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "profile": self.profile,
            "base_url": self.base_url,
            "keys": [f"…{k[-4:]}" if len(k) > 8 else "…" for k in self.keys],
            "models": list(self.models),
            "model_mapping": self.model_mapping,
            "priority": self.priority,
            "weight": self.weight,
            "status": self.status,
            "status_reason": self.status_reason,
            "config": self.config,
            "is_emulator": self.is_emulator,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class ModelRouteRecord:
    """A model route (``services/routes.py`` has the rules): a request for ``name`` is served
    by name's own channels first (if any), then by each of ``fallbacks`` in order (a
    fallback that has a route itself expands to its channels, then its fallbacks). A route
    whose name no channel serves is an *alias*. ``hedge_after_ms``: the hedging threshold
    for requests of this model (None: no hedging). ``shaping``: the request-shaping rules of
    requests for this model (``services/shaping.py``; None: none)."""

    name: str
    fallbacks: tuple[str, ...]
    hedge_after_ms: int | None
    description: str
    created_at: datetime
    updated_at: datetime
    shaping: dict[str, Any] | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fallbacks": list(self.fallbacks),
            "hedge_after_ms": self.hedge_after_ms,
            "description": self.description,
            "shaping": self.shaping,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
