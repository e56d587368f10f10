"""The online request's flow. :class:`OnlineStage` is a prepare stage (``stages.py``): it
reads the triggers — ``online: true``, ``web_search_options``, a ``:online`` model suffix,
a model the operator made always online — takes them out of the body (no upstream sees
them), and marks the request (:data:`ONLINE`, plus the search fee for billing). After
routing, billing and the before-filters, the chat relay calls :meth:`OnlineStage.search`
(``relay/online.py``, which also sends seed 001's stream notices): query, search, page
fetches, ranking and trimming under one deadline, then the sources go into the body. A
backend that fails or times out leaves the request as it was: it is answered without
search, and ``online.status`` in the answer says why (docs/online.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relaygate.billing.stage import FEE_NAMES, SURCHARGES
from relaygate.context import RelayContext, Slot
from relaygate.errors import InvalidRequest
from relaygate.online.base import Hit, OnlineSettings, SearchBackend, SearchFailed
from relaygate.online.inject import inject_sources
from relaygate.online.query import search_query

__all__ = ["ONLINE", "SUFFIX", "OnlineRequest", "OnlineStage", "Rewrite", "Screen"]

log = logging.getLogger("relaygate.online")

SUFFIX = ":online"
#: results per ``web_search_options.search_context_size``
_CONTEXT_SIZES = {"low": 3, "medium": None, "high": 8}
#: what a fetch step needs (``online/fetch.py`` PageFetcher)
Fetch = Callable[[list[Hit], float], Awaitable[Any]]
#: the rewrite model's call: messages -> query ("" when it gave none)
Rewrite = Callable[[list[Any]], Awaitable[str]]
Rank = Callable[[list[Hit], int], list[Hit]]
#: content safety on a hit (its title, snippet and page text): the hit, masked where the
#: lists say so, or None to drop it (``relay/online.py``)
Screen = Callable[[Hit], Hit | None]


@dataclass(slots=True)
class OnlineRequest:
    """One request's search: asked for, then what happened."""

    results: int
    query: str = ""
    hits: list[Hit] = field(default_factory=list)
    #: pending | ok (sources injected) | empty (nothing found) | no_query | timeout | failed
    #: | disabled (no backend configured)
    status: str = "pending"
    reason: str = ""
    ms: int = 0
    block: str = ""  # the sources as put before the conversation (status ok)
    filtered: int = 0  # hits dropped by content safety

    @property
    def searched(self) -> bool:
        """The backend answered (the search fee is due)."""
        return self.status in ("ok", "empty")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "query": self.query, "hits": len(self.hits)}
        if self.reason:
            out["reason"] = self.reason
        if self.filtered:
            out["filtered"] = self.filtered
        return out


ONLINE: Slot[OnlineRequest] = Slot("online.request")


class OnlineStage:
    """The triggers (a prepare stage) and the search itself."""

    def __init__(
        self,
        settings: OnlineSettings,
        backend: SearchBackend | None,
        *,
        rank: Rank,
        fetch: Fetch | None = None,
        fee: str = FEE_NAMES[0],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self._rank = rank
        self._fetch = fetch
        self._fee = fee
        self._always = frozenset(settings.always)

    # ---- triggers (before routing) ------------------------------------------------------
    async def prepare(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        if ctx.endpoint != "chat":
            return
        wanted = False
        results = self.settings.results
        if "online" in body:
            flag = body.pop("online")
            if flag is not None and not isinstance(flag, bool):
                raise InvalidRequest("`online` must be true or false.", param="online")
            wanted = flag is True
        if "web_search_options" in body:
            opts = body.pop("web_search_options")
            if opts is not None:
                if not isinstance(opts, dict):
                    raise InvalidRequest(
                        "`web_search_options` must be an object.", param="web_search_options"
                    )
                size = opts.get("search_context_size")
                if size is not None:
                    if not isinstance(size, str) or size not in _CONTEXT_SIZES:
                        raise InvalidRequest(
                            "`web_search_options.search_context_size` must be low, medium or high.",
                            param="web_search_options.search_context_size",
                        )
                    results = _CONTEXT_SIZES[size] or results
                wanted = True
        model = ctx.model or ""
        if model.endswith(SUFFIX):
            model = model[: -len(SUFFIX)]
            if not model:
                raise InvalidRequest("`model` names no model before `:online`.", param="model")
            ctx.model = model
            body["model"] = model
            wanted = True
        if model in self._always:
            wanted = True
        if not wanted:
            return
        ctx.put(ONLINE, OnlineRequest(results=results))
        if self.backend is not None:
            ctx.put(SURCHARGES, (self._fee,))  # reserved now, charged if the search ran

    # ---- the search (after routing and the before-filters) --------------------------------
    async def search(
        self,
        ctx: RelayContext,
        body: dict[str, Any],
        rewrite: Rewrite | None = None,
        screen: Screen | None = None,
    ) -> OnlineRequest | None:
        """Search for ``ctx``'s online request and put the sources into ``body``; None
        when the request is not online. Never raises for the backend's failures."""
        job = ctx.get(ONLINE)
        if job is None:
            return None
        began = time.perf_counter()
        try:
            await self._search(ctx, job, body, rewrite, screen)
        finally:
            job.ms = round((time.perf_counter() - began) * 1000)
            if not job.searched:
                ctx.pop(SURCHARGES)  # no search, no fee
        return job

    async def _search(
        self,
        ctx: RelayContext,
        job: OnlineRequest,
        body: dict[str, Any],
        rewrite: Rewrite | None,
        screen: Screen | None,
    ) -> None:
        backend = self.backend
        if backend is None:
            job.status, job.reason = "disabled", "no search backend is configured"
            return
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.timeout
        try:
            async with asyncio.timeout_at(deadline):
                query = ""
                if rewrite is not None:
                    try:
                        query = await rewrite(messages)
                    except Exception as exc:  # the rewrite is a nicety: fall back
                        log.warning(
                            "search query rewrite failed: %s",
                            exc,
                            extra={"request_id": ctx.request_id},
                        )
                job.query = query or search_query(messages)
                if not job.query:
                    job.status, job.reason = "no_query", "the conversation has no user text"
                    return
                hits = await backend.search(job.query, k=job.results)
        except TimeoutError:
            job.status = "timeout"
            job.reason = f"the search took longer than {s.timeout:g} s"
            log.warning("search timed out", extra={"request_id": ctx.request_id})
            return
        except SearchFailed as exc:
            job.status = "timeout" if exc.kind == "timeout" else "failed"
            job.reason = str(exc)[:300]
            log.warning("search failed: %s", exc, extra={"request_id": ctx.request_id})
            return
        if self._fetch is not None and hits:
            try:  # the pages' text where it comes in time; the snippets otherwise
                async with asyncio.timeout_at(deadline):
                    await self._fetch(hits, deadline)
            except TimeoutError:
                log.info("page fetches cut at the deadline", extra={"request_id": ctx.request_id})
        if screen is not None:  # content safety: search results are text the model reads
            kept = [h for h in map(screen, hits) if h is not None]
            job.filtered = len(hits) - len(kept)
            hits = kept
        job.hits = self._rank(hits, job.results)
        if not job.hits:
            job.status = "empty"
            return
        today = datetime.now(UTC).date().isoformat()
        job.block = inject_sources(body, job.hits, job.query, today)
        job.status = "ok"

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()
