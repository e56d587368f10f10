"""The OpenAI emulator's images and audio endpoints (JSON and multipart), through the SDK."""

from __future__ import annotations

import base64
import io
import json
import struct
import wave
from collections.abc import Iterator

import httpx
import openai
import pytest

from relaygate.emulator import DEFAULT_REPLY, EmulatorServer
from relaygate.emulator.openai_images import tiny_png

AUTH = {"Authorization": "Bearer sk-test"}
PNG = tiny_png("input")


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> Iterator[None]:
    emu.reset()
    yield
    emu.reset()


@pytest.fixture
def client(emu: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.base_url, api_key="sk-test", max_retries=0)


def _wav(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * round(seconds * rate)))
    return buf.getvalue()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def test_generate_dalle2_urls_without_usage(client: openai.OpenAI) -> None:
    out = client.images.generate(prompt="a red fox", n=2, size="512x512")
    assert len(out.data) == 2
    assert all(d.url and d.url.endswith(".png") and d.b64_json is None for d in out.data)
    assert out.data[0].url != out.data[1].url
    assert out.usage is None


def test_generate_dalle3_b64_is_a_real_png(client: openai.OpenAI) -> None:
    out = client.images.generate(
        model="dall-e-3", prompt="a red fox", response_format="b64_json", quality="hd"
    )
    [image] = out.data
    assert image.revised_prompt == "a red fox"
    assert image.b64_json is not None
    assert _png_size(base64.b64decode(image.b64_json)) == (8, 8)


def test_generate_gpt_image_usage(client: openai.OpenAI) -> None:
    out = client.images.generate(
        model="gpt-image-1", prompt="a red fox", n=2, size="1024x1536", quality="high"
    )
    assert all(d.b64_json for d in out.data) and out.data[0].url is None
    assert (out.size, out.quality, out.output_format) == ("1024x1536", "high", "png")
    assert out.usage is not None
    assert out.usage.output_tokens == 2 * 6240
    assert out.usage.input_tokens_details.text_tokens == 3
    assert out.usage.total_tokens == out.usage.input_tokens + out.usage.output_tokens
    auto = client.images.generate(model="gpt-image-1", prompt="fox")
    assert (auto.size, auto.quality) == ("1024x1024", "medium")
    assert auto.usage is not None and auto.usage.output_tokens == 1056
    custom = client.images.generate(model="gpt-image-2", prompt="fox", size="1536x864")  # type: ignore[arg-type]
    assert custom.size == "1536x864"


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"model": "dall-e-3", "size": "512x512"}, "size", "invalid_value"),
        ({"model": "dall-e-3", "n": 2}, "n", "integer_above_max_value"),
        ({"model": "dall-e-2", "quality": "hd"}, "quality", "invalid_value"),
        (
            {"model": "gpt-image-1", "response_format": "url"},
            "response_format",
            "unknown_parameter",
        ),
        ({"model": "gpt-image-1", "size": "256x256"}, "size", "invalid_value"),
        ({"model": "gpt-image-2", "size": "1000x1000"}, "size", "invalid_value"),
        ({"model": "dall-e-2", "prompt": "x" * 1001}, "prompt", "string_above_max_length"),
        ({"model": "dall-e-2", "n": 11}, "n", "integer_above_max_value"),
    ],
)
def test_generate_refusals(
    client: openai.OpenAI, kwargs: dict[str, object], param: str, code: str
) -> None:
    kwargs = {"prompt": "fox", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(**kwargs)  # type: ignore[call-overload]
    body = info.value.body
    assert isinstance(body, dict)
    assert (body["param"], body["code"], body["type"]) == (param, code, "invalid_request_error")


def test_generate_dalle3_size_message_lists_supported_values(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="dall-e-3", prompt="fox", size="256x256")
    assert info.value.message.endswith(
        "Invalid value: '256x256'. Supported values are: '1024x1024', '1792x1024', and '1024x1792'."
    )


def test_generate_stream_partial_images(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(model="gpt-image-1", prompt="fox", stream=True, partial_images=2)
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    done = events[-1]
    assert done.type == "image_generation.completed"
    assert done.usage.output_tokens == 1056
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-2", prompt="fox", stream=True)  # type: ignore[call-overload]


def test_edit_gpt_image_records_files_not_bytes(client: openai.OpenAI, emu: EmulatorServer) -> None:
    out = client.images.edit(
        model="gpt-image-1",
        image=[("a.png", PNG, "image/png"), ("b.png", PNG, "image/png")],
        prompt="add a hat",
    )
    assert out.usage is not None
    assert out.usage.input_tokens_details.image_tokens == 2 * 765
    body = emu.stats.last_body
    assert body["prompt"] == "add a hat" and body["model"] == "gpt-image-1"
    files = body["image[]"]
    assert [f["filename"] for f in files] == ["a.png", "b.png"]
    assert files[0] == {"filename": "a.png", "content_type": "image/png", "size": len(PNG)}


def test_edit_dalle2_and_refusals(client: openai.OpenAI) -> None:
    out = client.images.edit(
        model="dall-e-2",
        image=("a.png", PNG, "image/png"),
        mask=("m.png", PNG, "image/png"),
        prompt="hat",
        response_format="b64_json",
        size="256x256",
    )
    assert out.data[0].b64_json and out.usage is None
    with pytest.raises(openai.BadRequestError, match="must be a PNG"):
        client.images.edit(
            model="dall-e-2", image=("a.jpg", b"\xff\xd8\xff\xe0", "image/jpeg"), prompt="x"
        )
    with pytest.raises(openai.BadRequestError, match="Invalid image file or mode for image 2"):
        client.images.edit(
            model="gpt-image-1",
            image=[("a.png", PNG, "image/png"), ("t.txt", b"text", "text/plain")],
            prompt="x",
        )
    with pytest.raises(openai.BadRequestError, match="mask must be a PNG"):
        client.images.edit(
            image=("a.png", PNG, "image/png"), mask=("m.gif", b"GIF89a", "image/gif"), prompt="x"
        )
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(model="dall-e-3", image=("a.png", PNG, "image/png"), prompt="x")
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "model"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # deprecated in the SDK
def test_variations(client: openai.OpenAI) -> None:
    out = client.images.create_variation(
        image=("a.png", PNG, "image/png"), n=3, response_format="b64_json"
    )
    assert len(out.data) == 3 and all(d.b64_json for d in out.data)
    with pytest.raises(openai.BadRequestError, match="must be a PNG"):
        client.images.create_variation(image=("a.webp", b"RIFF\0\0\0\0WEBP", "image/webp"))
    with pytest.raises(openai.BadRequestError) as info:
        client.images.create_variation(image=("a.png", PNG, "image/png"), model="gpt-image-1")
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "invalid_value"


# ---------------------------------------------------------------------------------------------
# speech to text
# ---------------------------------------------------------------------------------------------


def test_transcription_whisper_reads_wav_duration(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    wav = _wav(2.5)
    out = client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav, "audio/wav"))
    assert out.text == DEFAULT_REPLY
    assert out.usage is not None and out.usage.type == "duration"
    assert out.usage.seconds == 3  # ceil(2.5)
    assert emu.stats.last_body["file"] == {
        "filename": "talk.wav",
        "content_type": "audio/wav",
        "size": len(wav),
    }
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", wav, "audio/wav"),
        response_format="verbose_json",
        language="de",
        timestamp_granularities=["word", "segment"],
    )
    assert (verbose.duration, verbose.language) == (2.5, "german")
    assert verbose.segments and verbose.segments[-1].end == 2.5
    assert "".join(s.text for s in verbose.segments) == DEFAULT_REPLY
    assert verbose.words and [w.word for w in verbose.words] == DEFAULT_REPLY.split()


