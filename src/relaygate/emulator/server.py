"""HTTP server hosting one provider emulator, in a background thread or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from relaygate.emulator.anthropic import AnthropicEmulator
from relaygate.emulator.azure import AzureEmulator
from relaygate.emulator.background import BackgroundServer
from relaygate.emulator.baidu import BaiduEmulator
from relaygate.emulator.base import Core, Provider
from relaygate.emulator.deepseek import DeepSeekEmulator
from relaygate.emulator.gemini import GeminiEmulator
from relaygate.emulator.knobs import Knobs, Stats
from relaygate.emulator.openai import OpenAIEmulator
from relaygate.emulator.search_engines import SEARCH_EMULATORS
from relaygate.emulator.spark_ws import SparkWSEmulator
from relaygate.emulator.tencent import TencentEmulator
from relaygate.emulator.vendors import VENDOR_EMULATORS

__all__ = ["PROVIDERS", "EmulatorServer", "build_app", "run_emulator_cli"]

PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (
        OpenAIEmulator,
        DeepSeekEmulator,
        AzureEmulator,
        AnthropicEmulator,
        GeminiEmulator,
        SparkWSEmulator,
        BaiduEmulator,
        TencentEmulator,
    )
}
PROVIDERS.update({cls.name: cls for cls in VENDOR_EMULATORS})  # the OpenAI-compatible vendors
PROVIDERS.update({cls.name: cls for cls in SEARCH_EMULATORS})  # web search APIs (online)

_MAX_BODY = 64 * 1024 * 1024


def _make_provider(provider: str, core: Core) -> Provider:
    try:
        cls = PROVIDERS[provider]
    except KeyError:
        raise ValueError(
            f"unknown emulator provider {provider!r} (choose from {', '.join(PROVIDERS)})"
        ) from None
    return cls(core)


def build_app(impl: Provider) -> web.Application:
    """The aiohttp application: provider routes, control endpoints, provider-style 404s."""
    core = impl.core
    app = web.Application(client_max_size=_MAX_BODY)

    async def get_config(request: web.Request) -> web.Response:
        return impl.json_response(core.knobs.to_dict())

    async def post_config(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of knobs")
            if request.query.get("reset", "") in ("1", "true", "yes"):
                core.reset_knobs()
            knobs = core.configure(**changes)
        except (ValueError, TypeError) as exc:
            return impl.json_response({"error": str(exc)}, 400)
        return impl.json_response(knobs.to_dict())

    async def get_stats(request: web.Request) -> web.Response:
        full = request.query.get("requests", "1") not in ("0", "false", "no")
        return impl.json_response(core.stats.snapshot(with_requests=full))

    async def post_reset(request: web.Request) -> web.Response:
        core.stats.reset()
        knobs = core.reset_knobs()
        return impl.json_response({"ok": True, "knobs": knobs.to_dict()})

    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", post_config)
    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_post("/_emulator/reset", post_reset)
    impl.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", impl.api(impl.not_found, checks=False))
    return app


def _runner(impl: Provider) -> web.AppRunner:
    return web.AppRunner(
        build_app(impl),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=1.0,
    )


class EmulatorServer(BackgroundServer):
    """One provider emulator served on loopback from a background thread (the thread,
    ``start``/``stop``, ``with`` and ``async with`` are ``BackgroundServer``'s).

    >>> with EmulatorServer("openai", knobs=Knobs(chunks=3)) as emu:
    ...     client = openai.OpenAI(base_url=emu.base_url, api_key="sk-test")
    """

    def __init__(
        self,
        provider: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        knobs: Knobs | None = None,
        keep_requests: int = 50,
    ) -> None:
        self.core = Core(knobs, keep_requests)
        self.impl = _make_provider(provider, self.core)
        self.provider = provider
        super().__init__(host=host, port=port)

    # -- properties -----------------------------------------------------------------------
    @property
    def stats(self) -> Stats:
        return self.core.stats

    @property
    def knobs(self) -> Knobs:
        return self.core.knobs

    @property
    def base_url(self) -> str:
        """What an SDK / the gateway uses as the provider base URL."""
        return self.origin + self.impl.base_path

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (e.g. ``/v1/chat/completions``) on this server."""
        return self.origin + path

    # -- knobs / stats --------------------------------------------------------------------
    def configure(self, **changes: Any) -> Knobs:
        """Change knobs (thread-safe, takes effect for the next request)."""
        return self.core.configure(**changes)

    def reset(self, *, knobs: bool = True, stats: bool = True) -> None:
        """Back to the constructor's knobs and/or zeroed stats."""
        if knobs:
            self.core.reset_knobs()
        if stats:
            self.core.stats.reset()

    # -- lifecycle (BackgroundServer) -----------------------------------------------------
    def make_runner(self) -> web.AppRunner:
        return _runner(self.impl)

    def thread_name(self) -> str:
        return f"relaygate-emulator-{self.provider}"

    def on_stopping(self) -> None:
        self.core.stopping = True
        self.core.release_hangs()

    def __repr__(self) -> str:
        return f"EmulatorServer({self.provider!r}, base_url={self.base_url!r})"


def run_emulator_cli(
    provider: str, host: str = "127.0.0.1", port: int = 8090, **knobs: Any
) -> None:
    """Serve one emulator in the foreground until interrupted (``relaygate emulator``).

    ``knobs`` are ``Knobs`` fields; ``None`` values mean "default" and are ignored.
    Prints one line with the base URL once listening.
    """
    core = Core(Knobs().with_changes(**{k: v for k, v in knobs.items() if v is not None}))
    impl = _make_provider(provider, core)

    async def serve() -> None:
        runner = _runner(impl)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        print(
            f"relaygate emulator ({provider}) listening on http://{host}:{bound}"
            f"{impl.base_path}  (control: http://{host}:{bound}/_emulator/config)",
            flush=True,
        )
        if core.knobs.api_key is None and impl.default_key is not None:
            print(f"channel key it checks: {impl.default_key} (--api-key sets another)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            core.stopping = True
            core.release_hangs()
            await runner.cleanup()

    try:
        import uvloop

        runner_fn: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner_fn = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner_fn(serve())
