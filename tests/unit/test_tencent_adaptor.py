"""The Tencent Hunyuan native adaptor with literal bytes: TC3-HMAC-SHA256 signing against
Tencent's published worked example and a vector worked by hand from the documented
steps, the signed request (headers, PascalCase body, tools), answers, streams fed in
small pieces, every error family, embeddings."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers import tc3
from relaygate.providers.base import Target
from relaygate.providers.tencent import TencentAdaptor
from relaygate.relay.sse import SSEDecoder

TS = 1551113065  # 2019-02-25 16:44:25 UTC
A = TencentAdaptor(clock=lambda: TS)
KEY = "AKIDexampleSecretId|exampleSecretKey"


def target(model: str = "hunyuan-turbos-latest", key: str = KEY, **config: Any) -> Target:
    return Target(
        3, "tencent", "tencent", "https://hunyuan.tencentcloudapi.com", key, model, config
    )


# ---------------------------------------------------------------- TC3 signing

# Tencent's worked example in "Signature v3" (TencentCloud API 3.0 documentation,
# DescribeInstances on cvm): the SecretKey is masked there, but the payload, the hashes,
# the string to sign, the derived SecretSigning and the final Signature are published.
DOC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
DOC_CANONICAL = (
    "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
    "x-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n"
    "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
)
DOC_STRING_TO_SIGN = (
    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
    "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
)
DOC_SECRET_SIGNING = "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
DOC_SIGNATURE = "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"


def test_tc3_reproduces_the_published_example() -> None:
    canonical = tc3.canonical_request(
        "cvm.tencentcloudapi.com",
        "DescribeInstances",
        DOC_PAYLOAD,
        "application/json; charset=utf-8",
    )
    assert canonical == DOC_CANONICAL
    assert tc3.credential_date(TS) == "2019-02-25"
    assert tc3.string_to_sign(TS, "cvm", canonical) == DOC_STRING_TO_SIGN
    assert tc3.sign(bytes.fromhex(DOC_SECRET_SIGNING), DOC_STRING_TO_SIGN) == DOC_SIGNATURE


def test_tc3_hunyuan_vector_worked_from_the_documented_steps() -> None:
    """Each documented step written out here, independently of ``providers/tc3.py``."""
    body = b'{"Model":"hunyuan-lite","Messages":[{"Role":"user","Content":"hi"}],"Stream":false}'
    canonical = (
        "POST\n"
        "/\n"
        "\n"
        "content-type:application/json\n"
        "host:hunyuan.tencentcloudapi.com\n"
        "x-tc-action:chatcompletions\n"
        "\n"
        "content-type;host;x-tc-action\n" + hashlib.sha256(body).hexdigest()
    )
    to_sign = (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/hunyuan/tc3_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )
    k_date = hmac.new(b"TC3exampleSecretKey", b"2019-02-25", hashlib.sha256).digest()
    k_service = hmac.new(k_date, b"hunyuan", hashlib.sha256).digest()
    k_signing = hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(k_signing, to_sign.encode(), hashlib.sha256).hexdigest()
    assert tc3.authorization(
        "AKIDexampleSecretId",
        "exampleSecretKey",
        service="hunyuan",
        host="hunyuan.tencentcloudapi.com",
        action="ChatCompletions",
        body=body,
        timestamp=TS,
    ) == (
        "TC3-HMAC-SHA256 Credential=AKIDexampleSecretId/2019-02-25/hunyuan/tc3_request, "
        f"SignedHeaders=content-type;host;x-tc-action, Signature={signature}"
    )


# ---------------------------------------------------------------- requests


def test_chat_request_headers_and_body() -> None:
    req = A.chat_request(
        target(region="ap-guangzhou"),
        {
            "model": "x",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Be brief."},
            ],
            "temperature": 0.7,
            "top_p": 0.8,
        },
        True,
    )
    assert req.url == "https://hunyuan.tencentcloudapi.com/"
    assert orjson.loads(req.body) == {
        "Model": "hunyuan-turbos-latest",
        "Messages": [
            {"Role": "system", "Content": "Be brief."},
            {"Role": "user", "Content": "hi"},
        ],
        "Stream": True,
        "Temperature": 0.7,
        "TopP": 0.8,
        "EnableEnhancement": False,
    }
    h = req.headers
    assert h["Host"] == "hunyuan.tencentcloudapi.com" and h["Content-Type"] == "application/json"
    assert h["X-TC-Action"] == "ChatCompletions" and h["X-TC-Version"] == "2023-09-01"
    assert h["X-TC-Timestamp"] == "1551113065" and h["X-TC-Region"] == "ap-guangzhou"
    assert h["Authorization"] == tc3.authorization(
        "AKIDexampleSecretId",
        "exampleSecretKey",
        service="hunyuan",
        host="hunyuan.tencentcloudapi.com",
        action="ChatCompletions",
        body=req.body,
        timestamp=TS,
    )
    assert "exampleSecretKey" not in h["Authorization"]


def test_app_id_prefix_and_port_in_host() -> None:
    t = Target(1, "tencent", "tencent", "http://127.0.0.1:8123", "1250000000|AKIDx|sk", "m")
    req = A.chat_request(t, {"messages": [{"role": "user", "content": "x"}]}, False)
    assert req.headers["Host"] == "127.0.0.1:8123" and req.url == "http://127.0.0.1:8123/"
    assert "Credential=AKIDx/2019-02-25/hunyuan/tc3_request" in req.headers["Authorization"]
    assert "X-TC-Region" not in req.headers
    with pytest.raises(UpstreamError) as exc:
        A.chat_request(
            target(key="no-secret"), {"messages": [{"role": "user", "content": "x"}]}, False
        )
    assert exc.value.code == "upstream_auth_failed"


def test_tools_images_and_tool_results() -> None:
    req = A.chat_request(
        target(enable_enhancement=True),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "look", "arguments": '{"q":1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "a cat"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "look", "parameters": {"type": "object"}},
                }
            ],
            "tool_choice": "required",
        },
        False,
    )
    body = orjson.loads(req.body)
    assert body["Messages"][0] == {
        "Role": "user",
        "Contents": [
            {"Type": "text", "Text": "what is this?"},
            {"Type": "image_url", "ImageUrl": {"Url": "https://x/cat.png"}},
        ],
    }
    assert body["Messages"][1] == {
        "Role": "assistant",
        "Content": "",
        "ToolCalls": [
            {
                "Id": "call_9",
                "Type": "function",
                "Function": {"Name": "look", "Arguments": '{"q":1}'},
            }
        ],
    }
    assert body["Messages"][2] == {"Role": "tool", "Content": "a cat", "ToolCallId": "call_9"}
    tool = {
        "Type": "function",
        "Function": {"Name": "look", "Description": "", "Parameters": '{"type":"object"}'},
    }
    assert body["Tools"] == [tool]
    assert body["ToolChoice"] == "custom" and body["CustomTool"] == tool
    assert body["EnableEnhancement"] is True
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(target(), {"messages": [{"role": "critic", "content": "x"}]}, False)
    assert exc.value.param == "messages[0].role"


# ---------------------------------------------------------------- answers

ANSWER = (
    b'{"Response":{"RequestId":"e6ad2f2b","Note":"\xe4\xbb\xa5\xe4\xb8\x8a",'
    b'"Choices":[{"Index":0,"Message":{"Role":"assistant","Content":"Hello!"},'
    b'"FinishReason":"stop"}],"Created":1715570000,"Id":"e6ad2f2b",'
    b'"Usage":{"PromptTokens":3,"CompletionTokens":4,"TotalTokens":7}}}'
)


def test_chat_response() -> None:
    obj, usage = A.chat_response(target(), ANSWER)
    assert obj["id"] == "chatcmpl-e6ad2f2b" and obj["created"] == 1715570000
    assert obj["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert obj["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert usage is not None and usage.total_tokens == 7


def test_tool_call_and_filtered_answers() -> None:
    raw = (
        b'{"Response":{"Choices":[{"Index":0,"Message":{"Role":"assistant","Content":"",'
        b'"ToolCalls":[{"Id":"call_a","Type":"function","Function":{"Name":"look",'
        b'"Arguments":"{\\"q\\":1}"},"Index":0}]},"FinishReason":"tool_calls"}],'
        b'"Id":"x","Usage":{"PromptTokens":1,"CompletionTokens":2,"TotalTokens":3},"RequestId":"r"}}'
    )
    obj, _ = A.chat_response(target(), raw)
    assert obj["choices"][0]["finish_reason"] == "tool_calls"
    assert obj["choices"][0]["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}}
    ]
    filtered = ANSWER.replace(b'"FinishReason":"stop"', b'"FinishReason":"sensitive"')
    assert A.chat_response(target(), filtered)[0]["choices"][0]["finish_reason"] == "content_filter"


# ---------------------------------------------------------------- streams

STREAM = (
    b'data: {"Note":"n","Choices":[{"Index":0,"Delta":{"Role":"assistant","Content":"Hel"},'
    b'"FinishReason":""}],"Created":1715570000,"Id":"s1",'
    b'"Usage":{"PromptTokens":3,"CompletionTokens":1,"TotalTokens":4}}\n\n'
    b'data: {"Note":"n","Choices":[{"Index":0,"Delta":{"Role":"assistant","Content":"lo"},'
    b'"FinishReason":""}],"Created":1715570000,"Id":"s1",'
    b'"Usage":{"PromptTokens":3,"CompletionTokens":2,"TotalTokens":5}}\n\n'
    b'data: {"Note":"n","Choices":[{"Index":0,"Delta":{"Role":"assistant","Content":""},'
    b'"FinishReason":"stop"}],"Created":1715570000,"Id":"s1",'
    b'"Usage":{"PromptTokens":3,"CompletionTokens":2,"TotalTokens":5}}\n\n'
)


def run_stream(raw: bytes, include_usage: bool, piece: int = 9, **kw: Any) -> tuple[Any, list[Any]]:
    tr = A.chat_stream(target(), include_usage, **kw)
    dec = SSEDecoder()
    out: list[bytes] = []
    for i in range(0, len(raw), piece):
        for ev, data in dec.feed(raw[i : i + piece]):
            out.extend(tr.feed(ev, data))
    for ev, data in dec.flush():
        out.extend(tr.feed(ev, data))
    if tr.error is None:
        out.extend(tr.finish())
    return tr, [orjson.loads(p) for p in out]


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream(include_usage: bool) -> None:
    tr, chunks = run_stream(STREAM, include_usage)
    assert tr.done and tr.error is None
    assert chunks[0]["id"] == "chatcmpl-s1" and chunks[0]["created"] == 1715570000
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "lo"}
    assert chunks[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert tr.usage.completion_tokens == 2 and tr.usage.total_tokens == 5
    if include_usage:
        assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 5
    assert len(chunks) == (4 if include_usage else 3)


def test_stream_tool_calls() -> None:
    raw = (
        b'data: {"Choices":[{"Index":0,"Delta":{"Role":"assistant","Content":"",'
        b'"ToolCalls":[{"Id":"call_b","Type":"function","Function":{"Name":"look",'
        b'"Arguments":"{}"},"Index":0}]},"FinishReason":"tool_calls"}],"Id":"s2",'
        b'"Usage":{"PromptTokens":1,"CompletionTokens":1,"TotalTokens":2}}\n\n'
    )
    tr, chunks = run_stream(raw, False, piece=4)
    assert tr.done
    assert chunks[0]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_b",
            "type": "function",
            "function": {"name": "look", "arguments": "{}"},
        }
    ]
    assert chunks[0]["choices"][0]["finish_reason"] == "tool_calls"
    _, legacy = run_stream(raw, False, legacy_functions=True)
    assert legacy[0]["choices"][0]["delta"]["function_call"] == {"name": "look", "arguments": "{}"}
    assert legacy[0]["choices"][0]["finish_reason"] == "function_call"


def test_stream_error_events() -> None:
    first = STREAM.split(b"\n\n")[0] + b"\n\n"
    wrapped = (
        b'data: {"Response":{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r"}}\n\n'
    )
    tr, chunks = run_stream(first + wrapped, True)
    assert len(chunks) == 1 and not tr.done
    assert isinstance(tr.error, UpstreamError) and tr.error.http_status(False) == 502
    bare = b'data: {"Error":{"Code":"LimitExceeded","Message":"slow down"}}\n\n'
    tr, _ = run_stream(first + bare, True)
    assert isinstance(tr.error, RateLimited)
    moderation = b'data: {"Choices":[],"ErrorMsg":{"Code":2001,"Msg":"blocked"}}\n\n'
    tr, _ = run_stream(first + moderation, True)
    assert isinstance(tr.error, UpstreamError)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "cls", "status", "err_code"),
    [
        ("AuthFailure.SignatureFailure", UpstreamError, 502, "upstream_auth_failed"),
        ("AuthFailure.SecretIdNotFound", UpstreamError, 502, "upstream_auth_failed"),
        ("AuthFailure.SignatureExpire", UpstreamError, 502, "upstream_auth_failed"),
        ("UnauthorizedOperation", UpstreamError, 502, "upstream_auth_failed"),
        ("RequestLimitExceeded", RateLimited, 429, "rate_limit_exceeded"),
        ("RequestLimitExceeded.UinLimitExceeded", RateLimited, 429, "rate_limit_exceeded"),
        ("LimitExceeded", RateLimited, 429, "rate_limit_exceeded"),
        ("InvalidParameter", UpstreamRejected, 400, "InvalidParameter"),
        ("InvalidParameterValue.Model", UpstreamRejected, 400, "InvalidParameterValue.Model"),
        ("MissingParameter", UpstreamRejected, 400, "MissingParameter"),
        ("ResourceInsufficient.ChargeResourceExhaust", UpstreamError, 502, "upstream_error"),
        ("FailedOperation.EngineServerError", UpstreamError, 502, "upstream_error"),
        ("InternalError", UpstreamError, 502, "upstream_error"),
    ],
)
def test_error_codes(code: str, cls: type[RelayError], status: int, err_code: str) -> None:
    raw = (
        b'{"Response":{"Error":{"Code":"%s","Message":"bad exampleSecretKey"},"RequestId":"r1"}}'
        % code.encode()
    )
    errs: list[RelayError] = [A.error(target(), 502, raw)]  # plain JSON answering a stream
    for call in (
        lambda: A.chat_response(target(), raw),
        lambda: A.embeddings_response(target(), raw),
    ):
        with pytest.raises(RelayError) as exc:
            call()
        errs.append(exc.value)
    for err in errs:
        assert type(err) is cls and err.code == err_code
        assert err.http_status(False) == status and err.upstream_status == 200
        assert "exampleSecretKey" not in err.message


def test_http_error_without_tencent_body() -> None:
    err = A.error(target(), 503, b"<html>busy</html>")
    assert type(err) is UpstreamError and err.http_status(False) == 502


# ---------------------------------------------------------------- embeddings


def test_embeddings() -> None:
    req = A.embeddings_request(target("hunyuan-embedding"), {"input": ["a", "b"]})
    assert req.headers["X-TC-Action"] == "GetEmbedding"
    assert orjson.loads(req.body) == {"InputList": ["a", "b"]}
    assert orjson.loads(A.embeddings_request(target(), {"input": "one"}).body) == {"Input": "one"}
    with pytest.raises(InvalidRequest):
        A.embeddings_request(target(), {"input": [[1, 2]]})
    raw = (
        b'{"Response":{"Data":[{"Embedding":[0.5,-0.25],"Index":0,"Object":"embedding"}],'
        b'"Usage":{"PromptTokens":2,"TotalTokens":2},"RequestId":"r"}}'
    )
    obj, usage = A.embeddings_response(target("hunyuan-embedding"), raw)
    assert obj == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "model": "hunyuan-embedding",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert usage is not None and usage.prompt_tokens == 2


@pytest.mark.parametrize(
    ("call", "index"),
    [
        ({"id": "c1", "type": "function", "function": "get_weather"}, 0),  # was a 500
        ({"id": "c1"}, 0),
        ({"id": "c1", "function": {"name": 5, "arguments": "{}"}}, 0),
        (5, 1),
    ],
)
def test_a_malformed_earlier_tool_call_is_the_clients_error(call: Any, index: int) -> None:
    good = {"id": "c0", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    calls = [call] if index == 0 else [good, call]
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ]
    }
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(target(), body, False)
    assert exc.value.param == f"messages[1].tool_calls[{index}]"
    assert "function" in exc.value.message


# ---------------------------------------------------------------- turns and seed


def sent_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = orjson.loads(A.chat_request(target(), {"messages": messages}, False).body)
    out: list[dict[str, Any]] = body["Messages"]
    return out


def test_consecutive_user_and_assistant_messages_are_merged() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert sent_messages(
        [
            {"role": "system", "content": "s1"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "developer", "content": "s2"},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"},
            {"role": "assistant", "content": "let me look"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c1", "content": "r2"},
        ]
    ) == [
        {"Role": "system", "Content": "s1\n\ns2"},
        {"Role": "user", "Content": "a\n\nb"},
        {"Role": "assistant", "Content": "c\n\nd"},
        {"Role": "user", "Content": "e"},
        {
            "Role": "assistant",
            "Content": "let me look",
            "ToolCalls": [
                {"Id": "c1", "Type": "function", "Function": {"Name": "f", "Arguments": "{}"}}
            ],
        },
        {"Role": "tool", "Content": "r1", "ToolCallId": "c1"},  # tool results never merged
        {"Role": "tool", "Content": "r2", "ToolCallId": "c1"},
    ]


def test_merged_user_messages_with_images_keep_every_part_in_order() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
    assert sent_messages(
        [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]},
        ]
    ) == [
        {
            "Role": "user",
            "Contents": [
                {"Type": "text", "Text": "first"},
                {"Type": "image_url", "ImageUrl": {"Url": "https://x/cat.png"}},
                {"Type": "text", "Text": "what is it?"},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("messages", "turn"),
    [
        (
            [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
            "turn 1 (assistant, messages[0])",
        ),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y"},
            ],
            "turn 2 (assistant, messages[2])",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "c", "content": "y"},
            ],
            "turn 2 (tool, messages[1])",
        ),
    ],
)
def test_a_conversation_that_cannot_alternate_is_400_naming_the_turn(
    messages: list[dict[str, Any]], turn: str
) -> None:
    with pytest.raises(InvalidRequest) as exc:
        sent_messages(messages)
    assert exc.value.param == "messages" and exc.value.openai_status == 400
    assert turn in exc.value.message and "alternate" in exc.value.message


def test_two_assistant_tool_call_turns_in_a_row_are_not_merged_but_refused() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with pytest.raises(InvalidRequest) as exc:
        sent_messages(
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
            ]
        )
    assert "turn 3 (assistant, messages[2])" in exc.value.message
    with pytest.raises(InvalidRequest) as exc:
        sent_messages([{"role": "system", "content": "only"}])
    assert exc.value.param == "messages"


def test_seed_is_forwarded_and_checked() -> None:
    def body(seed: Any) -> dict[str, Any]:
        req = A.chat_request(
            target(), {"messages": [{"role": "user", "content": "x"}], "seed": seed}, False
        )
        out: dict[str, Any] = orjson.loads(req.body)
        return out

    assert body(1)["Seed"] == 1 and body(10000)["Seed"] == 10000
    assert "Seed" not in body(None)
    for bad in (0, -3, 10001, 2**40, 1.5, "7", True):
        with pytest.raises(InvalidRequest) as exc:
            body(bad)
        assert exc.value.param == "seed" and exc.value.openai_status == 400
        assert "10000" in exc.value.message
