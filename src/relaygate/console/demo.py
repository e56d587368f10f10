"""Console accounts of the demo installation (``relaygate serve --demo``): the demo user
(``demo``, seeded by ``relaygate/demo.py``) and a demo admin (``demo-admin``), each with a
console password drawn once and kept in ``<data dir>/console-demo.json`` (mode 0600), so
every start of the demo prints the same working credentials.

Not wired yet: ``cli/server.py`` ``_seed_demo`` would call :func:`demo_console_accounts`
after seeding and print :func:`console_banner` (docs/console.md).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from relaygate.console.passwords import hash_password
from relaygate.services.admin import AdminService
from relaygate.storage.console import ConsoleStore

__all__ = ["DEMO_ACCOUNTS", "console_banner", "demo_console_accounts"]

#: (username, role) of the demo's console accounts
DEMO_ACCOUNTS = (("demo", "user"), ("demo-admin", "admin"))
FILE = "console-demo.json"


def _saved(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f)


async def demo_console_accounts(svc: AdminService, data_dir: Path) -> list[tuple[str, str, str]]:
    """Make sure the demo's console accounts exist with their saved passwords; returns
    ``(username, role, password)`` for each. Idempotent: a user and a password are made
    only when missing (a password the user changed in the console is set back)."""
    path = data_dir / FILE
    saved = _saved(path)
    store = ConsoleStore(svc.repo.engine)
    out: list[tuple[str, str, str]] = []
    for username, role in DEMO_ACCOUNTS:
        user = await svc.repo.users.get(username=username)
        if user is None:
            user = await svc.create_user({"username": username, "role": role})
        password = saved.get(username) or secrets.token_urlsafe(12)
        saved[username] = password
        await store.set_password(user.id, await hash_password(password))
        out.append((username, user.role, password))
    _save(path, saved)
    return out


def console_banner(host: str, port: int, accounts: list[tuple[str, str, str]]) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    lines = [f"Web console: http://{shown}:{port}/console"]
    lines += [f"  {role:<5} {username} / {password}" for username, role, password in accounts]
    return "\n".join(lines)
