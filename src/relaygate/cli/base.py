"""The CLI's root group and what every command shares: running a service call on a
fresh database connection, turning its validation errors into option errors."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click

from relaygate.cli.config_env import CONFIG_ENV, use_config
from relaygate.errors import RelayError
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.settings import Settings
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine, migrate, sqlite_path
from relaygate.storage.fingerprint import SecretMismatch, check_secret
from relaygate.storage.repo import Repository

__all__ = ["OPTIONS", "csv_list", "expiry_of", "main", "noop", "run_service"]

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


def run_service(
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
            try:
                await check_secret(engine, secrets)
            except SecretMismatch as exc:
                raise click.ClickException(str(exc)) from None
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


def csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """relaygate: an OpenAI-compatible LLM API gateway."""
    # the configuration file (docs/configuration.md#configuration-file) before any setting is
    # read; serve and config take it from their own --config option (RELAYGATE_CONFIG too)
    if ctx.invoked_subcommand not in ("serve", "config"):
        use_config(os.environ.get(CONFIG_ENV))


async def noop() -> None:
    return None


def expiry_of(days: float) -> str:
    """``--expires-days`` as the ``expires_at`` time the service checks (it must be future)."""
    try:
        if not math.isfinite(days):
            raise OverflowError
        return (datetime.now(UTC) + timedelta(days=days)).isoformat()
    except OverflowError:
        raise click.BadParameter(f"{days} is not a usable number of days.") from None
