"""``relaygate config example | check``: the configuration file (``relaygate/config_file.py``,
docs/configuration.md#configuration-file)."""

from __future__ import annotations

import json
import os

import click

from relaygate.cli.base import main
from relaygate.cli.config_env import CONFIG_ENV, ConfigFileError, load_or_exit
from relaygate.config_file import apply, effective, example, masked
from relaygate.console.config import ConsoleSettings
from relaygate.metrics.config import metrics_config
from relaygate.online.config import online_settings
from relaygate.safety.config import safety_settings
from relaygate.settings import Settings


@main.group("config")
def config_group() -> None:
    """The configuration file (TOML): an example, and a check of one."""


@config_group.command("example")
def config_example() -> None:
    """Print a configuration file with every key commented out at its default."""
    click.echo(example(), nl=False)


@config_group.command("check")
@click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    metavar="PATH",
    help=f"The file to check (default: ${CONFIG_ENV}).",
)
def config_check(config_path: str | None) -> None:
    """Check a configuration file and print the effective settings (secrets masked).

    A variable set in the environment beats the file; the source of each value is shown."""
    if not config_path:
        raise ConfigFileError(f"give --config PATH or set {CONFIG_ENV}")
    loaded = load_or_exit(config_path)
    rows = effective(loaded, dict(os.environ))
    apply(loaded)  # this process only: the readers below check the values as a worker would
    try:
        Settings.from_env()
        ConsoleSettings.from_env()
        metrics_config()
        safety_settings()
        online_settings()
    except ValueError as exc:
        raise ConfigFileError(f"{config_path}: {exc}") from None
    width = max(len(key.name) for key, _, _ in rows)
    for key, value, source in rows:
        shown = json.dumps(masked(key, value), ensure_ascii=False)
        click.echo(f"{key.name:<{width}} = {shown}  # {source}")
    click.echo(f"{config_path}: ok", err=True)
