"""Real parts for scale-out tests: a private PostgreSQL cluster the test owns (so it can stop
and restart it without touching the machine's shared service; its Redis is
:class:`private_redis.PrivateRedis`), nginx from Debian in front of several gateway nodes,
and the nodes themselves.

The private PostgreSQL runs as the ``postgres`` system user (initdb refuses root) in a
directory under /tmp, on its own port, with trust authentication on loopback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from gateway import Gateway, free_port

__all__ = ["Nginx", "PrivatePostgres", "have_cluster_tools", "start_node", "wait_port"]

# the nginx configuration is the benchmark's (one copy: bench/scaleout.py measures this front);
# loaded by path so that bench/'s other modules stay off sys.path
_spec = importlib.util.spec_from_file_location(
    "bench_nginx_conf", Path(__file__).resolve().parents[2] / "bench" / "nginx_conf.py"
)
assert _spec is not None and _spec.loader is not None
_nginx_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_nginx_conf)

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


def have_cluster_tools() -> str:
    """Empty when everything a cluster test needs is here; else what is missing."""
    missing = [t for t in ("nginx", "redis-server", "runuser") if shutil.which(t) is None]
    if not (PG_BIN / "initdb").exists():
        missing.append("initdb")
    if os.geteuid() != 0:
        missing.append("root (to run PostgreSQL as the postgres user)")
    return ", ".join(missing)


def wait_port(port: int, up: bool = True, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            is_up = s.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} in {timeout} s")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own; :meth:`stop` and :meth:`start` again is a
    real server restart (connections cut, the port closed meanwhile)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rg-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def init(self) -> PrivatePostgres:
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self.start()

    def start(self) -> PrivatePostgres:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off -c full_page_writes=off"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        wait_port(self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        wait_port(self.port, up=False)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        self._as_postgres(
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """Debian's nginx in front of ``ports`` (round robin, keep-alive to the nodes, streams
    unbuffered, the answering node in ``X-Upstream``)."""

    def __init__(self, root: Path, ports: list[int]) -> None:
        self.root = root
        self.port = free_port()
        self.ports = ports
        self.base = f"http://127.0.0.1:{self.port}"
        self.base_url = self.base + "/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        conf = _nginx_conf.write_conf(self.root, self.ports, self.port)
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.root), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def start_node(data: Path, env: dict[str, str], workers: int = 2) -> Gateway:
    """A gateway node; a port that was taken since :func:`free_port` picked it is retried."""
    data.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            return Gateway(data, env, workers=workers).start()
        except RuntimeError:
            time.sleep(0.5)
    return Gateway(data, env, workers=workers).start()


def ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
