"""``relaygate user | key | channel | code``: accounts, keys, channels and billing
administration through ``services/`` (the same calls as the admin API)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from relaygate.api.admin_console import check_new_password
from relaygate.cli.base import csv_list, expiry_of, main, run_service
from relaygate.console.passwords import hash_password
from relaygate.providers import PROVIDERS
from relaygate.providers.catalogue import CHANNEL_TYPES, channel_type
from relaygate.services.admin import AdminService
from relaygate.services.billing_admin import BillingAdmin
from relaygate.services.fields import ValidationError
from relaygate.settings import Settings
from relaygate.storage.console import ConsoleStore, TwoFactorReset

log = logging.getLogger("relaygate.console")


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
    rec = run_service(lambda svc, s: svc.create_user(body))
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

    click.echo(json.dumps(run_service(go).to_public()))


@user.command("list")
def user_list() -> None:
    for u in run_service(lambda svc, s: svc.list_users()):
        click.echo(json.dumps(u.to_public()))


@user.command("set-password")
@click.option("--username", required=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of prompting.",
)
def user_set_password(username: str, password_stdin: bool) -> None:
    """Set (or replace) a user's console password; the user's console sessions end. The
    same rules as the admin API's POST /admin/api/users/{id}/console-password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        check_new_password({"password": password})
    except ValidationError as exc:
        raise click.ClickException(str(exc.message)) from None

    async def go(svc: AdminService, s: Settings) -> int:
        uid = (await svc.user_named(username)).id
        store = ConsoleStore(svc.repo.engine)
        await store.set_password(uid, await hash_password(password))
        return await store.delete_user_sessions(uid)

    ended = run_service(go)
    click.echo(f"console password set for {username}; {ended} console session(s) ended")


@user.command("reset-two-factor")
@click.option("--user", "username", required=True, help="The user's name.")
def user_reset_two_factor(username: str) -> None:
    """Turn off a user's console two-factor sign-in (for a user, or an operator, who lost
    both the authenticator and the recovery codes): the TOTP secret is cleared, the
    recovery codes deleted and the user's console sessions end; the password alone signs
    in. The same as the admin API's DELETE /admin/api/users/{id}/console-two-factor."""

    async def go(svc: AdminService, s: Settings) -> TwoFactorReset:
        uid = (await svc.user_named(username)).id
        done = await ConsoleStore(svc.repo.engine).reset_two_factor(uid)
        if done.was_on:
            log.info("two-factor sign-in turned off from the CLI", extra={"user_id": uid})
        return done

    done = run_service(go)
    if not done.was_on:
        click.echo(f"two-factor sign-in was not on for {username}; nothing changed")
        return
    click.echo(
        f"two-factor sign-in turned off for {username}; "
        f"{done.recovery_codes_deleted} recovery code(s) deleted, "
        f"{done.sessions_ended} console session(s) ended"
    )


# ---- keys --------------------------------------------------------------------
@main.group()
def key() -> None:
    """Manage API keys."""


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
        "models": csv_list(models),
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
        "spend_limit": spend_limit,
        "ip_allow": csv_list(ip_allow),
    }
    if concurrency_limit is not None:  # absent: the kind's default
        body["concurrency_limit"] = concurrency_limit
    if expires_days is not None:
        body["expires_at"] = expiry_of(expires_days)

    async def go(svc: AdminService, s: Settings) -> str:
        _, plain = await svc.create_key(body)
        return plain

    plain = run_service(go)
    click.echo("API key (shown once):", err=True)
    click.echo(plain)


@key.command("list")
@click.option("--user", "username", default=None)
def key_list(username: str | None) -> None:
    for k in run_service(lambda svc, s: svc.list_keys(username=username)):
        click.echo(json.dumps(k.to_public()))


# ---- channels ----------------------------------------------------------------
@main.group()
def channel() -> None:
    """Manage upstream channels."""


@channel.command("types")
def channel_types() -> None:
    """List the channel types (what --type takes): provider, profile, key parts, base URL."""
    for t in CHANNEL_TYPES:
        click.echo(
            f"{t.id:<18} {t.provider + '/' + t.profile:<25} key: {t.key_format:<40} "
            f"{t.base_url or '(base URL required)'}"
        )


@channel.command("create")
@click.option("--name", required=True)
@click.option(
    "--type",
    "type_id",
    type=click.Choice([t.id for t in CHANNEL_TYPES]),
    default=None,
    help="A channel type (`relaygate channel types`): sets provider, profile and the default "
    "base URL.",
)
@click.option(
    "--provider",
    type=click.Choice(list(PROVIDERS)),
    default=None,
    help="Adaptor (default openai_compat, or the --type's).",
)
@click.option("--profile", default=None, help="openai | azure | deepseek | … (or the --type's)")
@click.option("--base-url", default=None, help="Required unless --type gives a default.")
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
    type_id: str | None,
    provider: str | None,
    profile: str | None,
    base_url: str | None,
    api_keys: tuple[str, ...],
    models: str,
    mapping: tuple[str, ...],
    priority: int,
    weight: int,
    config_json: str | None,
) -> None:
    kind = channel_type(type_id) if type_id else None
    if kind is not None:
        provider = provider or kind.provider
        profile = profile or kind.profile
        base_url = base_url or kind.base_url or None
    if not base_url:
        raise click.UsageError("--base-url is required (this --type has no default).")
    provider = provider or "openai_compat"
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
        "models": csv_list(models),
        "model_mapping": mapping_dict,
        "priority": priority,
        "weight": weight,
        "config": config,
    }
    if profile is not None:
        body["profile"] = profile
    rec = run_service(lambda svc, s: svc.create_channel(body))
    click.echo(json.dumps(rec.to_public()))


@channel.command("list")
def channel_list() -> None:
    for c in run_service(lambda svc, s: svc.list_channels()):
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

    click.echo(json.dumps(run_service(go)))


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
        body["expires_at"] = expiry_of(expires_days)
    actor = f"cli:{os.getuid()}"
    out = run_service(lambda svc, s: BillingAdmin(svc.repo).generate_codes(body, actor))
    click.echo(f"batch {out['batch']}: {out['count']} codes", err=True)
    click.echo("\n".join(out["codes"]))


@code.command("export")
@click.option("--batch", required=True)
def code_export(batch: str) -> None:
    """A batch as CSV on stdout."""
    _, text = run_service(lambda svc, s: BillingAdmin(svc.repo).export_codes_csv({"batch": batch}))
    click.echo(text, nl=False)
