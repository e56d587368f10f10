"""What ``/readyz`` reports: each dependency of the worker, checked with a bound on its
time, the answer reused for ``RELAYGATE_READY_CACHE`` seconds (a storm of probes or
scrapes costs one check), and one check at a time (callers arriving meanwhile share it).

* ``database`` — one small query (the configuration revision) within
  ``RELAYGATE_READY_TIMEOUT`` seconds.
* ``redis`` — only when ``RELAYGATE_REDIS_URL`` is set: one ``GET`` within the same bound;
  a worker that fell back to in-process state at start-up reports it without asking.
* ``request_log`` — the writer's own health (memory only): rows waiting, spool and
  database writable.
* ``catalog`` — the configuration snapshot this worker serves from.

Verdict (docs/metrics.md, "Readiness"): ``not_ready`` (503) when the worker has no
configuration to serve from and the database does not answer, or while it starts or
drains; ``degraded`` (200) when anything else is wrong — the node still serves: from its
cached configuration, spooling request-log rows, with limits kept locally without Redis;
``ready`` (200) otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from relaygate.metrics.config import MetricsConfig
from relaygate.metrics.view import WorkerView
from relaygate.sharedstate.memory import InProcessState

__all__ = ["REDIS_FALLBACK", "Readiness"]

Check = dict[str, Any]

REDIS_FALLBACK = (
    "Redis does not answer: the node keeps serving without the shared counts; limits and "
    "concurrency caps fall back to each worker's local state until Redis answers again "
    "(docs/limits.md)"
)
#: the key read to see Redis answer (absent: a GET of nothing)
_PING_KEY = "ready:ping"


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:200] if first else type(exc).__name__


class Readiness:
    def __init__(
        self,
        view: WorkerView,
        cfg: MetricsConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._view = view
        self._cfg = cfg
        self._clock = clock
        self._checks: dict[str, Check] | None = None
        self._at = 0.0
        self._running: asyncio.Future[dict[str, Check]] | None = None

    async def report(self) -> tuple[int, str, dict[str, Check]]:
        """``(HTTP status, verdict, checks)``: the dependency checks (cached), judged
        with the worker's live flags (starting, draining)."""
        checks = await self.checks()
        v = self._view
        if v.draining:
            return 503, "draining", checks
        if not v.ready:
            return 503, "not_ready", checks
        if not checks["database"]["ok"] and not checks["catalog"]["ok"]:
            return 503, "not_ready", checks
        if all(c["ok"] for c in checks.values()):
            return 200, "ready", checks
        return 200, "degraded", checks

    async def checks(self) -> dict[str, Check]:
        cached = self._checks
        if cached is not None and self._clock() - self._at < self._cfg.ready_cache:
            return cached
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._run())
        # shielded: a caller that goes away does not cancel the others' check
        return await asyncio.shield(running)

    async def _run(self) -> dict[str, Check]:
        try:
            database, redis = await asyncio.gather(self._database(), self._redis())
            checks = {
                "database": database,
                "redis": redis,
                "request_log": self._request_log(),
                "catalog": self._catalog(database),
            }
            self._checks, self._at = checks, self._clock()
            return checks
        finally:
            self._running = None

    async def _timed(self, call: Awaitable[Any]) -> tuple[Check, Any]:
        timeout = self._cfg.ready_timeout
        began = time.perf_counter()
        try:
            value = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {timeout:g} s"}, None
        except Exception as exc:
            return {"ok": False, "error": _error(exc)}, None
        ms = round((time.perf_counter() - began) * 1000, 1)
        return {"ok": True, "latency_ms": ms}, value

    async def _database(self) -> Check:
        check, revision = await self._timed(self._view.repo.revision())
        if check["ok"]:
            check["revision"] = revision
        return check

    async def _redis(self) -> Check:
        v = self._view
        if not v.settings.redis_url:
            return {"ok": True, "configured": False}
        shared = v.shared
        if isinstance(shared, InProcessState):  # fell back at start-up (sharedstate/)
            return {
                "ok": False,
                "configured": True,
                "error": "not connected since this worker started",
                "effect": REDIS_FALLBACK,
            }
        if getattr(shared, "degraded", False) is True:  # a fallback state answering locally
            return {
                "ok": False,
                "configured": True,
                "error": "Redis is away; the local fallback answers",
                "effect": REDIS_FALLBACK,
            }
        check, _ = await self._timed(shared.get(_PING_KEY))
        check["configured"] = True
        if not check["ok"]:
            check["effect"] = REDIS_FALLBACK
        return check

    def _request_log(self) -> Check:
        writer = self._view.usage_log
        if writer is None:
            return {"ok": True, "enabled": False}
        health = writer.health()
        over = health["rows_backlog"] > self._cfg.ready_backlog
        ok = health["db_writable"] and health["spool_writable"] and not over
        check: Check = {"ok": ok, "enabled": True, **health}
        if over:
            check["effect"] = (
                f"more than {self._cfg.ready_backlog} rows wait to be written; they are kept "
                "in the spool (docs/durability.md)"
            )
        return check

    def _catalog(self, database: Check) -> Check:
        v = self._view
        catalog = v.catalog
        # start-up loads the snapshot before the worker is ready: ready = configuration held
        check: Check = {
            "ok": v.ready,
            "revision": catalog.revision,
            "channels": len(catalog.all_channels()),
        }
        if database["ok"] and database.get("revision") != catalog.revision:
            check["refresh_pending"] = True  # another process changed it a moment ago
        if not database["ok"] and v.ready:
            check["effect"] = "serving the configuration loaded before the database went away"
        return check
