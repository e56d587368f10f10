"""Start a real relaygate process on loopback for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

__all__ = ["PG", "Gateway", "free_port", "fresh_pg_database", "pg_admin", "run_cli"]


PG = os.environ.get("RELAYGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432")


def pg_admin(sql: str) -> None:
    """Run one statement on the PostgreSQL server's ``postgres`` database."""

    async def run() -> None:
        conn = await asyncpg.connect(PG + "/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def fresh_pg_database(prefix: str = "rg_") -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    name = prefix + uuid.uuid4().hex[:10]
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "relaygate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"relaygate {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


class Gateway:
    """A relaygate server process plus an admin client."""

    def __init__(
        self,
        data_dir: Path,
        extra_env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
    ) -> None:
        self.workers = workers
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.base_url = self.base + "/v1"
        self.env = {
            **os.environ,
            "RELAYGATE_DATA_DIR": str(data_dir),
            "RELAYGATE_REFRESH_INTERVAL": "0.5",
            "RELAYGATE_FIRST_BYTE_TIMEOUT": "3",
            "RELAYGATE_READ_TIMEOUT": "3",
            "RELAYGATE_MAX_BODY_BYTES": str(1024 * 1024),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "gateway.log"
        self.admin_token = ""

    #: added to ``relaygate serve``'s arguments (a subclass's ``--config``, say)
    serve_args: tuple[str, ...] = ()

    def bootstrap_env(self) -> dict[str, str]:
        """The environment of ``admin bootstrap`` (the server's own, unless a subclass says)."""
        return self.env

    def start(self) -> Gateway:
        self.admin_token = run_cli(self.bootstrap_env(), "admin", "bootstrap").splitlines()[-1]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relaygate", *argv, *self.serve_args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # kill_node() reaches the workers too
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited:\n" + self.log_path.read_text())
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not become ready:\n" + self.log_path.read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self._log.close()

    def kill_node(self) -> None:
        """SIGKILL the server and every worker process it started (a machine lost)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self._log.close()
            self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    # ---- admin API -----------------------------------------------------------
    def admin(self, method: str, path: str, json: Any = None, token: str | None = None) -> Any:
        r = httpx.request(
            method,
            self.base + "/admin/api" + path,
            json=json,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=10,
        )
        if r.status_code >= 400:
            raise AssertionError(f"admin {method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def create_user(self, username: str, balance: str | None = "1000") -> int:
        """A user with a starting balance (billing is on: a user without money is refused
        on priced models); ``balance=None`` leaves it at zero."""
        uid = int(self.admin("POST", "/users", {"username": username})["data"]["id"])
        if balance is not None:
            self.top_up(uid, balance)
        return uid

    def top_up(self, user_id: int, amount: str, reason: str = "test credit") -> Any:
        return self.admin(
            "POST", f"/users/{user_id}/balance", {"amount": amount, "reason": reason}
        )["data"]

    def balance(self, user_id: int) -> Any:
        return self.admin("GET", f"/users/{user_id}/balance")["data"]

    def create_key(self, user_id: int, **fields: Any) -> str:
        return str(self.admin("POST", "/keys", {"user_id": user_id, **fields})["data"]["key"])

    def create_channel(self, **fields: Any) -> int:
        return int(self.admin("POST", "/channels", fields)["data"]["id"])
