"""Checks of a channel write that need more than the write itself (``services/admin.py``):

* :func:`check_weights`: refuse a save that leaves some model with enabled channels whose
  weights are all 0 (a weight-0 channel is a standby that gets traffic only when the
  weighted channels of its tier fail: with no weighted channel at all, none would get
  traffic);
* :func:`check_host_resolves`: refuse a base URL whose host does not resolve (a typo in the
  host name), looked up with the event loop's resolver within :data:`DNS_TIMEOUT` seconds.
  Skipped when the channel has a ``config.proxy`` (the proxy resolves the host), when
  ``HTTPS_PROXY``/``HTTP_PROXY`` is set in the environment and the channel does not ask
  for a direct connection (``config.proxy: ""``), and when the body says ``"force": true``.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relaygate.services.fields import ValidationError

__all__ = ["DNS_TIMEOUT", "ChannelShape", "check_host_resolves", "check_weights"]

DNS_TIMEOUT = 3.0  # seconds


@dataclass(frozen=True, slots=True)
class ChannelShape:
    """What the weight rule reads of a channel (stored, or as a write would leave it)."""

    name: str
    status: str
    weight: int
    models: tuple[str, ...]


def check_weights(
    channels: Iterable[ChannelShape], models: Collection[str], field: str | None
) -> None:
    """For each of ``models`` (those the write touches), the enabled channels that serve it
    must not all have weight 0. ``field`` names the field the error is about."""
    enabled = [c for c in channels if c.status == "enabled"]
    for model in sorted(models):
        serving = [c for c in enabled if model in c.models]
        if serving and all(c.weight == 0 for c in serving):
            names = ", ".join(repr(c.name) for c in serving)
            raise ValidationError(
                field,
                f"Every enabled channel serving `{model}` has weight 0 ({names}), so none "
                "would get traffic; give at least one of them a weight of 1 or more.",
            )


def _env_proxy_set(environ: Mapping[str, str] | None) -> bool:
    proxies = (
        urllib.request.getproxies_environment()
        if environ is None
        else {k.lower().removesuffix("_proxy"): v for k, v in environ.items() if v}
    )
    return bool(proxies.get("https") or proxies.get("http"))


async def check_host_resolves(
    base_url: str,
    config: Mapping[str, Any],
    *,
    force: bool,
    environ: Mapping[str, str] | None = None,
    wait_s: float = DNS_TIMEOUT,
) -> None:
    """Raise a :class:`ValidationError` on ``base_url`` when its host does not resolve
    (see the module's docstring for when the check is skipped). ``environ``: for tests
    (default: the process environment)."""
    if force:
        return
    proxy = config.get("proxy")
    if isinstance(proxy, str) and proxy:
        return
    if proxy != "" and _env_proxy_set(environ):
        return
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        return  # the URL checker refused it already
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    hint = 'check the name, or send "force": true to save it anyway'
    try:
        async with asyncio.timeout(wait_s):
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise ValidationError(
            "base_url",
            f"The host {host!r} of `base_url` did not resolve within {wait_s:g} s; {hint}.",
        ) from None
    except (OSError, UnicodeError) as exc:
        raise ValidationError(
            "base_url",
            f"The host {host!r} of `base_url` does not resolve ({exc.__class__.__name__}: "
            f"{exc}); {hint}.",
        ) from None
