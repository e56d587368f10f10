"""The admin API's channel test (docs/channel-health.md):

* ``POST /admin/api/channels/{id}/test`` with an optional body ``{"model": "..."}`` - send
  one minimal chat request to the channel (its next upstream key) and answer
  ``{"channel_id", "model", "ok", "status", "latency_ms", "error": {"code", "message"} | null}``.
  A channel the operator disabled can be tested too (before enabling it); an unknown
  channel is 404. The upstream's failure is the answer's ``error``, never the call's status.

The test itself is ``routing/health.py`` ``ChannelHealth.test``. The route is built with
the admin app's helpers (:class:`AdminKit`), so authentication, error bodies and the 405
of other methods are the admin API's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.errors import NotFound
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.services.validation import parse_id
from relaygate.state import AppState

__all__ = ["health_routes"]


def health_routes(kit: AdminKit) -> list[Route]:
    async def test_channel(request: Request, svc: AdminService, st: AppState) -> Response:
        cid = parse_id("channel_id", str(request.path_params["id"]))
        body = await kit.body_of(request)
        unknown = sorted(set(body) - {"model"})
        if unknown:
            raise ValidationError(
                unknown[0], f"Unknown field `{unknown[0]}`; only `model` is read."
            )
        model = body.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValidationError("model", "`model` must be a non-empty string.")
        # from the database, not the snapshot: a channel created by another worker a
        # moment ago can be tested at once
        channel = await st.repo.channels.get(cid)
        if channel is None:
            raise NotFound(f"No channel with id {cid}.", param="channel_id")
        result = await st.health.test(channel, model.strip() if model else None)
        return kit.respond(result.to_public())

    return [kit.resource("/channels/{id}/test", {"POST": test_channel})]
