"""The configuration file through real processes: ``serve --config`` (one and two workers),
``RELAYGATE_CONFIG`` for the other commands, a set variable beating the file, and the
``config`` commands' exit statuses (docs/configuration.md#configuration-file)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gateway import Gateway
from outage_kit import per_worker

FILE = """\
data_dir = "{data_dir}"
envelope = false
max_body_bytes = 2048

[console]
signup = false
"""


class FileGateway(Gateway):
    """A gateway started as ``serve --config PATH``; ``admin bootstrap`` reads the same file
    through ``RELAYGATE_CONFIG``. The helper's own variables that the file sets are unset."""

    def __init__(self, log_dir: Path, config: Path, env: dict[str, str], workers: int) -> None:
        super().__init__(log_dir, workers=workers)
        for name in ("RELAYGATE_DATA_DIR", "RELAYGATE_MAX_BODY_BYTES", "RELAYGATE_ENVELOPE"):
            self.env.pop(name, None)
        self.env.pop("RELAYGATE_CONFIG", None)
        self.env.update(env)
        self.config = config
        self.serve_args = ("--config", str(config))

    def bootstrap_env(self) -> dict[str, str]:
        return {**self.env, "RELAYGATE_CONFIG": str(self.config)}


def write_file(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "from-file"
    path = tmp_path / "relaygate.toml"
    path.write_text(FILE.format(data_dir=data_dir), encoding="utf-8")
    path.chmod(0o600)
    return path, data_dir


def worker_pids(gw: Gateway) -> set[int]:
    """The workers answering ``/readyz`` (four at once, a few rounds: every worker answers)."""
    pids: set[int] = set()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(10):
            bodies = pool.map(lambda _: httpx.get(gw.base + "/readyz", timeout=5).json(), range(4))
            pids |= {int(b["worker_pid"]) for b in bodies}
            if len(pids) == gw.workers:
                break
    return pids


def bad_key_answer(gw: Gateway) -> dict[str, object]:
    r = httpx.get(gw.base_url + "/models", headers={"Authorization": "Bearer zk-nope"})
    assert r.status_code == 401, r.text
    body: dict[str, object] = r.json()
    return body


TOO_LARGE = "The request body is larger than the 2 KiB this gateway accepts."


def big_body_status(gw: Gateway, key: str, client: httpx.Client | None = None) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    return (client or httpx).post(
        gw.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=10,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_with_config(tmp_path: Path, workers: int) -> None:
    path, data_dir = write_file(tmp_path)
    gw = FileGateway(tmp_path, path, {}, workers=workers).start()
    try:
        # data_dir from the file: admin bootstrap (RELAYGATE_CONFIG) and serve used it
        assert (data_dir / "relaygate.db").exists() and (data_dir / "secret.key").exists()
        key = gw.create_key(gw.create_user("ann"))
        # every worker knows the new key (refresh 0.5 s): asked on a connection to each (a
        # run of answers on fresh connections could all come from one worker)
        deadline = time.monotonic() + 10
        clients = per_worker(gw, timeout=10)
        try:
            for client in clients:
                while big_body_status(gw, key, client).status_code == 401:
                    assert time.monotonic() < deadline, "a worker does not know the key"
                    time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        for _ in range(12):  # fresh connections: with two workers, both answer some
            body = bad_key_answer(gw)
            assert "code" not in body and "msg" not in body  # envelope = false
            r = big_body_status(gw, key)
            assert r.status_code == 403, r.text  # max_body_bytes = 2048
            assert r.json()["error"]["message"] == TOO_LARGE
            assert "code" not in r.json()
        for _ in range(4):  # [console] signup = false
            r = httpx.get(gw.base + "/console/api/config", timeout=5)
            assert r.json()["data"]["signup"] is False, r.text
        pids = worker_pids(gw)
        assert len(pids) == workers
        if workers == 2:
            assert gw.proc is not None and gw.proc.pid not in pids  # worker processes
            for pid in pids:
                env = b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
                assert b"\0RELAYGATE_ENVELOPE=0\0" in env
                assert b"\0RELAYGATE_MAX_BODY_BYTES=2048\0" in env
    finally:
        gw.stop()


def test_an_environment_variable_beats_the_file(tmp_path: Path) -> None:
    path, _ = write_file(tmp_path)
    gw = FileGateway(tmp_path, path, {"RELAYGATE_ENVELOPE": "1"}, workers=1).start()
    try:
        body = bad_key_answer(gw)
        assert body["code"] == 401 and body["msg"]  # the variable's envelope = 1
        key = gw.create_key(gw.create_user("bob"))
        r = big_body_status(gw, key)
        assert r.status_code == 403 and r.json()["code"] == 403, r.text
        assert r.json()["error"]["message"] == TOO_LARGE  # the file's limit still holds
    finally:
        gw.stop()


def relaygate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaygate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_config_commands_and_start_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env["RELAYGATE_MAX_INFLIGHT"] = "9"
    path, data_dir = write_file(tmp_path)
    (tmp_path / "relaygate.toml").write_text(
        'metrics_token = "hush"\n' + FILE.format(data_dir=data_dir), encoding="utf-8"
    )
    path.chmod(0o644)
    out = relaygate(env, "config", "check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    shown = {" ".join(line.split()) for line in out.stdout.splitlines()}
    assert 'metrics_token = "********" # file' in shown
    assert "hush" not in out.stdout
    assert 'max_inflight = "9" # env' in shown
    assert 'envelope = "0" # file' in shown
    assert 'read_timeout = "300.0" # default' in shown
    assert "readable by every user" in out.stderr and "metrics_token" in out.stderr

    (tmp_path / "typo.toml").write_text("max_inflights = 3\n", encoding="utf-8")
    (tmp_path / "broken.toml").write_text("a = 1\n[console\n", encoding="utf-8")
    for args, message in [
        (("config", "check", "--config", str(tmp_path / "typo.toml")), "did you mean 'max_inf"),
        (("serve", "--config", str(tmp_path / "missing.toml")), "missing.toml: not found"),
        (("serve", "--config", str(tmp_path / "broken.toml")), "(at line 2, column 9)"),
        (("config", "check"), "give --config PATH or set RELAYGATE_CONFIG"),
    ]:
        out = relaygate(env, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and out.stderr.startswith("Error: "), out.stderr
        assert "Traceback" not in out.stderr
    # RELAYGATE_CONFIG is read by every command, migrate included
    out = relaygate({**env, "RELAYGATE_CONFIG": str(tmp_path / "typo.toml")}, "migrate")
    assert out.returncode == 2 and "unknown key 'max_inflights'" in out.stderr
    # a value the readers refuse: config check runs them
    (tmp_path / "formats.toml").write_text('envelope_formats = ["gemini"]\n', encoding="utf-8")
    out = relaygate(env, "config", "check", "--config", str(tmp_path / "formats.toml"))
    assert out.returncode == 2 and "must include openai" in out.stderr

    example = relaygate(env, "config", "example")
    assert example.returncode == 0
    text = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line
        for line in example.stdout.splitlines()
    )
    assert tomllib.loads(text)["max_inflight"] == 1024
