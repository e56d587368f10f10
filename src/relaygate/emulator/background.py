"""An aiohttp application served on loopback from a background thread: the lifecycle that
``server.py`` (``EmulatorServer``, the provider emulators) and ``loopback.py``
(``LoopbackServer``, the sign-in emulators) share.

``start()`` runs an event loop in a daemon thread, sets the application up there and returns
once it listens (``port`` is then the bound one, also when asked for port 0) or raises
``RuntimeError`` when it could not; ``stop()`` stops the loop and cleans the runner up; both
work as ``with`` and ``async with``."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["BackgroundServer"]


class BackgroundServer(abc.ABC):
    """Subclasses give the runner (:meth:`make_runner`) and may name the thread
    (:meth:`thread_name`) and act when the loop stops (:meth:`on_stopping`)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ---- what subclasses give ----------------------------------------------------------------
    @abc.abstractmethod
    def make_runner(self) -> web.AppRunner:
        """The runner of the application (built in the server's thread)."""

    def thread_name(self) -> str:
        return type(self).__name__

    def on_stopping(self) -> None:  # noqa: B027 - a hook, nothing to do by default
        """Called in the server's thread once the loop has stopped, before the cleanup."""

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self._port}"

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name=self.thread_name(), daemon=True)
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
        runner = self.make_runner()
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
            self.on_stopping()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
