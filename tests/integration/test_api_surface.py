"""The model endpoints beyond chat through the running gateway, with the official openai SDK:
completions (plain and streamed), moderations, images (generation, and multipart edits and
variations), audio (multipart transcriptions and translations, speech streamed back as bytes),
rerank — each billed by what it consumed (tokens, images by size and quality, seconds,
characters) at prices set through the admin API, and checked to the unit in the request log.
Bad input (wrong multipart, an upload over the cap, missing files, over-long speech) gets the
error table's answer and reaches no upstream.
"""

from __future__ import annotations

import io
import time
import warnings
import wave
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.providers.surfaces import SURFACES

UPLOAD_CAP = 256 * 1024

PRICES = [
    {"model": "house-instruct", "input": "2", "output": "8"},  # CNY per 1M tokens
    {"model": "house-image", "input": "0", "output": "0", "per_image": "0.05",
     "image_prices": {"1792x1024/hd": "0.3", "1024x1024": "0.1"}},
    {"model": "house-image2", "input": "0", "output": "0", "per_image": "0.05"},
    {"model": "house-whisper", "input": "0", "output": "0", "per_second": "0.01"},
    {"model": "house-tts", "input": "0", "output": "0", "per_character": "0.0002"},
    {"model": "house-rerank", "input": "1", "output": "0"},
    {"model": "house-moderation", "input": "0", "output": "0"},
]  # fmt: skip
MAPPING = {
    "house-instruct": "gpt-3.5-turbo-instruct",
    "house-image": "dall-e-3",
    "house-image2": "dall-e-2",
    "house-whisper": "whisper-1",
    "house-tts": "tts-1",
    "house-rerank": "rerank-test",
    "house-moderation": "omni-moderation-latest",
}


class World:
    def __init__(self, gw: Gateway, emus: list[EmulatorServer], key: str, uid: int) -> None:
        self.gw, self.emus, self.key, self.uid = gw, emus, key, uid
        self.client = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)

    def raw(self) -> Any:
        return self.client.with_options(max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = [EmulatorServer("openai", knobs=Knobs(api_key=f"sk-up-{i}")).start() for i in (1, 2)]
    gw = Gateway(
        Path(tmp_path_factory.mktemp("surface")),
        {"RELAYGATE_MAX_UPLOAD_BYTES": str(UPLOAD_CAP), "RELAYGATE_USD_RATE": "7.2"},
    )
    try:
        gw.start()
        models = [*MAPPING, "gpt-4o-mini"]
        for i, emu in enumerate(emus, 1):
            gw.create_channel(
                name=f"openai-{i}",
                provider="openai_compat",
                profile="openai",
                base_url=emu.base_url,
                keys=[f"sk-up-{i}"],
                models=models,
                model_mapping=MAPPING,
                priority=10 - i,  # channel 1 first; channel 2 is the failover
                config={"surfaces": list(SURFACES)},  # rerank too (not in OpenAI's profile)
            )
        for body in PRICES:
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **body})
        uid = gw.create_user("surface", balance="100")
        key = gw.create_key(uid, name="surface")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, key, uid)
    finally:
        gw.stop()
        for emu in emus:
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus:
        emu.reset(knobs=True, stats=True)


def log_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request log row for {request_id}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)


def units(row: dict[str, Any]) -> int:
    """The row's charge in units (10^-6 CNY)."""
    return int(Decimal(row["cost"]) * 1_000_000)


def wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * round(rate * seconds))
    return buf.getvalue()


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


# ---- completions -------------------------------------------------------------------------
def test_completion_is_relayed_and_billed_by_its_tokens(world: World) -> None:
    r = world.client.completions.with_raw_response.create(
        model="house-instruct", prompt="Say hi", max_tokens=30
    )
    c = r.parse()
    assert c.object == "text_completion" and c.choices[0].text
    assert c.usage is not None and c.usage.completion_tokens > 0
    row = log_row(world.gw, r.headers["x-request-id"])
    assert row["endpoint"] == "completions" and row["status"] == 200
    assert units(row) == 2 * c.usage.prompt_tokens + 8 * c.usage.completion_tokens
    sent = world.emus[0].stats.snapshot()["recorded"][-1]
    assert sent["path"] == "/v1/completions" and sent["body"]["model"] == "gpt-3.5-turbo-instruct"


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_completion_passes_chunks_and_bills_the_upstream_usage(
    world: World, include_usage: bool
) -> None:
    opts = {"include_usage": True} if include_usage else None
    with world.client.completions.with_streaming_response.create(
        model="house-instruct", prompt="Say hi", max_tokens=30, stream=True, stream_options=opts
    ) as r:
        rid = r.headers["x-request-id"]
        chunks = list(r.parse())
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    usages = [ch.usage for ch in chunks if ch.usage is not None]
    assert text.strip()
    assert len(usages) == (1 if include_usage else 0)
    sent = world.emus[0].stats.snapshot()["recorded"][-1]["body"]
    assert sent["stream_options"]["include_usage"] is True  # asked for billing either way
    row = log_row(world.gw, rid)
    assert row["stream"] is True and row["completion_tokens"] > 0
    assert units(row) == 2 * row["prompt_tokens"] + 8 * row["completion_tokens"]
    if include_usage:
        assert row["completion_tokens"] == usages[0].completion_tokens


