"""A small aiohttp application served on loopback from a background thread, with
changeable knobs and a log of the requests it saw: the base of the sign-in emulators
(``oidc.py``, ``github_oauth.py``), which are not model providers and so do not use
``server.py``'s provider pipeline.

Knobs are a frozen dataclass; ``configure(**changes)`` (thread-safe) or
``POST /_emulator/config`` replaces fields, ``GET /_emulator/config`` shows them,
``POST /_emulator/reset`` restores the constructor's knobs and clears the log."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import threading
from typing import Any, Generic, TypeVar

from aiohttp import web

from relaygate.emulator.background import BackgroundServer

__all__ = ["LoopbackServer"]

K = TypeVar("K")


class LoopbackServer(BackgroundServer, Generic[K]):
    """Subclasses add their routes in :meth:`add_routes`; ``self.knobs`` is read per request.
    The thread, ``start``/``stop``, ``with`` and ``port``/``origin`` are ``BackgroundServer``'s."""

    def __init__(self, knobs: K, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self._initial = knobs
        self._knobs = knobs
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, params

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

    # ---- the application ---------------------------------------------------------------------
    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add the emulator's own routes (the ``/_emulator/…`` ones are added already)."""

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

    def make_runner(self) -> web.AppRunner:
        return web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)

    # ---- lifecycle ---------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (prints the origin once listening)."""
        self.start()
        print(f"{type(self).__name__} listening on {self.origin}", flush=True)
        assert self._thread is not None
        with contextlib.suppress(KeyboardInterrupt):
            while self._thread.is_alive():
                self._thread.join(0.5)
        self.stop()
