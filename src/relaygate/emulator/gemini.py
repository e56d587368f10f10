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

Where things are: request checks in ``emulator/gemini_request.py``, answer composition
and the stream plan in ``emulator/gemini_answer.py``, the ``/token`` grant in
``emulator/gemini_oauth.py``; this module holds the routes, auth and errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from relaygate.emulator.anthropic import AnthropicEmulator
from relaygate.emulator.base import (
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    embedding_vector,
)
from relaygate.emulator.gemini_answer import (
    answer_payload,
    blocked_payload,
    compose,
    event,
    midstream,
    stream_plan,
)
from relaygate.emulator.gemini_oauth import TokenIssuer
from relaygate.emulator.gemini_request import claude_problem, contents_problem, text_of
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
_CHAT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview")
_EMBED_MODELS = ("text-embedding-004", "gemini-embedding-001")


class GeminiEmulator(Provider):
    name: ClassVar[str] = "gemini"
    base_path: ClassVar[str] = ""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.claude = AnthropicEmulator(core)  # Claude on Vertex, by composition
        self.issuer = TokenIssuer()  # the /token grant and the tokens it issued

    @property
    def token_exchanges(self) -> int:
        """How many tokens ``/token`` issued."""
        return self.issuer.exchanges

    def trust(self, client_email: str, public_key_pem: bytes) -> None:
        """Accept JWT assertions of ``client_email`` signed by this key at ``/token``."""
        self.issuer.trust(client_email, public_key_pem)

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
        if self.issuer.accepts(token, knobs.api_key):
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
        payload, status = self.issuer.exchange(await request.post())
        return self.json_response(payload, status)

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
        problem = claude_problem(body, method)
        if problem is not None:
            raise EarlyResponse(self.error(400, problem))
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        inner["model"] = model
        return await self.claude.messages(request, knobs, inner)

    # -- generateContent ------------------------------------------------------------------
    async def generate(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any], model: str, *, stream: bool
    ) -> web.StreamResponse:
        problem = contents_problem(body, model)
        if problem is not None:
            raise EarlyResponse(self.error(400, problem))
        trigger = await self.gate(knobs, model)
        rid = self.core.ids("rsp")
        if "BLOCK_PROMPT" in text_of(body["contents"]):
            blocked = blocked_payload(model, rid)
            if stream:
                plan = StreamPlan(b"", [], event(blocked), midstream())
                return await self.send_stream(request, knobs, plan, trigger)
            return await self.send_json(request, knobs, blocked)
        reply = compose(body, knobs, model)
        if stream:
            return await self.send_stream(
                request, knobs, stream_plan(reply, knobs, model, rid), trigger
            )
        return await self.send_json(request, knobs, answer_payload(reply, model, rid))

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
            text = text_of([item.get("content") or {}])
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
