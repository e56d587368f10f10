"""HTTP proxies for upstream calls: which proxy (if any) a call goes through.

A call's proxy comes from ``UpstreamRequest.proxy`` (the channel's ``config["proxy"]``)
when that is set, else from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
and their lowercase forms, read once when the transport is built, with the standard
library's ``urllib.request`` semantics). An empty ``proxy`` string means "connect
directly", ignoring the environment. Only ``http://`` proxies are supported: the
gateway talks plain HTTP to the proxy and asks it for a ``CONNECT`` tunnel (https
targets) or sends it absolute-form requests (http targets).
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # untyped

from relaygate.errors import UpstreamError

__all__ = ["Proxy", "ProxyResolver", "parse_proxy"]


@dataclass(frozen=True, slots=True)
class Proxy:
    """One HTTP proxy. Hashable: part of the connection-pool key."""

    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization value ("Basic …"), from userinfo

    @property
    def url(self) -> str:
        """The proxy URL without credentials."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{name}:{self.port}"

    def __repr__(self) -> str:  # never print credentials
        return f"Proxy({self.url!r}, auth={self.authorization is not None})"


def parse_proxy(url: str) -> Proxy:
    """``http://[user:pass@]host[:port]`` (a bare ``host:port`` means http) → :class:`Proxy`.

    Raises :class:`UpstreamError` (502) for anything else; the message never carries the URL,
    which may hold credentials.
    """
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port or 80
    except ValueError as exc:
        raise UpstreamError("The configured HTTP proxy URL is not valid.") from exc
    if scheme != "http" or not host:
        raise UpstreamError(
            "The configured proxy is not supported: only http:// proxies (HTTP CONNECT) are."
        )
    authorization = None
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return Proxy(host, port, authorization)


class ProxyResolver:
    """Decides the proxy of one call. Cheap enough per URL; callers cache per URL."""

    __slots__ = ("_env", "_parsed")

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = (
            urllib.request.getproxies_environment() if environ is None else _proxies_from(environ)
        )
        self._parsed: dict[str, Proxy] = {}

    def resolve(self, scheme: str, host: str, port: int, explicit: str | None) -> Proxy | None:
        """The proxy for ``scheme://host:port``; ``explicit`` is ``UpstreamRequest.proxy``."""
        if explicit is not None:
            return self._parse(explicit) if explicit.strip() else None
        url = self._env.get(scheme)
        if not url:
            return None
        no_proxy = self._env.get("no")
        if no_proxy and _bypass(host, port, self._env):
            return None
        return self._parse(url)

    def _parse(self, url: str) -> Proxy:
        proxy = self._parsed.get(url)
        if proxy is None:
            proxy = self._parsed[url] = parse_proxy(url)
        return proxy


def _bypass(host: str, port: int, env: dict[str, str]) -> bool:
    name = f"[{host}]" if ":" in host else host
    return bool(proxy_bypass_environment(f"{name}:{port}", env))


def _proxies_from(environ: Mapping[str, str]) -> dict[str, str]:
    """``urllib.request.getproxies_environment`` over a given mapping (for tests)."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():  # any case first, then lowercase wins
        low = name.lower()
        if value and low[-6:] == "_proxy":
            proxies[low[:-6]] = value
    for name, value in environ.items():
        if name[-6:] == "_proxy":
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies
