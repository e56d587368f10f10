"""The newcomer path: `relaygate serve --demo`, then curl and the openai SDK; the CLI verbs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import free_port, run_cli

from relaygate import demo as demo_setup
from relaygate.cli.base import run_service
from relaygate.providers.surfaces import SURFACES
from relaygate.services.admin import AdminService
from relaygate.settings import Settings

DEMO_NAMES = {
    "emulator-gpt",
    "emulator-claude",
    "emulator-embedding",
    "emulator-instruct",
    "emulator-moderation",
    "emulator-image",
    "emulator-whisper",
    "emulator-tts",
    "emulator-rerank",
    "emulator-video",
    "emulator-ft",
}
DEMO_MAPPING = {
    "emulator-instruct": "gpt-3.5-turbo-instruct",
    "emulator-moderation": "omni-moderation-latest",
    "emulator-image": "dall-e-3",
    "emulator-whisper": "whisper-1",
    "emulator-tts": "tts-1",
    "emulator-video": "sora-2",
    "emulator-ft": "gpt-4o-mini-2024-07-18",
}


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
        for name in DEMO_NAMES:  # the banner names every demo model
            assert name in text, name
        assert "/console" in text and "demo-admin" in text  # the console's demo accounts
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
    assert models == dict.fromkeys(DEMO_NAMES, "relaygate-emulator")
    for model in ("emulator-gpt", "emulator-claude"):
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model=model, stream=True, messages=[{"role": "user", "content": "hi"}]
            )
            if ch.choices
        )
        assert text


def test_demo_online_answer_cites_the_local_index(demo: tuple[str, str, Path]) -> None:
    """serve --demo searches its own index about relaygate: an online answer cites it,
    whole and streamed (seed 001's notices first), through the strict openai SDK."""
    base, key, data = demo
    assert (data / "search.db").exists()
    c = openai.OpenAI(api_key=key, base_url=base + "/v1", _strict_response_validation=True)
    question = [{"role": "user", "content": "Where does relaygate keep its data?"}]
    answer = c.chat.completions.create(
        model="emulator-gpt", messages=question, extra_body={"online": True}
    )
    content = answer.choices[0].message.content or ""
    annotations = answer.choices[0].message.annotations or []
    assert annotations, content
    cite = annotations[0].url_citation
    assert cite.url == "https://relaygate.invalid/docs/storage"
    assert content[cite.start_index : cite.end_index] == "[1]"
    assert (answer.model_extra or {})["online"]["status"] == "ok"
    chunks = list(
        c.chat.completions.create(model="emulator-gpt:online", messages=question, stream=True)
    )
    assert chunks[0].choices[0].delta.function_call is not None
    assert chunks[1].choices[0].finish_reason == "function_call"
    assert any(
        (ch.choices[0].delta.model_extra or {}).get("annotations") for ch in chunks if ch.choices
    )


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
    emu = next(c for c in channels if c["name"].startswith("EMULATOR openai"))
    assert emu["model_mapping"] == DEMO_MAPPING
    assert sorted(emu["config"]["surfaces"]) == sorted(SURFACES)
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


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV file of ``seconds``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks Sora, assistants…
def test_demo_every_kind_with_openai_sdk(demo: tuple[str, str, Path]) -> None:
    """Each kind of request the banner lists answers 200 through the demo, and the priced
    ones lower the demo balance by their demo price (units: 10^-6 CNY)."""
    base, key, _ = demo
    h = {"Authorization": f"Bearer {key}"}
    c = openai.OpenAI(api_key=key, base_url=base + "/v1", max_retries=0)
    raw = c.with_raw_response

    def balance() -> int:
        units = httpx.get(base + "/v1/account", headers=h).json()["balance_units"]
        assert isinstance(units, int)
        return units

    def charged(call: Callable[[], Any], *, free: bool = False) -> tuple[Any, int]:
        """(what ``call`` returned, the units it took from the balance)."""
        before = balance()
        out = call()
        deadline = time.monotonic() + 5
        after = balance()
        while not free and after == before and time.monotonic() < deadline:
            time.sleep(0.05)  # a deferred charge is booked after the answer
            after = balance()
        return out, before - after

    r, cost = charged(lambda: raw.completions.create(model="emulator-instruct", prompt="Say hi"))
    assert r.status_code == 200 and r.parse().choices[0].text
    assert cost > 0

    r, cost = charged(
        lambda: raw.moderations.create(model="emulator-moderation", input="hello"), free=True
    )
    assert r.status_code == 200 and r.parse().results[0].flagged is False
    assert cost == 0  # free, as OpenAI's

    r, cost = charged(
        lambda: raw.images.generate(model="emulator-image", prompt="a lighthouse", size="1792x1024")
    )
    assert r.status_code == 200 and r.parse().data[0].url
    assert cost == 580_000  # 0.58 per 1792x1024 standard image

    audio = ("hello.wav", wav(2.0))
    r, cost = charged(lambda: raw.audio.transcriptions.create(model="emulator-whisper", file=audio))
    assert r.status_code == 200 and r.parse().text
    assert cost == 2 * 720  # 0.00072 per second

    speech = "Hello from relaygate."
    r, cost = charged(
        lambda: raw.audio.speech.create(model="emulator-tts", voice="alloy", input=speech)
    )
    assert r.status_code == 200 and len(r.content) > 0
    assert cost == len(speech) * 108  # 0.000108 per character

    body = {"model": "emulator-rerank", "query": "red fox", "documents": ["a red fox", "a whale"]}
    res, cost = charged(lambda: httpx.post(base + "/v1/rerank", headers=h, json=body))
    assert res.status_code == 200 and res.json()["results"][0]["index"] == 0
    assert cost > 0

    line = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    r = raw.files.create(
        file=("train.jsonl", json.dumps(line).encode() + b"\n"), purpose="fine-tune"
    )
    assert r.status_code == 200
    r = raw.fine_tuning.jobs.create(model="emulator-ft", training_file=r.parse().id)
    assert r.status_code == 200

    def finished(get: Callable[[], Any], done: tuple[str, ...]) -> Any:
        deadline = time.monotonic() + 15
        while True:
            obj = get()
            if obj.status in done or time.monotonic() > deadline:
                return obj
            time.sleep(0.1)

    job_id = r.parse().id
    job, cost = charged(
        lambda: finished(lambda: c.fine_tuning.jobs.retrieve(job_id), ("succeeded", "failed"))
    )
    assert job.status == "succeeded" and job.trained_tokens
    assert cost > 0  # the training tokens

    r = raw.videos.create(model="emulator-video", prompt="a lighthouse", seconds="4")
    assert r.status_code == 200
    video_id = r.parse().id
    video, cost = charged(
        lambda: finished(lambda: c.videos.retrieve(video_id), ("completed", "failed"))
    )
    assert video.status == "completed"
    assert cost == 4 * 720_000  # 0.72 per second of video

    assistant = c.beta.assistants.create(model="emulator-gpt", name="demo")
    thread = {"messages": [{"role": "user", "content": "hi"}]}
    run, cost = charged(
        lambda: c.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread=thread, poll_interval_ms=100
        )
    )
    assert run.status == "completed"
    assert cost > 0  # the run's tokens at emulator-gpt's price


