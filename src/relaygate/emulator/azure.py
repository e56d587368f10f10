"""Azure OpenAI emulator: deployment routes, api-key auth, Azure errors and content filters."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import EarlyResponse
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai import OpenAIEmulator

__all__ = ["AzureEmulator"]

_SAFE = {"filtered": False, "severity": "safe"}
_NOT_DETECTED = {"detected": False, "filtered": False}
PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": _SAFE,
            "jailbreak": _NOT_DETECTED,
            "self_harm": _SAFE,
            "sexual": _SAFE,
            "violence": _SAFE,
        },
    }
]
CHOICE_FILTER_RESULTS = {
    "hate": _SAFE,
    "protected_material_code": _NOT_DETECTED,
    "protected_material_text": _NOT_DETECTED,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}
_AZURE_FILTER_CHUNK = (
    b"data: "
    + orjson.dumps(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTER_RESULTS,
        }
    )
    + b"\n\n"
)


class AzureEmulator(OpenAIEmulator):
    name: ClassVar[str] = "azure"
    base_path: ClassVar[str] = ""
    choice_extra: ClassVar[dict[str, Any]] = {"content_filter_results": {}}
    owned_by: ClassVar[str] = "system"

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("/openai/deployments/{deployment}", "/openai/v1"):
            app.router.add_post(f"{prefix}/chat/completions", self.api(self.chat))
            app.router.add_post(f"{prefix}/embeddings", self.api(self.embeddings))
        app.router.add_get("/openai/v1/models", self.api(self.models))
        app.router.add_get("/openai/models", self.api(self.models))

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        if status == 401:
            msg = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource."
            )
            return self.json_response({"error": {"code": "401", "message": message or msg}}, 401)
        if status == 404:
            return self.json_response(
                {"error": {"code": "404", "message": message or "Resource not found"}}, 404
            )
        if status == 429:
            msg = (
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                "version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 "
                "pricing tier. Please retry after 1 second."
            )
            return self.json_response({"error": {"code": "429", "message": message or msg}}, 429)
        return super().error(status, message, param=param)

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404)

    def auth_error(self, missing: bool) -> web.Response:
        return self.error(401)

    def _key_from(self, request: web.Request) -> str:
        return request.headers.get("api-key", "") or super()._key_from(request)

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if "deployment" in request.match_info and not request.query.get("api-version"):
            raise EarlyResponse(self.error(404))
        super().check_request(request, knobs)

    def request_model(self, request: web.Request, body: dict[str, Any]) -> str:
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
        deployment = request.match_info.get("deployment")
        if deployment:
            return deployment
        return super().request_model(request, body)

    def decorate_completion(self, obj: dict[str, Any], choice: dict[str, Any]) -> None:
        tool_call = "tool_calls" in choice["message"]
        choice["content_filter_results"] = {} if tool_call else CHOICE_FILTER_RESULTS
        obj["prompt_filter_results"] = PROMPT_FILTER_RESULTS
        obj["service_tier"] = "default"
        obj["system_fingerprint"] = None

    def chunk_base(self, cid: str, created: int, model: str) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": None,
        }

    def stream_head(self) -> bytes:
        return _AZURE_FILTER_CHUNK
