"""HTTP/1.1 request heads for the ``fast`` transport, and where each request goes.

:meth:`RequestEncoder.target` resolves a URL (and the call's proxy setting) once into
the pool key, the ``Host`` header, the request target and extra header lines, and
caches that per URL; :meth:`RequestEncoder.encode` writes one request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import interrupted
from relaygate.transport.proxy import Proxy, ProxyResolver

__all__ = ["Key", "RequestEncoder"]

Key = tuple[str, str, int, Proxy | None]  # scheme, host, port, proxy: the pool key
# pool key, Host header, request target, extra header lines (Proxy-Authorization)
_Target = tuple[Key, str, str, str]
_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}


class RequestEncoder:
    __slots__ = ("_cache", "_proxies")

    def __init__(self, proxies: ProxyResolver) -> None:
        self._proxies = proxies
        self._cache: dict[str | tuple[str, str], _Target] = {}

    def target(self, url: str, proxy_setting: str | None) -> _Target:
        cache_key = url if proxy_setting is None else (url, proxy_setting)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            host = parts.hostname
            if scheme not in _DEFAULT_PORTS or not host:
                raise ValueError(f"unsupported upstream URL {url!r}")
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise interrupted(True) from exc
        name = f"[{host}]" if ":" in host else host
        host_header = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = self._proxies.resolve(scheme, host, port, proxy_setting)
        extra = ""
        if proxy is not None and scheme == "http":  # absolute form to the proxy
            path = f"http://{host_header}{path}"
            if proxy.authorization is not None:
                extra = f"Proxy-Authorization: {proxy.authorization}\r\n"
        target = ((scheme, host, port, proxy), host_header, path, extra)
        if len(self._cache) >= 1024:
            self._cache.clear()
        self._cache[cache_key] = target
        return target

    def encode(self, req: UpstreamRequest) -> tuple[Key, bytes]:
        key, host_header, path, extra = self.target(req.url, req.proxy)
        method = req.method.upper()
        body = req.body
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        seen = set()
        for name, value in req.headers.items():
            low = name.lower()
            if low == "content-length" or low == "transfer-encoding":
                continue  # ours, from the body
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise interrupted(True) from ValueError(f"newline in header {name!r}")
            seen.add(low)
            lines.append(f"{name}: {value}\r\n")
        if "host" not in seen:
            lines.append(f"Host: {host_header}\r\n")
        if "accept-encoding" not in seen:
            lines.append("Accept-Encoding: identity\r\n")
        if "user-agent" not in seen:
            lines.append("User-Agent: relaygate\r\n")
        if extra:
            lines.append(extra)
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("utf-8", "surrogateescape")
        return key, head + body if body else head