def test_demo_seed_updates_an_older_demo_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data directory from an older demo (fewer models, no mapping) gets every demo model,
    the mapping and all surfaces on the next ``serve --demo``; the operator's own channel
    config and an edited demo price are kept, and seeding twice changes nothing more."""
    monkeypatch.setenv("RELAYGATE_DATA_DIR", str(tmp_path))
    urls = {"openai": "http://127.0.0.1:9/v1", "anthropic": "http://127.0.0.1:9"}

    async def older(svc: AdminService, s: Settings) -> None:
        await svc.create_channel(
            {
                "name": "EMULATOR openai (not a real model)",
                "provider": "openai_compat",
                "base_url": "http://127.0.0.1:8/v1",
                "keys": ["emulator-key"],
                "models": ["emulator-gpt", "emulator-embedding"],
                "config": {"max_concurrency": 8},
            },
            is_emulator=True,
        )
        await svc.repo.prices.upsert({"model": "emulator-gpt", "input": "1", "output": "2"})

    async def seed(svc: AdminService, s: Settings) -> str:
        return await demo_setup.seed(svc, s, urls)

    async def state(svc: AdminService, s: Settings) -> list[tuple[Any, ...]]:
        gpt = await svc.repo.prices.get("emulator-gpt")
        video = await svc.repo.prices.get("emulator-video")
        assert gpt is not None and video is not None
        rows: list[tuple[Any, ...]] = [(gpt["input"], video["per_second"])]
        for ch in sorted(await svc.list_channels(), key=lambda ch: ch.name):
            rows.append((ch.name, ch.base_url, set(ch.models), ch.model_mapping, ch.config))
        return rows

    run_service(older, create_database=True)
    key = run_service(seed)
    first = run_service(state)
    assert first[0] == ("1", "0.72")  # the edited price stays; new models get theirs
    name, base_url, models, mapping, config = first[2]
    assert name == "EMULATOR openai (not a real model)" and base_url == urls["openai"]
    assert models == DEMO_NAMES - {"emulator-claude"} and mapping == DEMO_MAPPING
    assert config == {"max_concurrency": 8, "surfaces": sorted(SURFACES)}
    assert first[1][2] == {"emulator-claude"}
    assert run_service(seed) == key and run_service(state) == first


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
