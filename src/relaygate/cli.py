"""Command line: ``relaygate serve | migrate | admin | user | key | channel | emulator``."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from relaygate import demo as demo_setup
from relaygate.errors import RelayError
from relaygate.providers import PROVIDERS
from relaygate.services.admin import AdminService
from relaygate.services.billing_admin import BillingAdmin
from relaygate.services.fields import ValidationError
from relaygate.settings import Settings
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine, migrate, sqlite_path
from relaygate.storage.repo import Repository

__all__ = ["main"]

T = TypeVar("T")

# the CLI option behind each field the service names in its errors
OPTIONS = {
    "username": "--user/--username",
    "expires_at": "--expires-days",
    "models": "--models",
    "rpm_limit": "--rpm-limit",
    "concurrency_limit": "--concurrency-limit",
    "tpm_limit": "--tpm-limit",
    "spend_limit": "--spend-limit",
    "ip_allow": "--ip-allow",
    "group_name": "--group",
    "role": "--role",
    "status": "--status",
    "keys": "--api-key",
    "base_url": "--base-url",
    "profile": "--profile",
    "model_mapping": "--mapping",
    "priority": "--priority",
    "weight": "--weight",
    "config": "--config",
    "name": "--name",
}


def _option_of(field: str | None) -> str | None:
    if field is None:
        return None
    return OPTIONS.get(field.split("[", 1)[0].split(".", 1)[0].split(" ", 1)[0])


def _check_database(settings: Settings) -> None:
    """Refuse to work on a vanished database: an installation's data directory (it holds the
    generated ``secret.key``) whose SQLite file is gone would otherwise be replaced, silently,
    by a new empty database. ``relaygate migrate`` creates it deliberately."""
    path = sqlite_path(settings.resolved_database_url())
    secret = settings.data_dir / "secret.key"
    if path is None or path.exists() or not secret.exists():
        return
    raise click.ClickException(
        f"the database {path} is missing, but {secret} exists: this data directory belongs "
        "to an installation whose database has gone. Restore relaygate.db from a backup, or "
        "run `relaygate migrate` to create a new, empty database (every user, key and channel "
        "will have to be created again)."
    )


def _run(
    fn: Callable[[AdminService, Settings], Awaitable[T]], *, create_database: bool = False
) -> T:
    """Run ``fn`` with the service on the configured database (migrated first). Only
    ``create_database`` may create a missing database of an existing installation."""
    settings = Settings.from_env()
    if not create_database:
        _check_database(settings)

    async def go() -> T:
        engine = create_engine(settings.resolved_database_url())
        log_url = settings.resolved_log_database_url()  # docs/usage-reports.md
        log_engine = create_engine(log_url) if log_url else None
        try:
            await migrate(engine)
            if log_engine is not None:
                await migrate(log_engine)
            secrets = Secrets(load_or_create_secret(settings.secret_key, settings.data_dir))
            svc = AdminService(
                Repository(engine, secrets, log_engine=log_engine),
                api_key_prefix=settings.api_key_prefix,
                personal_key_prefix=settings.personal_key_prefix,
                personal_concurrency=settings.personal_concurrency,
            )
            return await fn(svc, settings)
        finally:
            await engine.dispose()
            if log_engine is not None:
                await log_engine.dispose()

    try:
        return asyncio.run(go())
    except ValidationError as exc:
        option = _option_of(exc.field)
        raise click.ClickException(f"{option}: {exc.message}" if option else exc.message) from exc
    except RelayError as exc:
        raise click.ClickException(exc.message) from exc
    except ValueError as exc:  # e.g. channel keys that the configured secret cannot decrypt
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

    os.environ["RELAYGATE_WORKERS"] = str(max(1, workers))  # per-worker shares (routing.md)
    if demo:
        _seed_demo(host, port)
    else:
        _run(demo_setup.park_emulator_channels)  # their in-process emulators only run with --demo
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
        # open requests get this long to finish on SIGTERM; then streams are cut with
        # an error event and [DONE] (relay/chat.py), logged as stream_cut
        timeout_graceful_shutdown=max(1, round(Settings.from_env().drain_seconds)),
    )


async def _noop() -> None:
    return None


@main.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the database schema (the one command that may create a database)."""
    _run(lambda svc, s: _noop(), create_database=True)
    click.echo("database is at the latest schema")


# ---- admin -------------------------------------------------------------------
@main.group()
def admin() -> None:
    """Administrator bootstrap."""


