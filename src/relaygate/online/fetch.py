"""Fetching the hits' pages for ``online`` search, refusing private addresses (SSRF).

:class:`PageFetcher` fetches a page with aiohttp and gives back its text (:class:`Page`),
or ``None`` when the page is refused or fails; :meth:`PageFetcher.fetch_many` fills the
hits' ``text`` with the pages' main text (``extract``), a few at a time, until a deadline.

What it refuses (unless ``allow_private``; docs/online-fetch.md):

* schemes other than http/https, and URLs with credentials (``user:pass@``);
* hosts that are, or resolve to, non-public addresses (:func:`is_public_address`):
  private, loopback, link-local (the 169.254.169.254 metadata service), multicast,
  reserved, unspecified, shared (100.64/10), documentation ranges, and the IPv6 forms
  that carry such an IPv4 address (mapped ``::ffff:``, 6to4 ``2002::``, NAT64
  ``64:ff9b::``). Legacy numeric hosts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are
  read as the IPv4 address a C resolver would make of them, then checked;
* a DNS answer is checked whole (one private address refuses it all), inside the
  connector's resolver, and the connection goes to the checked addresses: there is no
  second lookup that a rebinding DNS server could answer differently;
* every redirect hop is checked again (at most :data:`MAX_REDIRECTS`).

Caps: ``fetch_timeout`` for the whole fetch (redirects included), ``fetch_max_bytes``
of body (the rest is not read: the page is cut), and only ``text/html``,
``text/plain`` and ``application/xhtml+xml``. No cookies are kept, proxies from the
environment are not used, and the User-Agent names relaygate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from relaygate.online.base import Hit, OnlineSettings
from relaygate.online.extract import decode_body, extract_async

__all__ = [
    "CONCURRENCY",
    "MAX_REDIRECTS",
    "TEXT_TYPES",
    "USER_AGENT",
    "FetchRefused",
    "FetchStats",
    "Page",
    "PageFetcher",
    "is_public_address",
    "parse_ip_host",
    "system_resolve",
]

log = logging.getLogger("relaygate.online")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``async (host) -> addresses``: the addresses a name resolves to, as strings
Resolver = Callable[[str], Awaitable[Sequence[str]]]
IsPublic = Callable[[IPAddress], bool]

MAX_REDIRECTS = 5
CONCURRENCY = 4  # pages fetched at once by fetch_many
TEXT_TYPES = frozenset({"text/html", "text/plain", "application/xhtml+xml"})
USER_AGENT = "relaygate (online search page fetcher)"
MAX_URL_CHARS = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

_V4_BLOCKED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255
    )
)
_V6_BLOCKED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible, IPv4-translated
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32)
        "2001:db8::/32",  # documentation
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LEGACY_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address a fetch may reach. An IPv6 address
    that carries an IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False  # a zone only makes sense for link-local addresses
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return is_public_address(inner)
        if any(ip in net for net in _V6_BLOCKED):
            return False
    elif any(ip in net for net in _V4_BLOCKED):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read as inet_aton reads it (1-4 parts, decimal, octal or hex, the last
    part filling the remaining bytes), or ``None`` when it is not such a number."""
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_PART.fullmatch(p) for p in parts):
        return None
    nums = []
    for p in parts:
        if p[:2] in ("0x", "0X"):
            nums.append(int(p[2:] or "0", 16))
        elif len(p) > 1 and p[0] == "0":
            nums.append(int(p, 8))
        else:
            nums.append(int(p))
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_ip_host(host: str) -> IPAddress | None:
    """The address a URL's host denotes when it is an IP literal in any form a resolver
    would accept (dotted, bracketed IPv6 with a zone, legacy numeric), else ``None``."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return _legacy_ipv4(bare)


async def system_resolve(host: str) -> list[str]:
    """The system resolver's addresses for ``host`` (TCP, both families)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    out: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            addr = f"{addr}%{sockaddr[3]}"
        if addr not in out:
            out.append(addr)
    return out


class FetchRefused(Exception):
    """The URL, an address it resolves to, or a redirect is not allowed."""


class _AddressRefused(OSError):
    """Raised inside the connector's resolver (aiohttp wraps resolver OSErrors)."""


