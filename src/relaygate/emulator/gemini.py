"""Google Gemini emulator: the Generative Language API, Vertex AI and Claude on Vertex.

Routes (wire format as recorded in ``tests/fixtures/provider-recordings/TestGoogleCommon``):

* ``POST /v1beta/models/{model}:generateContent`` | ``:streamGenerateContent?alt=sse`` |
  ``:batchEmbedContents``, ``GET /v1beta/models`` — API key in ``x-goog-api-key`` or
  ``?key=``; a wrong key is Google's 400 ``INVALID_ARGUMENT`` with reason
  ``API_KEY_INVALID``, no key 403 ``PERMISSION_DENIED``;
* ``POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:…``
  (also ``:predict`` for embeddings) and ``…/publishers/anthropic/models/{model}:rawPredict``
  | ``:streamRawPredict`` (answered by the Anthropic emulator's logic) —
  ``Authorization: Bearer`` with a token issued by ``/token`` (or ``Knobs.api_key``);
* ``POST /token`` — the OAuth JWT-bearer grant: the RS256 assertion is verified with
  the public key registered by :meth:`GeminiEmulator.trust` for its ``iss``;
  ``token_exchanges`` counts the tokens issued.

Behaviour: streams are ``data: {…}\\r\\n\\r\\n`` without ``[DONE]``, usage cumulative on
every chunk; several function calls in one turn (one per declared function), the
first with a ``thoughtSignature`` that ``gemini-3*`` models require back on the next
turn; thought parts and ``thoughtsTokenCount`` with ``thinkingConfig``; JSON mode;
a prompt containing ``BLOCK_PROMPT`` is blocked (``promptFeedback``), one containing
``BLOCK_OUTPUT`` ends with ``finishReason: SAFETY``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relaygate.emulator.anthropic import AnthropicEmulator
from relaygate.emulator.base import (
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    embedding_vector,
    sample_arguments,
    split_text,
)
from relaygate.emulator.knobs import Knobs

__all__ = ["GeminiEmulator"]

_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_SIGNATURE = "RW11bGF0ZWQgR2VtaW5pIHRob3VnaHQgc2lnbmF0dXJl"
_CHAT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview")
_EMBED_MODELS = ("text-embedding-004", "gemini-embedding-001")
_SEP = b"\r\n\r\n"


def _dumps(obj: Any) -> bytes:
    # Google's SSE payloads separate keys and values with ": " (as recorded)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": ")).encode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _lower_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_schema(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_schema(v) for v in schema]
    return schema


def _text_of(contents: Any) -> str:
    out: list[str] = []
    for content in contents if isinstance(contents, list) else ():
        for part in content.get("parts") or () if isinstance(content, dict) else ():
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif isinstance(part.get("functionResponse"), dict):
                    out.append(json.dumps(part["functionResponse"].get("response")))
                elif isinstance(part.get("functionCall"), dict):
                    out.append(json.dumps(part["functionCall"].get("args")))
    return "".join(out)


class GeminiEmulator(Provider):
    name: ClassVar[str] = "gemini"
    base_path: ClassVar[str] = ""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.claude = AnthropicEmulator(core)  # Claude on Vertex, by composition
        self.trusted: dict[str, rsa.RSAPublicKey] = {}  # client_email → public key
        self.tokens: set[str] = set()
        self.token_exchanges = 0

    def trust(self, client_email: str, public_key_pem: bytes) -> None:
        """Accept JWT assertions of ``client_email`` signed by this key at ``/token``."""
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("an RSA public key is needed")
        self.trusted[client_email] = key

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call:[^/]+}", self.api(self.call))
        app.router.add_get("/v1beta/models", self.api(self.models))
        app.router.add_post(
            "/{version:v1|v1beta1}/projects/{project}/locations/{location}/publishers/"
            "{publisher}/models/{call:[^/]+}",
            self.api(self.call),
        )
        app.router.add_post("/token", self.api(self.token, checks=False))

    # -- errors / auth --------------------------------------------------------------------
    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        reason: str | None = None,
    ) -> web.Response:
        kind, default = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
        err: dict[str, Any] = {"code": status, "message": message or default, "status": kind}
        if reason:
            err["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        return self.json_response({"error": err}, status)

    def invalid_json(self) -> web.Response:
        return self.error(400, "Invalid JSON payload received.")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404, f"The requested URL {request.path} was not found on this server.")

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        if request.path.startswith("/v1beta/models"):
            key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
            if not key:
                raise EarlyResponse(
                    self.error(
                        403,
                        "Method doesn't allow unregistered callers (callers without "
                        "established identity). Please use API Key or other form of API "
                        "consumer identity to call this API.",
                    )
                )
            if knobs.api_key is not None and key != knobs.api_key:
                raise EarlyResponse(
                    self.error(
                        400,
                        "API key not valid. Please pass a valid API key.",
                        reason="API_KEY_INVALID",
                    )
                )
            return
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if token and (
            token in self.tokens
            or (knobs.api_key is None and not self.trusted)
            or token == knobs.api_key
        ):
            return
        raise EarlyResponse(
            self.error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        )

    # -- token endpoint -------------------------------------------------------------------
    async def token(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        form = await request.post()

        def refuse(desc: str) -> web.Response:
            return self.json_response({"error": "invalid_grant", "error_description": desc}, 400)

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.json_response({"error": "unsupported_grant_type"}, 400)
        assertion = form.get("assertion")
        parts = assertion.split(".") if isinstance(assertion, str) else []
        if len(parts) != 3:
            return refuse("Invalid JWT.")
        try:
            header = orjson.loads(_b64url_decode(parts[0]))
            claims = orjson.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return refuse("Invalid JWT.")
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return refuse("Invalid JWT: the algorithm must be RS256.")
        iss = claims.get("iss") if isinstance(claims, dict) else None
        key = self.trusted.get(iss) if isinstance(iss, str) else None
        if key is None:
            return refuse("Invalid JWT Signature.")
        try:
            key.verify(
                signature,
                (parts[0] + "." + parts[1]).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return refuse("Invalid JWT Signature.")
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int) or exp < now or iat > now + 300:
            return refuse(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        if not str(claims.get("aud", "")).endswith("/token"):
            return refuse("Invalid JWT: the audience must be the token URI.")
        if "cloud-platform" not in str(claims.get("scope", "")):
            return self.json_response({"error": "invalid_scope"}, 400)
        token = "ya29.emu-" + os.urandom(12).hex()
        self.tokens.add(token)
        self.token_exchanges += 1
        return self.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    # -- dispatch -------------------------------------------------------------------------
    async def call(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        model, _, method = request.match_info["call"].rpartition(":")
        publisher = request.match_info.get("publisher", "google")
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "Invalid JSON payload received."))
        if publisher == "anthropic" and method in ("rawPredict", "streamRawPredict"):
            return await self._claude(request, knobs, body, model, method)
        if publisher != "google":
            raise EarlyResponse(self.error(404, f"Publisher model {model} not found."))
        if method == "generateContent":
            return await self.generate(request, knobs, body, model, stream=False)
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                raise EarlyResponse(self.error(400, "This emulator streams only with alt=sse."))
            return await self.generate(request, knobs, body, model, stream=True)
        if method in ("batchEmbedContents", "predict"):
            return await self.embed(request, knobs, body, model, method)
        raise EarlyResponse(self.error(404, f"Method {method} not found."))

    async def _claude(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        if body.get("anthropic_version") != "vertex-2023-10-16":
            raise EarlyResponse(self.error(400, "anthropic_version: vertex-2023-10-16 required"))
        if "model" in body:
            raise EarlyResponse(self.error(400, "model: Extra inputs are not permitted"))
        stream = method == "streamRawPredict"
        if stream != (body.get("stream") is True):
            raise EarlyResponse(self.error(400, "stream must match the method"))
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        inner["model"] = model
        return await self.claude.messages(request, knobs, inner)

    # -- generateContent ------------------------------------------------------------------
    def _check_signatures(self, body: dict[str, Any], model: str) -> None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise EarlyResponse(
                self.error(400, "* GenerateContentRequest.contents: contents is not specified")
            )
        for i, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise EarlyResponse(
                    self.error(
                        400,
                        f"* GenerateContentRequest.contents[{i}].parts: contents.parts must "
                        "not be empty.",
                    )
                )
            first_call = True
            for part in parts:
                if not isinstance(part, dict) or "functionCall" not in part:
                    continue
                sig = part.get("thoughtSignature")
                if sig is not None and sig != _SIGNATURE:
                    raise EarlyResponse(self.error(400, "Corrupted thought signature."))
                if first_call and model.startswith("gemini-3") and sig is None:
                    name = part["functionCall"].get("name")
                    raise EarlyResponse(
                        self.error(
                            400,
                            f"Function call `{name}` in the {i + 1}. content block is missing "
                            "a `thought_signature`. Learn more: "
                            "https://ai.google.dev/gemini-api/docs/thought-signatures",
                        )
                    )
                first_call = False

    def _compose(self, body: dict[str, Any], knobs: Knobs, model: str) -> dict[str, Any]:
        """The whole (non-stream) answer: parts, finish reason, usage."""
        contents = body["contents"]
        prompt_text = _text_of(contents) + _text_of([body.get("systemInstruction") or {}])
        prompt = max(1, count_tokens(prompt_text) + 3 * len(contents))
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        thinking = config.get("thinkingConfig")
        thinking = thinking if isinstance(thinking, dict) else {}
        thinks = bool(thinking) and thinking.get("thinkingBudget") != 0
        last = contents[-1] if isinstance(contents[-1], dict) else {}
        last_parts = [p for p in last.get("parts") or () if isinstance(p, dict)]
        responses = [p["functionResponse"] for p in last_parts if "functionResponse" in p]
        declared: list[dict[str, Any]] = []
        for tool in body.get("tools") or ():
            if isinstance(tool, dict):
                declared += [
                    d for d in tool.get("functionDeclarations") or () if isinstance(d, dict)
                ]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = calling.get("mode", "AUTO")
        allowed = calling.get("allowedFunctionNames")
        if allowed:
            declared = [d for d in declared if d.get("name") in allowed]
        last_text = _text_of([last])

        parts: list[dict[str, Any]] = []
        finish, text = "STOP", ""
        if thinks and thinking.get("includeThoughts"):
            parts.append({"text": knobs.reasoning, "thought": True})
        if "BLOCK_OUTPUT" in last_text:
            finish = "SAFETY"
        elif responses:
            text = "The tool returned: " + "; ".join(
                json.dumps(r.get("response"), sort_keys=True) for r in responses
            )
        elif declared and mode != "NONE":
            for k, decl in enumerate(declared):
                call: dict[str, Any] = {
                    "name": decl.get("name"),
                    "args": sample_arguments(_lower_schema(decl.get("parameters"))),
                }
                part: dict[str, Any] = {"functionCall": call}
                if k == 0:
                    part["thoughtSignature"] = _SIGNATURE
                parts.append(part)
        elif config.get("responseMimeType") == "application/json":
            schema = config.get("responseSchema")
            text = json.dumps(
                sample_arguments(_lower_schema(schema)) if schema else {"reply": knobs.reply}
            )
        else:
            text = knobs.reply
        stops = config.get("stopSequences")
        for stop in stops if isinstance(stops, list) else ():
            if isinstance(stop, str) and stop and stop in text:
                text = text[: text.index(stop)]
        limit = config.get("maxOutputTokens")
        if isinstance(limit, int) and count_tokens(text) > limit:
            text, finish = text[: limit * 4], "MAX_TOKENS"
        if text:
            parts.append({"text": text})
        calls = [p for p in parts if "functionCall" in p]
        candidates_tokens = count_tokens(text) + sum(
            10 + count_tokens(json.dumps(p["functionCall"]["args"])) for p in calls
        )
        thoughts = count_tokens(knobs.reasoning) if thinks else 0
        return {
            "parts": parts,
            "text": text,
            "calls": calls,
            "finish": finish,
            "prompt": prompt,
            "candidates": max(candidates_tokens, 0),
            "thoughts": thoughts,
            "n": config.get("candidateCount")
            if isinstance(config.get("candidateCount"), int)
            else 1,
        }

    @staticmethod
    def _usage(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    async def generate(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any], model: str, *, stream: bool
    ) -> web.StreamResponse:
        self._check_signatures(body, model)
        trigger = await self.gate(knobs, model)
        rid = self.core.ids("rsp")
        if "BLOCK_PROMPT" in _text_of(body["contents"]):
            blocked = {
                "promptFeedback": {
                    "blockReason": "SAFETY",
                    "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                    ],
                },
                "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
                "modelVersion": model,
                "responseId": rid,
            }
            if stream:
                plan = StreamPlan(b"", [], b"data: " + _dumps(blocked) + _SEP, self._midstream())
                return await self.send_stream(request, knobs, plan, trigger)
            return await self.send_json(request, knobs, blocked)
        reply = self._compose(body, knobs, model)
        if stream:
            return await self.send_stream(
                request, knobs, self._plan(reply, knobs, model, rid), trigger
            )
        n = max(1, reply["n"])
        candidates = []
        for k in range(n):
            cand: dict[str, Any] = {
                "content": {"parts": reply["parts"], "role": "model"},
                "finishReason": reply["finish"],
                "index": k,
            }
            if reply["calls"]:
                cand["finishMessage"] = "Model generated function call(s)."
            if reply["finish"] == "SAFETY":
                cand.pop("content")
                cand["safetyRatings"] = [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
                ]
            candidates.append(cand)
        payload = {
            "candidates": candidates,
            "usageMetadata": self._usage(
                reply["prompt"], reply["candidates"] * n, reply["thoughts"]
            ),
            "modelVersion": model,
            "responseId": rid,
        }
        return await self.send_json(request, knobs, payload)

    @staticmethod
    def _midstream() -> bytes:
        err = {
            "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        }
        return b"data: " + _dumps(err) + _SEP

    def _plan(self, reply: dict[str, Any], knobs: Knobs, model: str, rid: str) -> StreamPlan:
        thoughts = reply["thoughts"]
        pieces = split_text(reply["text"], knobs.chunks) if reply["text"] else ()
        thought_parts = [p for p in reply["parts"] if p.get("thought")]
        chunks: list[bytes] = []
        sent = ""

        def event(parts: list[dict[str, Any]], finish: str | None, text_so_far: str) -> bytes:
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                cand["finishReason"] = finish
                if reply["calls"]:
                    cand["finishMessage"] = "Model generated function call(s)."
            obj = {
                "candidates": [cand],
                "usageMetadata": self._usage(
                    reply["prompt"],
                    count_tokens(text_so_far) if not finish else reply["candidates"],
                    thoughts,
                ),
                "modelVersion": model,
                "responseId": rid,
            }
            return b"data: " + _dumps(obj) + _SEP

        if thought_parts:
            chunks.append(event(thought_parts, None, ""))
        for piece in pieces[:-1] if pieces else ():
            sent += piece
            chunks.append(event([{"text": piece}], None, sent))
        final: list[dict[str, Any]] = []
        if pieces:
            final.append({"text": pieces[-1]})
        final += reply["calls"]
        if reply["finish"] == "SAFETY":
            obj = {
                "candidates": [
                    {
                        "finishReason": "SAFETY",
                        "index": 0,
                        "safetyRatings": [
                            {
                                "category": "HARM_CATEGORY_HARASSMENT",
                                "probability": "HIGH",
                                "blocked": True,
                            }
                        ],
                    }
                ],
                "usageMetadata": self._usage(reply["prompt"], 0, thoughts),
                "modelVersion": model,
                "responseId": rid,
            }
            tail = b"data: " + _dumps(obj) + _SEP
        else:
            tail = event(final, reply["finish"], reply["text"])
        return StreamPlan(b"", chunks, tail, self._midstream())

    # -- embeddings, models ---------------------------------------------------------------
    async def embed(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        await self.gate(knobs, model)
        if method == "predict":
            instances = body.get("instances")
            if not isinstance(instances, list) or not instances:
                raise EarlyResponse(self.error(400, "instances must not be empty"))
            params = body.get("parameters") or {}
            dim = params.get("outputDimensionality") or knobs.embedding_dim
            preds = []
            for inst in instances:
                text = inst.get("content", "") if isinstance(inst, dict) else ""
                preds.append(
                    {
                        "embeddings": {
                            "values": embedding_vector(text, dim),
                            "statistics": {"token_count": count_tokens(text), "truncated": False},
                        }
                    }
                )
            return await self.send_json(request, knobs, {"predictions": preds})
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise EarlyResponse(
                self.error(400, "* BatchEmbedContentsRequest.requests: requests is empty")
            )
        out = []
        for i, item in enumerate(requests):
            if not isinstance(item, dict) or item.get("model") != f"models/{model}":
                raise EarlyResponse(
                    self.error(
                        400,
                        f"Model names should match across requests (requests[{i}].model).",
                    )
                )
            text = _text_of([item.get("content") or {}])
            dim = item.get("outputDimensionality") or knobs.embedding_dim
            out.append({"values": embedding_vector(text, dim)})
        return await self.send_json(request, knobs, {"embeddings": out})

    async def models(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        models = [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in _CHAT_MODELS
        ] + [
            {
                "name": f"models/{m}",
                "version": "004",
                "displayName": m,
                "supportedGenerationMethods": ["embedContent"],
            }
            for m in _EMBED_MODELS
        ]
        return self.json_response({"models": models})
