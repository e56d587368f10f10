"""The admin API's provider catalogue and model discovery (docs/providers.md):

* ``GET /admin/api/channel-types`` - every kind of channel an operator can add
  (``providers/catalogue.py``): adaptor and profile, key parts, config keys, default base
  URL and models, and ``default_prices``: the shipped price rows of those models
  (``billing/default_prices.py``) and, under ``price``, the price each model bills at now
  (the operator's own row if there is one).
* ``GET /admin/api/channel-types/{id}`` - one of them.
* ``POST /admin/api/channels/{id}/discover-models`` with an optional body
  ``{"apply": "merge" | "replace"}`` - ask the channel's upstream for its models
  (``routing/discovery.py``). The answer lists them (``models``), those the channel does
  not serve yet (``new``) and those it serves that the upstream no longer lists
  (``missing``). ``merge`` adds the new ones to the channel's ``models``, ``replace`` sets
  ``models`` to the upstream's list; without ``apply`` nothing changes. A provider that
  lists no models answers 501 ``not_implemented``; an upstream failure its mapped error.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.billing.default_prices import DEFAULT_PRICES
from relaygate.billing.prices import format_price
from relaygate.errors import NotFound
from relaygate.providers.catalogue import CHANNEL_TYPES, ChannelType, channel_type
from relaygate.routing.discovery import discover_models
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.services.validation import parse_id
from relaygate.state import AppState

__all__ = ["provider_routes"]

_DEFAULTS = {row["model"]: row for row in DEFAULT_PRICES}
_APPLY = ("merge", "replace")


def _public(t: ChannelType, st: AppState) -> dict[str, Any]:
    out = t.to_public()
    prices: dict[str, Any] = {}
    for model in t.models:
        row = _DEFAULTS.get(model)
        if row is None:
            continue
        prices[model] = {
            k: row[k]
            for k in ("currency", "per", "input", "output", "cached_input", "context_window")
        }
    out["default_prices"] = prices
    now: dict[str, Any] = {}
    for model in t.models:
        p = st.prices.get(model)
        if p is not None:
            now[model] = {
                "input_price": format_price(p.input, "1m"),
                "output_price": format_price(p.output, "1m"),
                "per": "1m",
                "currency": st.settings.currency,
                "origin": p.origin,
            }
    out["price"] = now
    return out


def provider_routes(kit: AdminKit) -> list[Route]:
    async def list_types(request: Request, svc: AdminService, st: AppState) -> Response:
        return kit.respond({"data": [_public(t, st) for t in CHANNEL_TYPES]})

    async def one_type(request: Request, svc: AdminService, st: AppState) -> Response:
        type_id = str(request.path_params["id"])
        t = channel_type(type_id)
        if t is None:
            raise NotFound(f"No channel type {type_id[:64]!r}.", param="id")
        return kit.respond({"data": _public(t, st)})

    async def discover(request: Request, svc: AdminService, st: AppState) -> Response:
        cid = parse_id("channel_id", str(request.path_params["id"]))
        body = await kit.body_of(request)
        unknown = sorted(set(body) - {"apply"})
        if unknown:
            raise ValidationError(
                unknown[0], f"Unknown field `{unknown[0]}`; only `apply` is read."
            )
        apply = body.get("apply")
        if apply is not None and apply not in _APPLY:
            raise ValidationError("apply", "`apply` must be 'merge', 'replace' or absent.")
        channel = await st.repo.channels.get(cid)  # the database's: fresh, even if disabled
        if channel is None:
            raise NotFound(f"No channel with id {cid}.", param="channel_id")
        found = await discover_models(
            channel,
            router=st.router,
            adaptors=st.adaptors,
            tokens=st.tokens,
            transport=st.transport,
            within=st.health.test_timeout,
        )
        served = set(channel.models) | set(channel.model_mapping.values())
        upstream = set(found)
        new = [m for m in found if m not in served]
        missing = [m for m in channel.models if channel.model_mapping.get(m, m) not in upstream]
        out: dict[str, Any] = {
            "channel_id": cid,
            "models": found,
            "new": new,
            "missing": missing,
            "applied": None,
        }
        if apply is not None:
            models = [*channel.models, *new] if apply == "merge" else found
            if not models:
                raise ValidationError("apply", "The upstream lists no model; nothing to apply.")
            updated = await svc.update_channel(cid, {"models": models})
            out["applied"] = apply
            out["channel"] = updated.to_public()
        return kit.respond({"data": out})

    return [
        kit.resource("/channel-types", {"GET": list_types}),
        kit.resource("/channel-types/{id}", {"GET": one_type}),
        kit.resource("/channels/{id}/discover-models", {"POST": discover}),
    ]