class _FetchFailed(Exception):
    """Not an error worth more than a count: bad status, wrong type, bad redirect."""


@dataclass(slots=True)
class Page:
    url: str  # after redirects
    content_type: str  # text/html, text/plain or application/xhtml+xml
    text: str  # the body, decoded
    charset: str  # the encoding used to decode it
    truncated: bool = False  # the body was longer than fetch_max_bytes and was cut


@dataclass(slots=True)
class FetchStats:
    """What happened to the pages asked for (counts only: failures are silent)."""

    fetched: int = 0  # pages read and text extracted
    refused: int = 0  # SSRF rules: scheme, credentials, address, redirects
    timed_out: int = 0  # fetch_timeout, or fetch_many's deadline
    failed: int = 0  # connection errors, HTTP status, content type, empty text

    def add(self, other: FetchStats) -> None:
        self.fetched += other.fetched
        self.refused += other.refused
        self.timed_out += other.timed_out
        self.failed += other.failed


class _CheckingResolver(AbstractResolver):
    """aiohttp's resolver hook: resolve, check every address, hand the checked addresses
    to the connector, which connects to them as numeric hosts (no second lookup)."""

    def __init__(self, resolve: Resolver, allowed: Callable[[IPAddress], bool]) -> None:
        self._resolve = resolve
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = list(await self._resolve(host))
        if not answers:
            raise OSError(f"{host} has no address")
        out: list[ResolveResult] = []
        for answer in answers:
            try:
                ip = ipaddress.ip_address(answer)
            except ValueError:
                raise _AddressRefused(f"{host} resolved to {answer!r}") from None
            if not self._allowed(ip):
                raise _AddressRefused(f"{host} resolves to a non-public address ({ip})")
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family in (socket.AF_UNSPEC, fam):
                out.append(
                    ResolveResult(
                        hostname=host,
                        host=str(ip),
                        port=port,
                        family=fam,
                        proto=0,
                        flags=socket.AI_NUMERICHOST,
                    )
                )
        if not out:
            raise OSError(f"{host} has no address of the family asked for")
        return out

    async def close(self) -> None:
        return None