def test_transcription_byte_rule_and_text_formats(client: openai.OpenAI) -> None:
    mp3 = b"\xff\xfb" + bytes(47_998)  # 48000 bytes / 16000 per second = 3 s
    out = client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", mp3, "audio/mpeg"), response_format="verbose_json"
    )
    assert out.duration == 3.0
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", mp3, "audio/mpeg"), response_format="text"
    )
    assert text == DEFAULT_REPLY + "\n"
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", mp3, "audio/mpeg"), response_format="srt"
    )
    assert srt.startswith(f"1\n00:00:00,000 --> 00:00:03,000\n{DEFAULT_REPLY}\n")
    vtt = client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", mp3, "audio/mpeg"), response_format="vtt"
    )
    assert vtt.startswith(f"WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n{DEFAULT_REPLY}\n")


def test_transcription_gpt4o_tokens_and_stream(client: openai.OpenAI, emu: EmulatorServer) -> None:
    wav = _wav(2.5)
    out = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("a.wav", wav, "audio/wav"), prompt="names"
    )
    usage = out.usage
    assert usage is not None and usage.type == "tokens"
    assert usage.input_token_details is not None
    assert usage.input_token_details.audio_tokens == 25
    assert usage.input_token_details.text_tokens == 2
    with pytest.raises(openai.BadRequestError, match="not compatible with model"):
        client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", wav, "audio/wav"), response_format="srt"
        )
    emu.configure(chunks=3)
    events = list(
        client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=("a.wav", wav, "audio/wav"), stream=True
        )
    )
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) == 3 and "".join(deltas) == DEFAULT_REPLY
    assert events[-1].type == "transcript.text.done"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # deprecated in the SDK
def test_translation(client: openai.OpenAI) -> None:
    wav = _wav(1.0)
    out = client.audio.translations.create(model="whisper-1", file=("a.wav", wav, "audio/wav"))
    assert out.text == DEFAULT_REPLY
    verbose = client.audio.translations.create(
        model="whisper-1", file=("a.ogg", wav, "audio/ogg"), response_format="verbose_json"
    )
    assert (verbose.language, verbose.duration) == ("english", 1.0)


