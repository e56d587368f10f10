"""Hostile input on the model endpoints beyond chat (completions, moderations, images,
speech, rerank) through the running gateway: every field the gateway checks refused with its
``param`` before anything goes upstream; every other field either relayed or refused in the
error table's shape — never a 5xx, never an internal error. Then what breaks mid-answer: an
upstream that cuts a download (the client must not see a clean end, the row records the
error and charges nothing), a client that leaves mid-download, and streamed answers that must
be billed like non-streamed ones.

The world (two emulator channels, two users, a key limited to one model) is
``probe_world.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from probe_world import World, assert_error, start_world, units, wav

BIG = "x" * 1_000_001  # past every text limit the gateway applies (rerank query: 10^6)
BASES: dict[str, dict[str, Any]] = {
    "/completions": {"model": "house-instruct", "prompt": "hi", "max_tokens": 5},
    "/moderations": {"model": "house-moderation", "input": "hi"},
    "/images/generations": {"model": "house-image", "prompt": "a cat", "size": "256x256"},
    "/audio/speech": {"model": "house-tts", "input": "hello", "voice": "alloy"},
    "/rerank": {"model": "house-rerank", "query": "q", "documents": ["a", "b"]},
}
WRONG_INT = ["5", "²", {"a": 1}, [1], True, 1.5, None]  # None: absent, allowed
WRONG_STR = [5, {"a": 1}, [1], True, 1.5]
MODEL_REQUIRED = ("/completions", "/audio/speech", "/rerank")
#: (endpoint, field, bad values) the gateway checks itself: 403 naming the field
CHECKED: list[tuple[str, str, list[Any]]] = [
    *[(ep, "model", [*WRONG_STR, "", "  ", None]) for ep in MODEL_REQUIRED],
    ("/moderations", "model", [*WRONG_STR, "", "  "]),  # absent: OpenAI's default model
    ("/images/generations", "model", [*WRONG_STR, "", "  "]),  # absent: dall-e-2
    ("/completions", "prompt", [5, {"a": 1}, True, None, [], [None], [{"x": 1}], [[1, "a"]]]),
    ("/completions", "max_tokens", [*WRONG_INT[:-1], -1, 10**9]),
    ("/completions", "n", [*WRONG_INT[:-1], 0, 10**9]),
    ("/completions", "best_of", [*WRONG_INT[:-1], 0, 10**9]),
    ("/completions", "stream", ["true", 1, {}, []]),
    ("/completions", "stream_options", ["x", 5, []]),
    ("/moderations", "input", [5, {"a": 1}, True, "", [], None]),
    ("/images/generations", "prompt", [*WRONG_STR, "", None, "x" * 32_001, BIG]),
    ("/images/generations", "n", [*WRONG_INT[:-1], 0, 11, 10**9]),
    ("/images/generations", "size", WRONG_STR),
    ("/images/generations", "quality", WRONG_STR),
    ("/images/generations", "response_format", [*WRONG_STR, "", "png"]),
    ("/audio/speech", "input", [*WRONG_STR, "", None, "x" * 4097, BIG]),
    ("/audio/speech", "voice", [5, [1], True, 1.5, "", None]),
    ("/rerank", "query", [*WRONG_STR, "", None, BIG]),
    ("/rerank", "documents", ["a", 5, {}, [], None, [5], [None], [{"x": 1}], ["d"] * 1001]),
    ("/rerank", "top_n", [*WRONG_INT[:-1], 0, 10**9]),
]
#: fields left to the upstream: relayed, or refused in the error table's shape
UNCHECKED = {
    "/completions": "temperature echo suffix logprobs stop seed user logit_bias presence_penalty",
    "/images/generations": "style user background output_format moderation stream partial_images",
    "/audio/speech": "response_format speed instructions stream_format",
    "/rerank": "return_documents",
}
RELAYED = [(ep, name) for ep, names in UNCHECKED.items() for name in names.split()]
ANY_VALUES = ["5", {"a": 1}, [1], None, True, False, 10**9, -1, "", 1.5, BIG]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start_world(tmp_path_factory.mktemp("surface-probes"))


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus:
        emu.reset(knobs=True, stats=True)


def _case_id(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{type(value).__name__}[{len(value)}]"


# ---- fields the gateway checks -------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "name", "value"),
    [(ep, name, v) for ep, name, values in CHECKED for v in values],
    ids=[f"{ep[1:]}-{name}-{_case_id(v)}" for ep, name, values in CHECKED for v in values],
)
def test_checked_field_of_wrong_type_or_size_is_refused_before_upstream(
    world: World, endpoint: str, name: str, value: Any
) -> None:
    body = {**BASES[endpoint], name: value}
    if value is None:
        del body[name]  # absent (a JSON null is the same to the checks)
        assert_error(world.post(endpoint, json=body), 403, param=name)
    assert_error(world.post(endpoint, json={**BASES[endpoint], name: value}), 403, param=name)
    assert world.paths() == []


@pytest.mark.parametrize(("endpoint", "name"), RELAYED, ids=[f"{e[1:]}-{n}" for e, n in RELAYED])
def test_other_fields_are_relayed_or_refused_in_the_error_shape(
    world: World, endpoint: str, name: str
) -> None:
    for value in ANY_VALUES:
        r = world.post(endpoint, json={**BASES[endpoint], name: value})
        if r.status_code != 200:  # the upstream's refusal, passed on with its status
            assert_error(r, (400, 403), param=None if r.status_code == 400 else name)


def test_the_base_bodies_are_served(world: World) -> None:
    for endpoint, body in BASES.items():
        assert world.post(endpoint, json=body).status_code == 200, endpoint


# ---- bodies that are not a request --------------------------------------------------------
NOT_OBJECTS = [b"[]", b"5", b'"x"', b"null", b"{", b"", b"   ", b"\xff\xfe", b"[" * 100_000,
               b'{"model": "house-tts",', b"{}" * 2]  # fmt: skip


@pytest.mark.parametrize("endpoint", list(BASES))
@pytest.mark.parametrize("raw", NOT_OBJECTS, ids=[_case_id(b) for b in NOT_OBJECTS])
def test_a_body_that_is_not_a_json_object_is_refused(
    world: World, endpoint: str, raw: bytes
) -> None:
    r = world.post(endpoint, content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 403, code="invalid_request_error")
    assert world.paths() == []


@pytest.mark.parametrize("endpoint", list(BASES))
def test_json_nested_deeper_than_can_be_sent_is_refused(world: World, endpoint: str) -> None:
    deep = "[" * 1000 + "]" * 1000  # valid JSON the upstream encoder cannot write again
    body = orjson_dumps(BASES[endpoint])[:-1] + ', "user_extra": ' + deep + "}"
    r = world.post(endpoint, content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 403, code="invalid_request_error")
    assert world.paths() == []


def orjson_dumps(body: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(body).decode()


@pytest.mark.parametrize("endpoint", list(BASES))
def test_unknown_model_and_a_model_outside_the_keys_list(world: World, endpoint: str) -> None:
    body = {**BASES[endpoint], "model": "no-such-model"}
    assert_error(world.post(endpoint, json=body), 403, code="model_not_found", param="model")
    limited = world.post(endpoint, key=world.limited, json=BASES[endpoint])
    if BASES[endpoint]["model"] == "house-tts":
        assert limited.status_code == 200  # the one model the key may use
    else:
        err = assert_error(limited, 403, code="model_not_found", param="model")
        assert "not allowed for this API key" in err["message"]
    assert all(p == "/v1/audio/speech" for p in world.paths())


def test_huge_counts_never_reach_the_upstream(world: World) -> None:
    for endpoint, name in [("/completions", "n"), ("/completions", "max_tokens"),
                           ("/images/generations", "n"), ("/rerank", "top_n")]:  # fmt: skip
        for value in (10**9, 10**30, -(10**9)):
            r = world.post(endpoint, json={**BASES[endpoint], name: value})
            assert_error(r, 403, param=name)
    assert world.paths() == []


# ---- answers that break ---------------------------------------------------------------------
SPEECH = {"model": "house-tts", "input": "hello there, " * 20, "voice": "alloy",
          "response_format": "wav"}  # fmt: skip


@pytest.mark.parametrize("knob", [{"cut_after": 2}, {"midstream_error": True}])
def test_speech_cut_by_the_upstream_is_not_a_clean_end(world: World, knob: dict[str, Any]) -> None:
    for emu in world.emus:
        emu.configure(chunks=8, **knob)
    got = 0
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", world.url("/audio/speech"), headers=world.headers(), json=SPEECH, timeout=10
        ) as r,  # fmt: skip
    ):
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        for chunk in r.iter_raw():
            got += len(chunk)
    assert got > 0  # the first pieces arrived, then the connection was cut
    row = world.log_row(rid)
    assert row["status"] >= 500 and row["error_code"], row
    assert units(row) == 0  # a broken download is not charged
    world.healthy()


def test_client_leaving_mid_speech_is_logged_and_the_gateway_carries_on(world: World) -> None:
    world.emus[0].configure(chunks=10, chunk_interval_ms=300)
    with httpx.stream("POST", world.url("/audio/speech"), headers=world.headers(), json=SPEECH,
                      timeout=10) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        next(r.iter_raw())  # one piece, then the client goes
    assert world.emus[0].stats.wait_for(lambda s: s.disconnected == 1, timeout=5)
    assert world.log_row(rid)["status"] == 499
    world.healthy()


def test_client_leaving_mid_file_download(world: World) -> None:
    fid = world.upload(data=b"z" * (2 * 1024 * 1024))
    with httpx.stream("GET", world.url(f"/files/{fid}/content"), headers=world.headers(),
                      timeout=10) as r:  # fmt: skip
        assert r.status_code == 200
        next(r.iter_raw())
    r = world.request("GET", f"/files/{fid}/content")
    assert r.status_code == 200 and r.content == b"z" * (2 * 1024 * 1024)
    world.healthy()


def test_streamed_completion_cut_ends_with_an_error_event(world: World) -> None:
    for emu in world.emus:
        emu.configure(cut_after=2, chunks=6)
    body = {**BASES["/completions"], "stream": True}
    with httpx.stream("POST", world.url("/completions"), headers=world.headers(), json=body,
                      timeout=10) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] != "data: [DONE]" and '"error"' in lines[-1]
    assert world.log_row(rid)["status"] >= 500


# ---- streamed answers are billed like whole ones ------------------------------------------
def _billed(world: World, path: str, **kw: Any) -> tuple[int, int]:
    """(units charged, prompt + completion tokens) of one streamed request."""
    with httpx.stream("POST", world.url(path), headers=world.headers(), timeout=10, **kw) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        assert r.headers["content-type"].startswith("text/event-stream")
        r.read()
    row = world.log_row(rid)
    return units(row), row["prompt_tokens"] + row["completion_tokens"]


def test_streamed_gpt_image_generation_is_billed_its_tokens(world: World) -> None:
    body = {"model": "house-gptimage", "prompt": "a cat", "quality": "low"}
    r = world.post("/images/generations", json=body)
    whole = units(world.log_row(r.headers["x-request-id"]))
    assert whole > 0
    cost, tokens = _billed(world, "/images/generations", json={**body, "stream": True,
                                                                "partial_images": 1})  # fmt: skip
    assert tokens > 0 and cost == whole


def test_streamed_transcription_is_billed_its_tokens(world: World) -> None:
    form = {"model": "house-transcribe"}
    upload = {"file": ("a.wav", wav(2.0), "audio/wav")}
    r = world.post("/audio/transcriptions", data=form, files=upload)
    whole = units(world.log_row(r.headers["x-request-id"]))
    assert whole > 0
    cost, tokens = _billed(world, "/audio/transcriptions", data={**form, "stream": "true"},
                           files=upload)  # fmt: skip
    assert tokens > 0 and cost == whole