def _refusal(exc: BaseException) -> _AddressRefused | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, _AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class PageFetcher:
    """Fetches pages under ``settings``' SSRF rules and caps. ``resolver`` and
    ``is_public`` replace the system resolver and :func:`is_public_address` (tests on
    loopback: a resolver whose answer changes, an address treated as public). Each
    :meth:`fetch` / :meth:`fetch_many` call opens and closes its own session: the
    fetcher holds nothing open between calls. ``stats`` counts every call's outcomes."""

    def __init__(
        self,
        settings: OnlineSettings,
        *,
        resolver: Resolver | None = None,
        is_public: IsPublic | None = None,
    ) -> None:
        self.settings = settings
        self._resolve: Resolver = resolver or system_resolve
        self._is_public: IsPublic = is_public or is_public_address
        self.stats = FetchStats()

    def _allowed(self, ip: IPAddress) -> bool:
        return self.settings.allow_private or self._is_public(ip)

    def check_url(self, url: str | URL) -> URL:
        """``url`` parsed and checked (scheme, credentials, literal address); a legacy
        numeric host comes back in dotted form. Raises :class:`FetchRefused`."""
        raw = str(url)
        if len(raw) > MAX_URL_CHARS:
            raise FetchRefused("URL too long")
        try:
            netloc = urlsplit(raw).netloc
            parsed = URL(raw)  # a port out of range is a ValueError here
        except ValueError as exc:
            raise FetchRefused(f"not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise FetchRefused(f"scheme {parsed.scheme!r} is not http or https")
        if "@" in netloc or parsed.raw_user is not None or parsed.raw_password is not None:
            raise FetchRefused("credentials in the URL")
        host = parsed.raw_host  # what aiohttp connects to (IDNA-normalised: "１２７.０.０.１")
        if not host or not parsed.host:
            raise FetchRefused("no host")
        ip = parse_ip_host(host) or parse_ip_host(parsed.host)
        if ip is None:
            return parsed
        if not self._allowed(ip):
            raise FetchRefused(f"non-public address {ip}")
        if ip.version == 4 and host != str(ip):
            parsed = parsed.with_host(str(ip))
        return parsed

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[aiohttp.ClientSession]:
        connector = aiohttp.TCPConnector(
            resolver=_CheckingResolver(self._resolve, self._allowed),
            use_dns_cache=False,
            force_close=True,  # no pooled connection outlives the fetch that checked it
            limit=CONCURRENCY * 2,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9",
                "Accept-Encoding": "gzip, deflate",
            },
            timeout=aiohttp.ClientTimeout(total=max(0.01, self.settings.fetch_timeout)),
        )
        try:
            yield session
        finally:
            await session.close()

    async def fetch(self, url: str) -> Page | None:
        """The page at ``url``, or ``None`` (refused, timed out or failed: counted in
        :attr:`stats`, logged at debug level, never raised)."""
        stats = FetchStats()
        try:
            async with self._session() as session:
                return await self._fetch_counted(session, url, stats)
        finally:
            self.stats.add(stats)

    async def _fetch_counted(
        self, session: aiohttp.ClientSession, url: str, stats: FetchStats
    ) -> Page | None:
        try:
            async with asyncio.timeout(max(0.0, self.settings.fetch_timeout)):
                return await self._fetch(session, url)
        except FetchRefused as exc:
            stats.refused += 1
            log.debug("fetch refused: %s", exc)
        except TimeoutError:
            stats.timed_out += 1
            log.debug("fetch timed out")
        except Exception as exc:  # connection errors, bad bodies, anything aiohttp raises
            refused = _refusal(exc)
            if refused is not None:
                stats.refused += 1
                log.debug("fetch refused: %s", refused)
            else:
                stats.failed += 1
                log.debug("fetch failed: %s", type(exc).__name__)
        return None

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> Page:
        target = self.check_url(url)
        for _hop in range(MAX_REDIRECTS + 1):
            async with session.get(target, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS:
                    location = resp.headers.get("Location", "")
                    if not location:
                        raise _FetchFailed("redirect without a Location")
                    try:
                        nxt = resp.url.join(URL(location))
                    except ValueError:
                        raise FetchRefused("redirect to a bad URL") from None
                    target = self.check_url(nxt)
                    continue
                if not 200 <= resp.status < 300:
                    raise _FetchFailed(f"HTTP {resp.status}")
                ctype = resp.content_type
                if ctype not in TEXT_TYPES:
                    raise _FetchFailed(f"content type {ctype!r}")
                body, cut = await self._read(resp)
                text, enc = decode_body(body, resp.charset, ctype, complete=not cut)
                return Page(str(resp.url), ctype, text, enc, cut)
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _read(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        limit = max(0, self.settings.fetch_max_bytes)
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            room = limit - len(buf)
            if len(chunk) > room:
                buf += chunk[:room]
                return bytes(buf), True  # the rest is never read: the connection closes
            buf += chunk
        return bytes(buf), False

    async def fetch_many(self, hits: Sequence[Hit], deadline: float) -> FetchStats:
        """Fetch the pages of ``hits`` that have no ``text`` yet, :data:`CONCURRENCY` at
        a time, and set their ``text`` to the page's main text. ``deadline`` is a time of
        the running loop (``loop.time()``); what is not done by then is dropped and
        counted as timed out. Failures leave ``text`` empty; the counts come back."""
        stats = FetchStats()
        todo = [h for h in hits if not h.text and h.url]
        done: set[int] = set()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int, hit: Hit) -> None:
            async with gate:
                page = await self._fetch_counted(session, hit.url, stats)
            if page is not None:
                try:
                    text = await extract_async(page.text, page.url, content_type=page.content_type)
                except Exception as exc:  # a parser bug must not end the others
                    log.debug("extraction failed: %s", type(exc).__name__)
                    text = ""
                if text:
                    hit.text = text
                    stats.fetched += 1
                else:
                    stats.failed += 1
            done.add(i)

        try:
            if todo:
                async with (
                    self._session() as session,
                    asyncio.timeout_at(deadline),
                    asyncio.TaskGroup() as tasks,
                ):
                    for i, hit in enumerate(todo):
                        tasks.create_task(one(i, hit))
        except TimeoutError:
            stats.timed_out += len(todo) - len(done)
        finally:
            self.stats.add(stats)
        return stats
