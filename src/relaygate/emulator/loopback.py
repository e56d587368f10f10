"""A small aiohttp application served on loopback from a background thread, with
changeable knobs and a log of the requests it saw: the base of the sign-in emulators
(``oidc.py``, ``github_oauth.py``), which are not model providers and so do not use
``server.py``'s provider pipeline.

Knobs are a frozen dataclass; ``configure(**changes)`` (thread-safe) or
``POST /_emulator/config`` replaces fields, ``GET /_emulator/config`` shows them,
``POST /_emulator/reset`` restores the constructor's knobs and clears the log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from aiohttp import web

__all__ = ["LoopbackServer"]

K = TypeVar("K")


class LoopbackServer(Generic[K]):
    """Subclasses add their routes in :meth:`add_routes`; ``self.knobs`` is read per request."""

    def __init__(self, knobs: K, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._initial = knobs
        self._knobs = knobs
        self._lock = threading.Lock()
        self.host = host
        self._port = port
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, params
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ---- knobs -------------------------------------------------------------------------------
    @property
    def knobs(self) -> K:
        return self._knobs

    def configure(self, **changes: Any) -> K:
        with self._lock:
            self._knobs = dataclasses.replace(self._knobs, **changes)  # type: ignore[type-var]
            return self._knobs

    def reset(self) -> None:
        with self._lock:
            self._knobs = self._initial
            self.requests.clear()

    def note(self, request: web.Request, params: dict[str, str]) -> None:
        """Log a request (kept: the last 200)."""
        self.requests.append((request.method, request.path, params))
        del self.requests[:-200]

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self._port}"

    # ---- the application ---------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)

        async def get_config(request: web.Request) -> web.Response:
            return web.json_response(dataclasses.asdict(self._knobs))  # type: ignore[call-overload]

        async def post_config(request: web.Request) -> web.Response:
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise TypeError("expected a JSON object of knobs")
                knobs = self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(dataclasses.asdict(knobs))  # type: ignore[call-overload]

        async def post_reset(request: web.Request) -> web.Response:
            self.reset()
            return web.json_response({"ok": True})

        app.router.add_get("/_emulator/config", get_config)
        app.router.add_post("/_emulator/config", post_config)
        app.router.add_post("/_emulator/reset", post_reset)
        self.add_routes(app)
        return app

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("emulator did not start in time")
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(
                f"emulator failed to start: {self._start_error}"
            ) from self._start_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self._port)
            loop.run_until_complete(site.start())
            self._port = int(runner.addresses[0][1])
        except BaseException as exc:
            self._start_error = exc
            with contextlib.suppress(Exception):
                loop.run_until_complete(runner.cleanup())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._thread = None
        self._loop = None

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (prints the origin once listening)."""
        self.start()
        print(f"{type(self).__name__} listening on {self.origin}", flush=True)
        assert self._thread is not None
        with contextlib.suppress(KeyboardInterrupt):
            while self._thread.is_alive():
                self._thread.join(0.5)
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
