"""Gemini-format inbound (issue 14): ``POST /v1beta/models/{model}:{verb}`` and
``/v1/models/{model}:{verb}`` for the Google Gen AI SDK, Gemini CLI and the like.

``generateContent`` and ``streamGenerateContent`` are translated to chat completions
(``inbound/gemini_request.py``) and run through the ordinary chat relay, so routing,
billing, limits and filters apply unchanged; a :class:`GeminiPresenter` writes the answer
back as a ``GenerateContentResponse`` (``inbound/gemini_response.py``), the stream as SSE
frames with ``?alt=sse`` or else as a JSON array (``inbound/gemini_stream.py``), and every
error in Google's shape. ``countTokens`` is counted locally. ``topK`` goes to the channels
that take ``top_k`` (:func:`takes_top_k`) and is dropped for the others; built-in tools
are refused (``inbound/gemini_request.py``); whole answers and errors carry the
``code``/``msg`` envelope when ``RELAYGATE_ENVELOPE_FORMATS`` names ``gemini``.

The key may come as ``x-goog-api-key`` or ``?key=`` (Google's ways) besides the usual
headers: it is moved into ``x-api-key`` for ``pipeline.extract_key``, never logged (the
access log carries the path without its query).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from relaygate.asgi import JSON_CT, Request, Send, send_json
from relaygate.billing.tokens import count_prompt
from relaygate.context import RelayContext
from relaygate.errors import NotFound, NotImplementedByProvider, RelayError, send_error
from relaygate.inbound.gemini_request import chat_body, count_request
from relaygate.inbound.gemini_response import error_body, response_body
from relaygate.inbound.gemini_stream import GeminiStream
from relaygate.providers.base import Adaptor, Target
from relaygate.relay.attempt import Call
from relaygate.relay.chat import chat_attempt, take_chat_body
from relaygate.relay.envelope import envelope_on, enveloped, wrap_ok
from relaygate.relay.pipeline import authenticate, internal_error, parse_json_body, relay_request
from relaygate.relay.present import ERROR_RENDER, PRESENTER
from relaygate.relay.stream import SSEWriter, TranslatingWriter
from relaygate.state import AppState

__all__ = ["GeminiPresenter", "GeminiWriter", "handle_gemini", "takes_top_k"]

GENERATE = "generateContent"
STREAM = "streamGenerateContent"
COUNT = "countTokens"
#: Gemini methods this gateway does not serve in Gemini's format (yet)
UNSERVED = frozenset({"embedContent", "batchEmbedContents", "batchGenerateContent"})

_KEY_HEADERS = (b"authorization", b"api-key", b"x-api-key")
#: the client format's name in RELAYGATE_ENVELOPE_FORMATS
FORMAT = "gemini"
#: adaptors that map ``top_k`` to their own field
TOP_K_PROVIDERS = frozenset({"anthropic", "gemini", "spark_ws"})
#: OpenAI-compatible profiles whose servers take ``top_k`` (vLLM, SGLang, llama.cpp, …)
TOP_K_PROFILES = frozenset({"generic", "llamacpp", "ollama", "openrouter", "qwen"})


class GeminiPresenter:
    """Writes chat-completion answers as Gemini ones (``relay/present.py``); ``envelope``:
    with the ``code``/``msg`` envelope (``RELAYGATE_ENVELOPE_FORMATS`` names ``gemini``)."""

    def __init__(self, *, sse: bool, envelope: bool = False) -> None:
        self.sse = sse
        self.envelope = envelope

    def unary(self, ctx: RelayContext, obj: dict[str, Any]) -> bytes:
        return wrap_ok(response_body(obj), self.envelope)

    def writer(self, send: Send, ctx: RelayContext, request_id: str, keepalive: float) -> SSEWriter:
        stream = GeminiStream(sse=self.sse)
        out = GeminiWriter(send, ctx, request_id, keepalive, stream.feed, stream.finish)
        if not self.sse:  # a JSON array written piece by piece
            out._headers = [JSON_CT, (b"x-request-id", request_id.encode())]
        return out


class GeminiWriter(TranslatingWriter):
    """Keep-alives as blank lines: Google's SDK reads every SSE line that is not
    ``data:`` as JSON (an SSE comment breaks it), and whitespace is also what may stand
    between the items of a JSON array."""

    __slots__ = ()

    async def _keepalive(self) -> None:
        try:
            if not self.closed:
                self._last = self._loop.time()
                await self._send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
        except Exception:  # the client is gone: the relay notices on its own
            self.stop_keepalive()
        finally:
            self._sending = None


def _query(req: Request) -> dict[str, list[str]]:
    raw = req.scope.get("query_string", b"")
    return parse_qs(raw.decode("latin-1")) if raw else {}


def _take_google_key(req: Request, query: dict[str, list[str]]) -> None:
    """``x-goog-api-key`` or ``?key=`` as ``x-api-key`` (where no other key header is)."""
    if any(name in req.headers for name in _KEY_HEADERS):
        return
    key = req.headers.get(b"x-goog-api-key")
    if key is None and query.get("key"):
        key = query["key"][0].encode("latin-1")
    if key is not None:
        req.headers[b"x-api-key"] = key


async def handle_gemini(state: AppState, req: Request, model: str, method: str) -> None:
    query = _query(req)
    _take_google_key(req, query)
    if method in (GENERATE, STREAM):
        await _generate(state, req, model, stream=method == STREAM, query=query)
    elif method == COUNT:
        await _count_tokens(state, req, model)
    elif method in UNSERVED:
        await _error(
            state, req, NotImplementedByProvider(f"`{method}` is not served in Gemini's format.")
        )
    else:
        await _error(state, req, NotFound(f"Unknown method `{method}` on models/{model}."))


def takes_top_k(target: Target) -> bool:
    """Whether the channel of ``target`` takes ``top_k`` (Gemini's ``topK``): the native
    adaptors that map it, and the OpenAI-compatible servers known to accept it. Official
    OpenAI, Azure and the other vendors refuse or ignore unknown fields: it is dropped."""
    if target.provider in TOP_K_PROVIDERS:
        return True
    return target.provider == "openai_compat" and target.profile in TOP_K_PROFILES


async def _generate(
    state: AppState, req: Request, model: str, *, stream: bool, query: dict[str, list[str]]
) -> None:
    """``generateContent`` / ``streamGenerateContent``: through the chat relay."""
    on = envelope_on(state.settings, FORMAT)
    presenter = GeminiPresenter(sse=query.get("alt", [""])[0] == "sse", envelope=on)
    ctx = RelayContext(req.request_id, "chat", client_ip=req.client_ip)
    ctx.put(PRESENTER, presenter)
    ctx.put(ERROR_RENDER, enveloped(error_body, on))

    async def parse(st: AppState, r: Request) -> dict[str, Any]:
        return chat_body(model, await parse_json_body(st, r), stream=stream)

    def make_call(body: dict[str, Any]) -> Call:
        plain = {k: v for k, v in body.items() if k != "top_k"}

        async def call(adaptor: Adaptor, target: Target) -> None:
            chosen = body if takes_top_k(target) else plain
            await chat_attempt(state, req, ctx, adaptor, target, chosen)

        return call

    await relay_request(state, req, ctx, take_chat_body, make_call, parse=parse)


async def _count_tokens(state: AppState, req: Request, model: str) -> None:
    """``countTokens``: the prompt counted here (as the chat relay counts a prompt that
    came without usage); nothing goes upstream and nothing is billed."""
    ctx = RelayContext(req.request_id, "count_tokens", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        body = await parse_json_body(state, req)
        total = count_prompt(count_request(model, body))
    except RelayError as err:
        await _error(state, req, err)
        return
    except Exception as exc:  # an unexpected failure: logged, answered as a 500
        await _error(state, req, internal_error(ctx, exc))
        return
    out = wrap_ok({"totalTokens": total}, envelope_on(state.settings, FORMAT))
    await send_json(req.send, 200, out, req.request_id)


async def _error(state: AppState, req: Request, err: RelayError) -> None:
    s = state.settings
    await send_error(
        req.send,
        err,
        req.request_id,
        envelope=s.envelope,
        openai_statuses=s.openai_status_codes,
        render=enveloped(error_body, envelope_on(s, FORMAT)),
    )
