"""The CLI's user and key options for groups, limits, spending caps and allow-lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway import run_cli


def cli_error(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "relaygate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0, out.stdout
    return out.stderr


def test_cli_user_and_key_limits(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RELAYGATE_DATA_DIR": str(tmp_path),
        "RELAYGATE_PERSONAL_KEY_PREFIX": "me-",
    }
    run_cli(env, "migrate")
    u = json.loads(
        run_cli(env, "user", "create", "--username", "ann", "--group", "vip", "--rpm-limit", "30")
    )
    assert u["group_name"] == "vip" and u["rpm_limit"] == 30 and u["tpm_limit"] is None
    u = json.loads(
        run_cli(
            env,
            "user",
            "update",
            "--username",
            "ann",
            "--tpm-limit",
            "5000",
            "--concurrency-limit",
            "4",
            "--no-limit",
            "rpm",
        )
    )
    assert (u["rpm_limit"], u["tpm_limit"], u["concurrency_limit"]) == (None, 5000, 4)
    assert u["group_name"] == "vip"  # untouched
    plain = run_cli(
        env,
        "key",
        "create",
        "--user",
        "ann",
        "--kind",
        "personal",
        "--spend-limit",
        "50",
        "--tpm-limit",
        "900",
        "--ip-allow",
        "10.0.0.0/8, 192.0.2.1",
    ).splitlines()[-1]
    assert plain.startswith("me-")  # RELAYGATE_PERSONAL_KEY_PREFIX
    (k,) = [json.loads(x) for x in run_cli(env, "key", "list", "--user", "ann").splitlines()]
    assert k["kind"] == "personal" and k["concurrency_limit"] == 2
    assert k["spend_limit"] == "50.0000" and k["spend_limit_units"] == 50_000_000
    assert k["ip_allow"] == ["10.0.0.0/8", "192.0.2.1"] and k["tpm_limit"] == 900
    # bad input names the option; nothing is written
    err = cli_error(env, "key", "create", "--user", "ann", "--ip-allow", "10.0.0.1/8")
    assert "--ip-allow" in err and "10.0.0.0/8" in err
    err = cli_error(env, "key", "create", "--user", "ann", "--spend-limit", "-3")
    assert "--spend-limit" in err and "negative" in err
    err = cli_error(env, "user", "update", "--username", "ann", "--group", "Gold")
    assert "--group" in err
    err = cli_error(env, "user", "update", "--username", "ann", "--rpm-limit", "0")
    assert "--rpm-limit" in err
    assert len(run_cli(env, "key", "list", "--user", "ann").splitlines()) == 1
    u = json.loads(run_cli(env, "user", "list").splitlines()[0])
    assert u["group_name"] == "vip" and u["rpm_limit"] is None