@pytest.mark.parametrize(
    ("name", "data", "status", "match"),
    [
        ("a.wav", _wav(0.05), 400, "Audio file is too short"),
        ("notes.txt", b"x" * 20000, 400, "Invalid file format"),
    ],
)
def test_transcription_file_refusals(
    client: openai.OpenAI, name: str, data: bytes, status: int, match: str
) -> None:
    with pytest.raises(openai.APIStatusError, match=match) as info:
        client.audio.transcriptions.create(model="whisper-1", file=(name, data, "audio/wav"))
    assert info.value.status_code == status


def test_multipart_bodies_malformed_and_misdeclared(emu: EmulatorServer) -> None:
    url = emu.url("/v1/audio/transcriptions")
    garbage = httpx.post(
        url,
        content=b"not a form",
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert garbage.status_code == 400
    assert garbage.json() == {
        "error": {
            "message": "Could not parse multipart form",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    as_json = httpx.post(url, json={"model": "whisper-1"}, headers=AUTH)
    assert as_json.status_code == 400
    assert "expected multipart/form-data" in as_json.json()["error"]["message"]
    no_file = httpx.post(url, files={"model": (None, "whisper-1")}, headers=AUTH)
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    no_key = httpx.post(
        url, content=b"x", headers={"Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert no_key.status_code == 401  # auth is checked before the body is refused
    assert emu.stats.errors == 4


def test_multipart_failure_knobs(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(fail_status=500, fail_times=1)
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", _wav(1), "audio/wav"))
    assert client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", _wav(1), "audio/wav")
    ).text
    with pytest.raises(openai.RateLimitError):
        client.images.edit(model="error-429", image=("a.png", PNG, "image/png"), prompt="x")


# ---------------------------------------------------------------------------------------------
# text to speech
# ---------------------------------------------------------------------------------------------


def test_speech_wav_is_real_and_sized_by_input(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(chunks=4)
    text = "x" * 45  # 3 seconds at 15 characters a second
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ) as resp:
        assert resp.headers["content-type"] == "audio/wav"
        assert resp.headers["transfer-encoding"] == "chunked"
        data = resp.read()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (24000, 2, 1)
        assert w.getnframes() / w.getframerate() == 3.0
    fast = client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm", speed=2.0
    )
    assert len(fast.content) == 24000 * 2 * 1.5


def test_speech_formats_and_chunks(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(chunks=5, chunk_interval_ms=5)
    with httpx.stream(
        "POST",
        emu.url("/v1/audio/speech"),
        json={"model": "tts-1", "voice": "nova", "input": "Hello there."},
        headers=AUTH,
    ) as resp:
        assert resp.headers["content-type"] == "audio/mpeg"
        pieces = [p for p in resp.iter_raw() if p]
    data = b"".join(pieces)
    assert data[:2] == b"\xff\xfb" and len(data) % 417 == 0
    assert len(pieces) >= 2  # paced pieces arrive separately
    opus = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice={"id": "voice_1"}, input="Hi", response_format="opus"
    )
    assert (
        opus.content.startswith(b"OggS") and opus.response.headers["content-type"] == "audio/opus"
    )


def test_speech_sse_stream(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(chunks=3)
    resp = httpx.post(
        emu.url("/v1/audio/speech"),
        json={
            "model": "gpt-4o-mini-tts",
            "voice": "alloy",
            "input": "x" * 30,
            "stream_format": "sse",
            "response_format": "pcm",
        },
        headers=AUTH,
    )
    events = [json.loads(line[6:]) for line in resp.text.split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 3 + ["speech.audio.done"]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) == 2 * 24000 * 2  # 2 seconds of 24 kHz 16-bit
    assert events[-1]["usage"]["output_tokens"] == 20


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x" * 4097}, "input", "string_above_max_length"),
        ({"voice": "robot"}, "voice", "invalid_value"),
        ({"response_format": "ogg"}, "response_format", "invalid_value"),
        ({"speed": 5}, "speed", "decimal_above_max_value"),
        ({"stream_format": "sse"}, "stream_format", "unsupported_value"),
        ({"input": None}, "input", "missing_required_parameter"),
    ],
)
def test_speech_refusals(
    emu: EmulatorServer, body: dict[str, object], param: str, code: str
) -> None:
    full = {"model": "tts-1", "voice": "alloy", "input": "hello", **body}
    resp = httpx.post(emu.url("/v1/audio/speech"), json=full, headers=AUTH)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert (err["param"], err["code"]) == (param, code)


def test_speech_midstream_error_cuts_the_audio(emu: EmulatorServer) -> None:
    emu.configure(chunks=4, midstream_error=True)
    body = {"model": "tts-1", "voice": "alloy", "input": "x" * 30, "response_format": "pcm"}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(emu.url("/v1/audio/speech"), json=body, headers=AUTH)
    assert emu.stats.wait_for(lambda s: s.streams_cut == 1)
