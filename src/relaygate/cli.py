"""Command line: ``relaygate serve | migrate | admin | user | key | channel | emulator``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from relaygate.providers import PROVIDERS
from relaygate.settings import Settings
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.repo import Conflict, Repository

__all__ = ["main"]

T = TypeVar("T")


def _run(fn: Callable[[Repository, Settings], Awaitable[T]], *, do_migrate: bool = True) -> T:
    settings = Settings.from_env()

    async def go() -> T:
        engine = create_engine(settings.resolved_database_url())
        try:
            if do_migrate:
                await migrate(engine)
            secrets = Secrets(load_or_create_secret(settings.secret_key, settings.data_dir))
            return await fn(Repository(engine, secrets), settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (Conflict, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group()
def main() -> None:
    """relaygate: an OpenAI-compatible LLM API gateway."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Seed a demo user, key and emulator-backed channels.")
@click.option("--server", type=click.Choice(["uvicorn"]), default="uvicorn", show_default=True)
def serve(host: str, port: int, workers: int, demo: bool, server: str) -> None:
    """Run the gateway (migrates the database first)."""
    import uvicorn

    if demo:
        _seed_demo(host, port)
    else:
        _run(_park_emulator_channels)  # their in-process emulators only run with --demo
    uvicorn.run(
        "relaygate.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="relaygate.edge.protocol:EdgeProtocol",  # httptools + limits (edge/protocol.py)
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


async def _noop() -> None:
    return None


async def _park_emulator_channels(repo: Repository, s: Settings) -> None:
    for ch in await repo.list_channels():
        if ch.is_emulator and ch.status == "enabled":
            await repo.update_channel(ch.id, status="disabled")


@main.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the database schema."""
    _run(lambda repo, s: _noop())
    click.echo("database is at the latest schema")


# ---- admin -------------------------------------------------------------------
@main.group()
def admin() -> None:
    """Administrator bootstrap."""


@admin.command("bootstrap")
@click.option("--username", default="admin", show_default=True)
def admin_bootstrap(username: str) -> None:
    """Create (or reuse) an admin user and print a new admin token."""

    async def go(repo: Repository, s: Settings) -> str:
        user = await repo.get_user(username=username)
        if user is None:
            user = await repo.create_user(username, "admin")
        elif user.role != "admin":
            raise click.ClickException(f"user {username!r} exists and is not an admin")
        _, token = await repo.create_key(user.id, name="bootstrap", kind="admin")
        return token

    token = _run(go)
    click.echo(
        "admin token (shown once; use as `Authorization: Bearer …` on /admin/api):", err=True
    )
    click.echo(token)


# ---- users -------------------------------------------------------------------
@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
def user_create(username: str, role: str) -> None:
    rec = _run(lambda repo, s: repo.create_user(username, role))
    click.echo(json.dumps(rec.to_public()))


@user.command("list")
def user_list() -> None:
    for u in _run(lambda repo, s: repo.list_users()):
        click.echo(json.dumps(u.to_public()))


# ---- keys --------------------------------------------------------------------
@main.group()
def key() -> None:
    """Manage API keys."""


@key.command("create")
@click.option("--user", "username", required=True, help="Owner's username.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--kind", type=click.Choice(["api", "personal"]), default="api", show_default=True)
@click.option("--models", default=None, help="Comma-separated allow-list (default: all models).")
@click.option("--expires-days", type=float, default=None)
@click.option("--rpm-limit", type=int, default=None, help="Requests per minute.")
@click.option("--concurrency-limit", type=int, default=None, help="Requests at once.")
def key_create(
    username: str,
    name: str,
    kind: str,
    models: str | None,
    expires_days: float | None,
    rpm_limit: int | None,
    concurrency_limit: int | None,
) -> None:
    """Create a key and print it (it is shown only once)."""

    async def go(repo: Repository, s: Settings) -> str:
        owner = await repo.get_user(username=username)
        if owner is None:
            raise click.ClickException(f"no user {username!r}")
        expires = (
            datetime.now(UTC) + timedelta(days=expires_days) if expires_days is not None else None
        )
        _, plain = await repo.create_key(
            owner.id,
            name=name,
            kind=kind,
            models=_csv(models),
            expires_at=expires,
            prefix=s.key_prefix,
            rpm_limit=rpm_limit,
            concurrency_limit=concurrency_limit,
        )
        return plain

    plain = _run(go)
    click.echo("API key (shown once):", err=True)
    click.echo(plain)


@key.command("list")
@click.option("--user", "username", default=None)
def key_list(username: str | None) -> None:
    async def go(repo: Repository, s: Settings) -> list[dict[str, Any]]:
        uid = None
        if username:
            owner = await repo.get_user(username=username)
            if owner is None:
                raise click.ClickException(f"no user {username!r}")
            uid = owner.id
        return [k.to_public() for k in await repo.list_keys(uid)]

    for k in _run(go):
        click.echo(json.dumps(k))


# ---- channels ----------------------------------------------------------------
@main.group()
def channel() -> None:
    """Manage upstream channels."""


@channel.command("create")
@click.option("--name", required=True)
@click.option(
    "--provider",
    type=click.Choice(list(PROVIDERS)),
    default="openai_compat",
    show_default=True,
)
@click.option("--profile", default=None, help="openai | azure | deepseek | … (openai_compat only)")
@click.option("--base-url", required=True)
@click.option("--api-key", "api_keys", multiple=True, help="Upstream key (repeat for several).")
@click.option("--models", required=True, help="Comma-separated public model names.")
@click.option("--mapping", multiple=True, help="public=upstream model name (repeatable).")
@click.option("--priority", type=int, default=0)
@click.option("--weight", type=int, default=1)
@click.option("--config", "config_json", default=None, help='JSON, e.g. {"api_version": "…"}')
def channel_create(
    name: str,
    provider: str,
    profile: str | None,
    base_url: str,
    api_keys: tuple[str, ...],
    models: str,
    mapping: tuple[str, ...],
    priority: int,
    weight: int,
    config_json: str | None,
) -> None:
    from relaygate.providers.profiles import PROFILES

    prof = profile or ("openai" if provider == "openai_compat" else provider)
    if provider == "openai_compat" and prof not in PROFILES:
        raise click.ClickException(f"unknown profile {prof!r}; known: {', '.join(PROFILES)}")
    mapping_dict = {}
    for item in mapping:
        public, sep, upstream = item.partition("=")
        if not sep:
            raise click.ClickException("--mapping takes public=upstream")
        mapping_dict[public.strip()] = upstream.strip()
    try:
        config = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise click.ClickException("--config must be a JSON object")
    rec = _run(
        lambda repo, s: repo.create_channel(
            name=name,
            provider=provider,
            profile=prof,
            base_url=base_url,
            keys=list(api_keys),
            models=_csv(models) or [],
            model_mapping=mapping_dict,
            priority=priority,
            weight=weight,
            config=config,
        )
    )
    click.echo(json.dumps(rec.to_public()))


@channel.command("list")
def channel_list() -> None:
    for c in _run(lambda repo, s: repo.list_channels()):
        click.echo(json.dumps(c.to_public()))


# ---- demo --------------------------------------------------------------------
DEMO_MODELS = {"openai": "emulator-gpt", "anthropic": "emulator-claude"}


def _seed_demo(host: str, port: int) -> None:
    """Start built-in emulators in this process and (idempotently) seed demo data."""
    from relaygate.emulator import EmulatorServer

    servers = {}
    for provider in DEMO_MODELS:
        srv = EmulatorServer(provider, host="127.0.0.1", port=0)
        srv.start()
        servers[provider] = srv

    async def go(repo: Repository, s: Settings) -> str:
        demo = await repo.get_user(username="demo")
        if demo is None:
            demo = await repo.create_user("demo")
        key_file = Path(s.data_dir) / "demo-key.txt"
        plain = key_file.read_text().strip() if key_file.exists() else ""
        known = {k.key_hash for k in await repo.list_keys(demo.id)}
        if not plain or repo.secrets.hash_key(plain) not in known:
            _, plain = await repo.create_key(demo.id, name="demo", prefix=s.key_prefix)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(plain)
            os.chmod(key_file, 0o600)
        existing = {c.name: c for c in await repo.list_channels()}
        for provider, model in DEMO_MODELS.items():
            name = f"EMULATOR {provider} (not a real model)"
            base = servers[provider].base_url
            if name in existing:
                await repo.update_channel(existing[name].id, base_url=base, status="enabled")
            else:
                await repo.create_channel(
                    name=name,
                    provider="anthropic" if provider == "anthropic" else "openai_compat",
                    profile="anthropic" if provider == "anthropic" else "openai",
                    base_url=base,
                    keys=["emulator-key"],
                    models=[model],
                    is_emulator=True,
                )
        return plain

    plain = _run(go)
    url = f"http://{host}:{port}/v1"
    click.echo(
        f"""
relaygate demo is seeded. Models {", ".join(DEMO_MODELS.values())} are served by the
BUILT-IN EMULATOR (canned answers, not a real model).

  API key : {plain}
  base_url: {url}

  curl {url}/chat/completions -H "Authorization: Bearer {plain}" \\
       -H "Content-Type: application/json" \\
       -d '{{"model":"emulator-gpt","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'
""",
        err=True,
    )
    sys.stderr.flush()


# ---- emulator ----------------------------------------------------------------
@main.command()
@click.option(
    "--provider", type=click.Choice(["openai", "deepseek", "azure", "anthropic"]), required=True
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--latency-ms", type=float, default=0.0)
@click.option("--chunks", type=int, default=None)
@click.option("--chunk-interval-ms", type=float, default=None)
@click.option("--api-key", default=None, help="Require this key (default: accept any).")
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


if __name__ == "__main__":  # pragma: no cover
    main()