@admin.command("bootstrap")
@click.option("--username", default="admin", show_default=True)
def admin_bootstrap(username: str) -> None:
    """Create (or reuse) an admin user and print a new admin token."""
    token = _run(lambda svc, s: svc.bootstrap_admin(username))
    click.echo(
        "admin token (shown once; use as `Authorization: Bearer …` on /admin/api):", err=True
    )
    click.echo(token)


# ---- users -------------------------------------------------------------------
@main.group()
def user() -> None:
    """Manage users."""


def _user_limits(
    group: str | None, rpm_limit: int | None, tpm_limit: int | None, concurrency_limit: int | None
) -> dict[str, Any]:
    """The user options given (unset ones are left out: a patch changes only those)."""
    given = {
        "group_name": group,
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
        "concurrency_limit": concurrency_limit,
    }
    return {k: v for k, v in given.items() if v is not None}


_USER_LIMIT_OPTIONS = (
    click.option("--group", default=None, help="Price group (tier), e.g. default, vip."),
    click.option("--rpm-limit", type=int, default=None, help="Requests per minute, all keys."),
    click.option("--tpm-limit", type=int, default=None, help="Tokens per minute, all keys."),
    click.option("--concurrency-limit", type=int, default=None, help="Requests at once."),
)


def _with_user_limits(fn: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_USER_LIMIT_OPTIONS):
        fn = option(fn)
    return fn


@user.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@_with_user_limits
def user_create(
    username: str,
    role: str,
    group: str | None,
    rpm_limit: int | None,
    tpm_limit: int | None,
    concurrency_limit: int | None,
) -> None:
    body = {
        "username": username,
        "role": role,
        **_user_limits(group, rpm_limit, tpm_limit, concurrency_limit),
    }
    rec = _run(lambda svc, s: svc.create_user(body))
    click.echo(json.dumps(rec.to_public()))


@user.command("update")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["user", "admin"]), default=None)
@click.option("--status", type=click.Choice(["active", "disabled"]), default=None)
@_with_user_limits
@click.option(
    "--no-limit",
    "cleared",
    multiple=True,
    type=click.Choice(["rpm", "tpm", "concurrency"]),
    help="Remove that limit (repeatable).",
)
def user_update(
    username: str,
    role: str | None,
    status: str | None,
    group: str | None,
    rpm_limit: int | None,
    tpm_limit: int | None,
    concurrency_limit: int | None,
    cleared: tuple[str, ...],
) -> None:
    """Change a user's role, status, price group or limits (only the options given)."""
    body: dict[str, Any] = _user_limits(group, rpm_limit, tpm_limit, concurrency_limit)
    body.update({k: v for k, v in (("role", role), ("status", status)) if v is not None})
    body.update({f"{name}_limit": None for name in cleared})

    async def go(svc: AdminService, s: Settings) -> Any:
        return await svc.update_user((await svc.user_named(username)).id, body)

    click.echo(json.dumps(_run(go).to_public()))


@user.command("list")
def user_list() -> None:
    for u in _run(lambda svc, s: svc.list_users()):
        click.echo(json.dumps(u.to_public()))


# ---- keys --------------------------------------------------------------------
@main.group()
def key() -> None:
    """Manage API keys."""


def _expiry(days: float) -> str:
    """``--expires-days`` as the ``expires_at`` time the service checks (it must be future)."""
    try:
        if not math.isfinite(days):
            raise OverflowError
        return (datetime.now(UTC) + timedelta(days=days)).isoformat()
    except OverflowError:
        raise click.BadParameter(f"{days} is not a usable number of days.") from None


@key.command("create")
@click.option("--user", "username", required=True, help="Owner's username.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--kind", type=click.Choice(["api", "personal"]), default="api", show_default=True)
@click.option("--models", default=None, help="Comma-separated allow-list (default: all models).")
@click.option("--expires-days", type=float, default=None, help="Days until it expires (> 0).")
@click.option("--rpm-limit", type=int, default=None, help="Requests per minute.")
@click.option(
    "--concurrency-limit",
    type=int,
    default=None,
    help="Requests at once (personal keys: RELAYGATE_PERSONAL_CONCURRENCY by default).",
)
@click.option("--tpm-limit", type=int, default=None, help="Tokens per minute.")
@click.option("--spend-limit", default=None, help="Spending cap in the currency, e.g. 50.")
@click.option("--ip-allow", default=None, help="Comma-separated addresses / CIDRs allowed.")
def key_create(
    username: str,
    name: str,
    kind: str,
    models: str | None,
    expires_days: float | None,
    rpm_limit: int | None,
    concurrency_limit: int | None,
    tpm_limit: int | None,
    spend_limit: str | None,
    ip_allow: str | None,
) -> None:
    """Create a key and print it (it is shown only once)."""
    body: dict[str, Any] = {
        "username": username,
        "name": name,
        "kind": kind,
        "models": _csv(models),
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
        "spend_limit": spend_limit,
        "ip_allow": _csv(ip_allow),
    }
    if concurrency_limit is not None:  # absent: the kind's default
        body["concurrency_limit"] = concurrency_limit
    if expires_days is not None:
        body["expires_at"] = _expiry(expires_days)

    async def go(svc: AdminService, s: Settings) -> str:
        _, plain = await svc.create_key(body)
        return plain

    plain = _run(go)
    click.echo("API key (shown once):", err=True)
    click.echo(plain)


