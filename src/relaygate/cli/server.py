"""``relaygate serve | migrate | admin | emulator``."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from relaygate import demo as demo_setup
from relaygate.cli.base import main, noop, run_service
from relaygate.cli.config_env import CONFIG_ENV, use_config
from relaygate.console.demo import console_banner, demo_console_accounts
from relaygate.emulator.server import PROVIDERS as EMULATED
from relaygate.metrics.multiproc import prepare_dir, remove_dir
from relaygate.settings import Settings


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Seed a demo user, key and emulator-backed channels.")
@click.option("--server", type=click.Choice(["uvicorn"]), default="uvicorn", show_default=True)
@click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    metavar="PATH",
    help=f"TOML configuration file (default: ${CONFIG_ENV}); set variables beat it.",
)
def serve(
    host: str, port: int, workers: int, demo: bool, server: str, config_path: str | None
) -> None:
    """Run the gateway (migrates the database first)."""
    use_config(config_path)  # before any setting is read; the workers inherit the values
    os.environ["RELAYGATE_WORKERS"] = str(max(1, workers))  # per-worker shares (routing.md)
    if demo:
        _seed_demo(host, port)
    else:
        # their in-process emulators only run with --demo
        run_service(demo_setup.park_emulator_channels)
    # several workers: their metrics meet in a fresh private directory (docs/metrics.md)
    metrics_dir = prepare_dir(Settings.from_env().data_dir, workers)
    try:
        _run_uvicorn(host, port, workers)
    finally:
        remove_dir(metrics_dir)


def _run_uvicorn(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "relaygate.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="relaygate.edge.protocol:EdgeProtocol",  # httptools + limits (edge/protocol.py)
        # /v1/realtime (relay/realtime.py): named, so a missing websockets fails the start
        # instead of upgrades being served as plain GETs
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        log_level="warning",
        # open requests get this long to finish on SIGTERM; then streams are cut with
        # an error event and [DONE] (relay/chat.py), logged as stream_cut
        timeout_graceful_shutdown=max(1, round(Settings.from_env().drain_seconds)),
    )


@main.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the database schema (the one command that may create a database)."""
    run_service(lambda svc, s: noop(), create_database=True)
    click.echo("database is at the latest schema")


# ---- admin -------------------------------------------------------------------
@main.group()
def admin() -> None:
    """Administrator bootstrap."""


@admin.command("bootstrap")
@click.option("--username", default="admin", show_default=True)
def admin_bootstrap(username: str) -> None:
    """Create (or reuse) an admin user and print a new admin token."""
    token = run_service(lambda svc, s: svc.bootstrap_admin(username))
    click.echo(
        "admin token (shown once; use as `Authorization: Bearer …` on /admin/api):", err=True
    )
    click.echo(token)


# ---- demo (relaygate/demo.py) ------------------------------------------------
def _seed_demo(host: str, port: int) -> None:
    """Start built-in emulators in this process and (idempotently) seed demo data."""
    servers = demo_setup.start_emulators()
    urls = {provider: srv.base_url for provider, srv in servers.items()}
    plain = run_service(lambda svc, s: demo_setup.seed(svc, s, urls))
    if not os.environ.get("RELAYGATE_SEARCH_BACKEND"):  # online answers from the demo corpus
        run_service(lambda svc, s: demo_setup.load_demo_index(s))
        os.environ["RELAYGATE_SEARCH_BACKEND"] = "local"  # the workers inherit it
    click.echo(demo_setup.banner(host, port, plain), err=True)
    accounts = run_service(lambda svc, s: demo_console_accounts(svc, s.data_dir))
    click.echo(console_banner(host, port, accounts), err=True)  # the console's demo users
    sys.stderr.flush()


# ---- emulator ----------------------------------------------------------------
@main.command()
@click.option("--provider", type=click.Choice(sorted(EMULATED)), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--latency-ms", type=float, default=0.0)
@click.option("--chunks", type=int, default=None)
@click.option("--chunk-interval-ms", type=float, default=None)
@click.option(
    "--api-key",
    default=None,
    help="Require this key (default: any key; tencent and spark_ws print the one they check).",
)
def emulator(
    provider: str,
    host: str,
    port: int,
    latency_ms: float,
    chunks: int | None,
    chunk_interval_ms: float | None,
    api_key: str | None,
) -> None:
    """Run an emulated upstream provider (for tests, demos and benchmarks)."""
    from relaygate.emulator import run_emulator_cli

    knobs: dict[str, Any] = {"latency_ms": latency_ms}
    if chunks is not None:
        knobs["chunks"] = chunks
    if chunk_interval_ms is not None:
        knobs["chunk_interval_ms"] = chunk_interval_ms
    if api_key is not None:
        knobs["api_key"] = api_key
    click.echo(f"EMULATED {provider} upstream on http://{host}:{port} (not a real model)", err=True)
    run_emulator_cli(provider, host, port, **knobs)