def test_completion_fails_over_to_the_second_channel_on_upstream_500(world: World) -> None:
    world.emus[0].configure(fail_status=500, fail_times=-1)
    c = world.client.completions.create(model="house-instruct", prompt="hi", max_tokens=5)
    assert c.choices[0].text
    assert world.emus[1].stats.snapshot()["recorded"][-1]["path"] == "/v1/completions"


def test_completion_bad_prompt_is_refused_before_upstream(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        world.client.completions.create(model="house-instruct", prompt=[{"x": 1}])  # type: ignore[list-item]
    assert exc.value.status_code == 403  # the seed table's status for invalid requests
    assert exc.value.body["param"] == "prompt"  # type: ignore[index]
    assert world.emus[0].stats.snapshot()["recorded"] == []


# ---- moderations and rerank --------------------------------------------------------------
def test_moderation_flags_and_is_free(world: World) -> None:
    r = world.client.moderations.with_raw_response.create(
        model="house-moderation", input=["a kind word", "I will kill the process"]
    )
    m = r.parse()
    assert [x.flagged for x in m.results] == [False, True]
    assert units(log_row(world.gw, r.headers["x-request-id"])) == 0


def test_rerank_orders_documents_and_bills_reported_tokens(world: World) -> None:
    body = {"model": "house-rerank", "query": "red apple",
            "documents": ["a green pear", "a red apple pie", "blue sky"], "top_n": 2}  # fmt: skip
    r = httpx.post(world.gw.base_url + "/rerank", json=body,
                   headers={"Authorization": f"Bearer {world.key}"})  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["results"][0]["index"] == 1 and len(out["results"]) == 2
    row = log_row(world.gw, r.headers["x-request-id"])
    assert row["prompt_tokens"] == out["usage"]["total_tokens"] > 0
    assert units(row) == row["prompt_tokens"]  # 1 CNY per 1M tokens = 1 unit per token


# ---- images ------------------------------------------------------------------------------
def test_image_generation_is_billed_per_image_by_size_and_quality(world: World) -> None:
    r = world.client.images.with_raw_response.generate(
        model="house-image", prompt="a lighthouse", size="1792x1024", quality="hd",
        response_format="b64_json",
    )  # fmt: skip
    img = r.parse()
    assert len(img.data or []) == 1 and (img.data or [])[0].b64_json
    assert units(log_row(world.gw, r.headers["x-request-id"])) == 300_000  # 0.3 CNY
    r = world.client.images.with_raw_response.generate(
        model="house-image", prompt="a lighthouse", size="1024x1024", response_format="url"
    )
    assert units(log_row(world.gw, r.headers["x-request-id"])) == 100_000  # by size: 0.1


def test_image_edit_and_variation_upload_multipart(world: World) -> None:
    r = world.client.images.with_raw_response.edit(
        model="house-image2", image=("in.png", PNG, "image/png"), prompt="add a hat", n=2,
        size="256x256",
    )  # fmt: skip
    assert len(r.parse().data or []) == 2
    assert units(log_row(world.gw, r.headers["x-request-id"])) == 100_000  # 2 × 0.05 default
    sent = world.emus[0].stats.snapshot()["recorded"][-1]
    assert sent["path"] == "/v1/images/edits"
    assert "dall-e-2" in str(sent["body"])  # the upstream model name in the re-sent form
    with warnings.catch_warnings():  # the SDK marks variations deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        v = world.client.images.with_raw_response.create_variation(
            model="house-image2", image=("in.png", PNG, "image/png")
        )
    assert len(v.parse().data or []) == 1
    assert units(log_row(world.gw, v.headers["x-request-id"])) == 50_000


# ---- audio ------------------------------------------------------------------------------
def test_transcription_is_billed_by_seconds_of_audio(world: World) -> None:
    audio = wav(2.5)
    r = world.client.audio.transcriptions.with_raw_response.create(
        model="house-whisper", file=("talk.wav", audio, "audio/wav")
    )
    t = r.parse()
    assert t.text and t.usage is not None and t.usage.type == "duration"
    seconds = t.usage.seconds  # the upstream's own count (whole seconds) is the bill
    assert 2.5 <= seconds <= 3
    assert units(log_row(world.gw, r.headers["x-request-id"])) == round(seconds * 10_000)
    sent = world.emus[0].stats.snapshot()["recorded"][-1]
    assert sent["path"] == "/v1/audio/transcriptions" and "whisper-1" in str(sent["body"])


