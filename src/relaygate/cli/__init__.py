"""Command line: ``relaygate serve | migrate | admin | user | key | channel | code | emulator``.

``base.py`` holds the root group and the shared helpers; the commands register on it when
their modules are imported here: ``server.py`` (serve, migrate, admin, emulator) and
``accounts.py`` (users, keys, channels, balances and codes).
"""

from relaygate.cli import accounts, server
from relaygate.cli.base import main

__all__ = ["accounts", "main", "server"]