@key.command("list")
@click.option("--user", "username", default=None)
def key_list(username: str | None) -> None:
    for k in _run(lambda svc, s: svc.list_keys(username=username)):
        click.echo(json.dumps(k.to_public()))


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
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="Upstream key (repeat for several; leave out for an upstream without keys).",
)
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
    body: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "base_url": base_url,
        "keys": list(api_keys),
        "models": _csv(models),
        "model_mapping": mapping_dict,
        "priority": priority,
        "weight": weight,
        "config": config,
    }
    if profile is not None:
        body["profile"] = profile
    rec = _run(lambda svc, s: svc.create_channel(body))
    click.echo(json.dumps(rec.to_public()))


@channel.command("list")
def channel_list() -> None:
    for c in _run(lambda svc, s: svc.list_channels()):
        click.echo(json.dumps(c.to_public()))


# ---- billing administration (services/billing_admin.py) ----------------------
@user.command("adjust")
@click.option("--user", "username", required=True)
@click.option("--amount", required=True, help="Signed amount of money, e.g. 50 or -12.5.")
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@click.option("--kind", type=click.Choice(["adjust", "topup"]), default="adjust", show_default=True)
def user_adjust(username: str, amount: str, reason: str, kind: str) -> None:
    """Credit or debit a user's balance, with a reason (a ledger row)."""

    async def go(svc: AdminService, s: Settings) -> dict[str, Any]:
        uid = (await svc.user_named(username)).id
        body = {"amount": amount, "reason": reason, "kind": kind}
        return await BillingAdmin(svc.repo).adjust(uid, body, actor=f"cli:{os.getuid()}")

    click.echo(json.dumps(_run(go)))


@main.group()
def code() -> None:
    """Redemption codes."""


@code.command("generate")
@click.option("--count", type=int, required=True, help="How many codes (1-10000).")
@click.option("--amount", default=None, help="Money each code credits, e.g. 50.")
@click.option("--plan-id", type=int, default=None, help="A plan each code grants instead.")
@click.option("--batch", default=None, help="Batch name (default: the time).")
@click.option("--expires-days", type=float, default=None, help="Days until the codes expire.")
def code_generate(
    count: int,
    amount: str | None,
    plan_id: int | None,
    batch: str | None,
    expires_days: float | None,
) -> None:
    """Generate a batch of codes; prints one code a line (the batch name on stderr)."""
    body: dict[str, Any] = {"count": count}
    for name, value in (("amount", amount), ("plan_id", plan_id), ("batch", batch)):
        if value is not None:
            body[name] = value
    if expires_days is not None:
        body["expires_at"] = _expiry(expires_days)
    out = _run(lambda svc, s: BillingAdmin(svc.repo).generate_codes(body, f"cli:{os.getuid()}"))
    click.echo(f"batch {out['batch']}: {out['count']} codes", err=True)
    click.echo("\n".join(out["codes"]))


@code.command("export")
@click.option("--batch", required=True)
def code_export(batch: str) -> None:
    """A batch as CSV on stdout."""
    _, text = _run(lambda svc, s: BillingAdmin(svc.repo).export_codes_csv({"batch": batch}))
    click.echo(text, nl=False)


# ---- demo (relaygate/demo.py) ------------------------------------------------
def _seed_demo(host: str, port: int) -> None:
    """Start built-in emulators in this process and (idempotently) seed demo data."""
    servers = demo_setup.start_emulators()
    urls = {provider: srv.base_url for provider, srv in servers.items()}
    plain = _run(lambda svc, s: demo_setup.seed(svc, s, urls))
    click.echo(demo_setup.banner(host, port, plain), err=True)
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
