"""Applying the configuration file (``relaygate/config_file.py``) before a command reads
its settings: ``serve --config PATH``, ``RELAYGATE_CONFIG`` for every command."""

from __future__ import annotations

import click

from relaygate.config_file import CONFIG_ENV, ConfigError, Loaded, apply, load

__all__ = ["CONFIG_ENV", "ConfigFileError", "load_or_exit", "use_config"]


class ConfigFileError(click.ClickException):
    """A configuration file that cannot be used: ``Error: …`` and exit status 2."""

    exit_code = 2


def load_or_exit(path: str) -> Loaded:
    """The checked file, its warnings printed to stderr; ConfigFileError when it is unusable."""
    try:
        loaded = load(path)
    except ConfigError as exc:
        raise ConfigFileError(str(exc)) from None
    for warning in loaded.warnings:
        click.echo(f"Warning: {warning}", err=True)
    return loaded


def use_config(path: str | None) -> None:
    """Put the file's values into this process's environment (a set variable wins); the
    workers ``serve`` starts inherit them."""
    if path:
        apply(load_or_exit(path))
