"""Command line: ``relaygate serve | migrate | admin | user | key | channel | code | emulator |
search-index | config``.

``base.py`` holds the root group and the shared helpers; the commands register on it when
their modules are imported here: ``server.py`` (serve, migrate, admin, emulator) and
``accounts.py`` (users, keys, channels, balances and codes), ``search.py`` (the local
search index), ``config.py`` (the configuration file; ``config_env.py`` applies it).
"""

from relaygate.cli import accounts, config, search, server
from relaygate.cli.base import main

__all__ = ["accounts", "config", "main", "search", "server"]