def test_transcription_as_text_and_translation_as_verbose_json(world: World) -> None:
    audio = wav(1.0)
    r = world.client.audio.transcriptions.with_raw_response.create(
        model="house-whisper", file=("a.wav", audio, "audio/wav"), response_format="text"
    )
    assert isinstance(r.parse(), str) and r.parse().strip()
    assert units(log_row(world.gw, r.headers["x-request-id"])) == 10_000  # measured locally
    with warnings.catch_warnings():  # the SDK marks verbose_json translations deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        tr = world.client.audio.translations.with_raw_response.create(
            model="house-whisper",
            file=("a.wav", audio, "audio/wav"),
            response_format="verbose_json",
        )
    assert tr.parse().text
    duration = tr.http_response.json()["duration"]
    assert units(log_row(world.gw, tr.headers["x-request-id"])) == round(duration * 10_000)


def test_speech_streams_bytes_and_bills_characters(world: World) -> None:
    text = "Hello from the gateway, speaking."
    with world.client.audio.speech.with_streaming_response.create(
        model="house-tts", voice="alloy", input=text, response_format="wav"
    ) as r:
        rid = r.headers["x-request-id"]
        assert r.headers["content-type"].startswith("audio/")
        data = b"".join(r.iter_bytes())
    assert data[:4] == b"RIFF" and len(data) > 1000
    assert units(log_row(world.gw, rid)) == 200 * len(text)  # 0.0002 CNY per character


def test_speech_over_4096_characters_is_refused(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        world.client.audio.speech.create(model="house-tts", voice="alloy", input="x" * 4097)
    assert exc.value.body["param"] == "input"  # type: ignore[index]


# ---- bad uploads ---------------------------------------------------------------------------
def _post(world: World, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {world.key}", **kw.pop("headers", {})}
    return httpx.post(world.gw.base_url + path, headers=headers, timeout=10, **kw)


def test_upload_over_the_cap_is_refused_and_reaches_no_upstream(world: World) -> None:
    r = _post(world, "/audio/transcriptions", data={"model": "house-whisper"},
              files={"file": ("big.wav", b"\0" * (UPLOAD_CAP + 1), "audio/wav")})  # fmt: skip
    assert r.status_code == 403, r.text
    assert "larger than" in r.json()["error"]["message"]
    assert world.emus[0].stats.snapshot()["recorded"] == []


def test_wrong_multipart_bodies_get_clear_errors(world: World) -> None:
    r = _post(world, "/audio/transcriptions", content=b"model=house-whisper",
              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 403 and "multipart/form-data" in r.json()["error"]["message"]
    r = _post(world, "/audio/transcriptions", content=b"--xyz\r\ngarbage",
              headers={"Content-Type": "multipart/form-data; boundary=xyz"})  # fmt: skip
    assert r.status_code == 403 and "malformed" in r.json()["error"]["message"]
    r = _post(world, "/audio/transcriptions", data={"model": "house-whisper"},
              files={"other": ("a.txt", b"hi", "text/plain")})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["param"] == "file"
    r = _post(world, "/images/edits", data={"model": "house-image2", "prompt": "x"},
              files={"image": ("in.png", PNG, "image/png")} | {})  # fmt: skip
    assert r.status_code == 200
    assert world.emus[0].stats.snapshot()["recorded"][-1]["path"] == "/v1/images/edits"


def test_model_whose_channels_lack_the_endpoint_is_refused(world: World) -> None:
    gw = world.gw
    cid = gw.create_channel(
        name="chat-only", provider="openai_compat", profile="deepseek",
        base_url=world.emus[0].base_url, keys=["sk-up-1"], models=["house-chat-only"],
    )  # fmt: skip
    try:
        time.sleep(1.2)
        with pytest.raises(openai.APIStatusError) as exc:
            world.client.completions.create(model="house-chat-only", prompt="hi")
        assert exc.value.body["code"] == "unsupported_endpoint"  # type: ignore[index]
    finally:
        gw.admin("DELETE", f"/channels/{cid}")


def test_completion_without_upstream_usage_is_counted_here(world: World) -> None:
    world.emus[0].configure(usage="never")
    r = world.client.completions.with_raw_response.create(
        model="house-instruct", prompt="Say hi to everyone", max_tokens=30
    )
    c = r.parse()
    assert c.usage is None and c.choices[0].text
    row = log_row(world.gw, r.headers["x-request-id"])
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert units(row) == 2 * row["prompt_tokens"] + 8 * row["completion_tokens"]


def test_transcription_formats_include_diarized_json(world: World) -> None:
    r = _post(world, "/audio/transcriptions",
              data={"model": "house-whisper", "response_format": "diarized_json"},
              files={"file": ("a.wav", wav(0.5), "audio/wav")})  # fmt: skip
    # passed on (whisper-1 itself may refuse the format: the upstream decides, not the gateway)
    assert world.emus[0].stats.snapshot()["recorded"][-1]["path"] == "/v1/audio/transcriptions"
    world.emus[0].stats.reset()
    r = _post(world, "/audio/transcriptions",
              data={"model": "house-whisper", "response_format": "yaml"},
              files={"file": ("a.wav", wav(0.5), "audio/wav")})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["param"] == "response_format"
    assert world.emus[0].stats.snapshot()["recorded"] == []
