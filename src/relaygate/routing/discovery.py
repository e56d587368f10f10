"""Model discovery: ask a channel's upstream which models it serves
(``POST /admin/api/channels/{id}/discover-models``, docs/providers.md "Model discovery").

The adaptor builds the request and reads the answer (``ModelLister`` in
``providers/base.py``); this module sends it on the shared transport, after the token
hook (Baidu/Vertex tokens, Zhipu JWTs), with the channel's proxy, bounded by a timeout.
"""

from __future__ import annotations

import asyncio

from relaygate.errors import NotImplementedByProvider, RelayError, UpstreamTimeout
from relaygate.providers.base import ModelLister
from relaygate.providers.registry import AdaptorRegistry
from relaygate.routing.router import Router
from relaygate.routing.tokens import TokenCache
from relaygate.storage.records import ChannelRecord
from relaygate.transport.base import Transport

__all__ = ["discover_models"]


async def discover_models(
    channel: ChannelRecord,
    *,
    router: Router,
    adaptors: AdaptorRegistry,
    tokens: TokenCache,
    transport: Transport,
    within: float,
) -> list[str]:
    """The upstream's model ids; raises ``NotImplementedByProvider`` when the channel's
    provider lists none, and the mapped upstream error when the call fails."""
    adaptor = adaptors.get(channel.provider)
    if not isinstance(adaptor, ModelLister):
        raise _unlisted(channel)
    target = router.target(channel, channel.models[0] if channel.models else "")
    try:
        async with asyncio.timeout(within):
            target = await tokens.resolve(adaptor, target)
            ureq = adaptor.models_request(target)
            if ureq is None:
                raise _unlisted(channel)
            proxy = channel.config.get("proxy")
            if isinstance(proxy, str):  # as relay/attempt.py build_request
                ureq.proxy = proxy
            async with transport.request(ureq, stream=False) as resp:
                raw = await resp.read()
                status = resp.status
    except TimeoutError:
        raise UpstreamTimeout(
            f"The upstream did not list its models within {within:g} s."
        ) from None
    if status >= 400:
        err: RelayError = adaptor.error(target, status, raw)
        err.upstream_status = status
        raise err
    return adaptor.models_response(target, status, raw)


def _unlisted(channel: ChannelRecord) -> NotImplementedByProvider:
    return NotImplementedByProvider(
        f"This channel's provider ({channel.profile}) does not list its models; "
        "set the channel's `models` by hand."
    )
