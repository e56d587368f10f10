"""The newcomer path: `relaygate serve --demo`, then curl and the openai SDK; the CLI verbs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gateway import free_port, run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(data)}
    log = open(data / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaygate", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        text = (data / "serve.log").read_text()
        m = re.search(r"API key : (\S+)", text)
        assert m, text
        yield base, m.group(1), data
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_demo_curl_stream(demo: tuple[str, str, Path]) -> None:
    base, key, _ = demo
    out = subprocess.run(
        [
            "curl",
            "-sN",
            f"{base}/v1/chat/completions",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"model":"emulator-gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.strip().endswith("data: [DONE]")
    text = "".join(
        (json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
        for line in out.splitlines()
        if line.startswith("data: {")
    )
    assert "emulator" in text.lower()


def test_demo_openai_sdk_both_models(demo: tuple[str, str, Path]) -> None:
    base, key, _ = demo
    c = openai.OpenAI(api_key=key, base_url=base + "/v1", _strict_response_validation=True)
    models = {m.id: m.owned_by for m in c.models.list()}
    assert models == {
        "emulator-gpt": "relaygate-emulator",
        "emulator-claude": "relaygate-emulator",
        "emulator-embedding": "relaygate-emulator",
    }
    for model in ("emulator-gpt", "emulator-claude"):
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model=model, stream=True, messages=[{"role": "user", "content": "hi"}]
            )
            if ch.choices
        )
        assert text


def test_demo_embeddings_with_openai_sdk(demo: tuple[str, str, Path]) -> None:
    """The README's embeddings example runs against the demo."""
    base, key, _ = demo
    # as the README does: a default client (the SDK asks for base64 and decodes it after
    # validating, so strict validation would refuse even api.openai.com's answer)
    c = openai.OpenAI(api_key=key, base_url=base + "/v1")
    res = c.embeddings.create(model="emulator-embedding", input=["hello", "world"])
    assert [d.index for d in res.data] == [0, 1]
    assert len(res.data[0].embedding) >= 8 and res.data[0].embedding != res.data[1].embedding
    assert res.usage.prompt_tokens > 0 and res.model == "emulator-embedding"
    strict = openai.OpenAI(api_key=key, base_url=base + "/v1", _strict_response_validation=True)
    floats = strict.embeddings.create(
        model="emulator-embedding", input=["hello", "world"], encoding_format="float"
    )
    for a, b in zip(res.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)


def test_demo_seed_is_idempotent(demo: tuple[str, str, Path]) -> None:
    _, key, data = demo
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(data)}
    channels = [json.loads(x) for x in run_cli(env, "channel", "list").splitlines()]
    assert sorted(c["name"] for c in channels) == [
        "EMULATOR anthropic (not a real model)",
        "EMULATOR openai (not a real model)",
    ]
    assert all(c["is_emulator"] for c in channels)
    assert (data / "demo-key.txt").read_text().strip() == key


def test_demo_balance_goes_down_after_a_request(demo: tuple[str, str, Path]) -> None:
    """serve --demo gives the demo user a starting credit and prices the demo models:
    credit_grants shows a balance, and a request lowers it."""
    base, key, _ = demo
    h = {"Authorization": f"Bearer {key}"}
    before = httpx.get(base + "/v1/dashboard/billing/credit_grants", headers=h).json()
    assert before["object"] == "credit_summary"
    amount = float(before["grants"]["available_amount"])
    assert 0 < amount <= 100
    c = openai.OpenAI(api_key=key, base_url=base + "/v1")
    c.chat.completions.create(model="emulator-gpt", messages=[{"role": "user", "content": "hello"}])
    after = httpx.get(base + "/v1/dashboard/billing/credit_grants", headers=h).json()
    assert float(after["grants"]["available_amount"]) < amount
    prices = httpx.get(base + "/v1/pricing").json()
    assert any(row["model"] == "emulator-gpt" for row in prices["data"])


def test_cli_user_key_channel(tmp_path: Path) -> None:
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(tmp_path)}
    assert "latest" in run_cli(env, "migrate")
    user = json.loads(run_cli(env, "user", "create", "--username", "zoe"))
    assert user["username"] == "zoe"
    key = run_cli(env, "key", "create", "--user", "zoe", "--models", "a,b").splitlines()[-1]
    assert key.startswith("zk-")  # RELAYGATE_API_KEY_PREFIX default
    listed = [json.loads(x) for x in run_cli(env, "key", "list", "--user", "zoe").splitlines()]
    assert listed[0]["models"] == ["a", "b"] and key not in json.dumps(listed)
    ch = json.loads(
        run_cli(
            env,
            "channel",
            "create",
            "--name",
            "az",
            "--profile",
            "azure",
            "--base-url",
            "https://127.0.0.1:9",
            "--api-key",
            "secret-up",
            "--models",
            "gpt-4o",
            "--mapping",
            "gpt-4o=gpt-4o-2024",
            "--config",
            '{"api_version": "2024-10-21"}',
        )
    )
    assert ch["model_mapping"] == {"gpt-4o": "gpt-4o-2024"} and "secret-up" not in json.dumps(ch)
    with pytest.raises(RuntimeError, match="already exists"):
        run_cli(env, "user", "create", "--username", "zoe")
    with pytest.raises(RuntimeError, match="not valid JSON"):
        run_cli(
            env,
            "channel",
            "create",
            "--name",
            "x",
            "--base-url",
            "http://x",
            "--models",
            "m",
            "--config",
            "{oops",
        )
    with pytest.raises(RuntimeError, match="Unknown profile 'nope'"):
        run_cli(
            env,
            "channel",
            "create",
            "--name",
            "x",
            "--profile",
            "nope",
            "--base-url",
            "http://x",
            "--models",
            "m",
        )


