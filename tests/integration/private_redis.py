"""A redis-server of one test alone, on a free port, without persistence: started, killed and
started again on the same port by the test (never the machine's shared Redis on 6379).

Used by the integration tests (``from private_redis import PrivateRedis``) and by the unit
tests (``from integration.private_redis import PrivateRedis``, as tests/ is on pytest's
pythonpath): so this module imports nothing from its neighbours."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

__all__ = ["PrivateRedis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """``root``, when given, is redis-server's working directory (created at start)."""

    def __init__(self, root: Path | None = None) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        """Start it (again, after :meth:`kill`: a restarted Redis is empty)."""
        where: list[str] = []
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            where = ["--dir", str(self.root)]
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no", *where),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(up=True)
        return self

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does (the data is gone); returns once the
        port is closed."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            self._wait(up=False)

    def _wait(self, up: bool, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.settimeout(0.2)
                if (s.connect_ex(("127.0.0.1", self.port)) == 0) == up:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not go {'up' if up else 'down'}")