def test_cli_refuses_bad_input_and_saves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(tmp_path)}
    run_cli(env, "user", "create", "--username", "zoe")
    refusals = {
        ("--expires-days", "-1"): "--expires-days: `expires_at` must be in the future",
        ("--expires-days", "0"): "must be in the future",
        ("--expires-days", "inf"): "not a usable number of days",
        ("--models", ""): "--models: `models` must name at least one model",
        ("--models", " , "): "at least one model",
        ("--rpm-limit", "0"): "--rpm-limit: `rpm_limit` must be an integer >= 1",
        ("--concurrency-limit", "-2"): "--concurrency-limit",
    }
    for (option, value), message in refusals.items():
        with pytest.raises(RuntimeError, match=re.escape(message)):
            run_cli(env, "key", "create", "--user", "zoe", option, value)
    with pytest.raises(RuntimeError, match="No user named 'nobody'"):
        run_cli(env, "key", "create", "--user", "nobody")
    assert run_cli(env, "key", "list") == ""
    channel = ["channel", "create", "--name", "x", "--base-url", "http://127.0.0.1:11434/v1"]
    with pytest.raises(RuntimeError, match=re.escape("--api-key: `keys[0]` must not be empty")):
        run_cli(env, *channel, "--models", "m", "--api-key", "")  # an unset shell variable
    with pytest.raises(RuntimeError, match="--models: `models` must list at least 1 item"):
        run_cli(env, *channel, "--models", ",")
    with pytest.raises(RuntimeError, match="--config: `config` must be an object"):
        run_cli(env, *channel, "--models", "m", "--config", "[1]")
    with pytest.raises(RuntimeError, match="--base-url"):
        run_cli(env, "channel", "create", "--name", "x", "--base-url", "x", "--models", "m")
    assert run_cli(env, "channel", "list") == ""
    # an upstream without keys (a local Ollama): no --api-key at all is fine
    ch = json.loads(run_cli(env, *channel, "--models", "llama3", "--profile", "ollama"))
    assert ch["keys"] == [] and ch["profile"] == "ollama"
    # a channel type fills provider, profile and the default base URL
    assert "spark_ws" in run_cli(env, "channel", "types")
    typed = ["channel", "create", "--name", "typed", "--models", "llama3.2"]
    ch = json.loads(run_cli(env, *typed, "--type", "ollama"))
    assert ch["provider"] == "openai_compat" and ch["profile"] == "ollama"
    assert ch["base_url"] == "http://127.0.0.1:11434/v1"
    with pytest.raises(RuntimeError, match="--base-url is required"):
        run_cli(env, *typed, "--type", "generic")


def test_cli_refuses_a_vanished_database(tmp_path: Path) -> None:
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(tmp_path)}
    assert run_cli(env, "user", "list") == ""  # a fresh directory is initialised
    db = tmp_path / "relaygate.db"
    assert db.exists() and (tmp_path / "secret.key").exists()
    run_cli(env, "user", "create", "--username", "zoe")
    for name in ("relaygate.db", "relaygate.db-wal", "relaygate.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    for args in (("user", "list"), ("admin", "bootstrap"), ("serve", "--port", str(free_port()))):
        with pytest.raises(RuntimeError) as info:
            run_cli(env, *args)
        assert "database" in str(info.value) and "is missing" in str(info.value)
        assert "relaygate migrate" in str(info.value)
        assert not db.exists()  # nothing was created behind the operator's back
    assert "latest" in run_cli(env, "migrate")  # the deliberate way to a new, empty database
    assert db.exists() and run_cli(env, "user", "list") == ""


def test_emulator_cli(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaygate",
            "emulator",
            "--provider",
            "anthropic",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                    json={
                        "model": "claude",
                        "max_tokens": 10,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["type"] == "message"
    finally:
        proc.terminate()
        proc.wait(10)


def test_plain_serve_parks_emulator_channels(demo: tuple[str, str, Path]) -> None:
    """Without --demo the in-process emulators do not run: their channels are disabled
    (503 `service_unavailable`, not a confusing 502)."""
    _, _, data = demo
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(data)}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaygate", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        channels = [json.loads(x) for x in run_cli(env, "channel", "list").splitlines()]
        assert {c["status"] for c in channels} == {"disabled"}
    finally:
        proc.terminate()
        proc.wait(10)
