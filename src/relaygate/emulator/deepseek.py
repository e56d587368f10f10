"""DeepSeek emulator: the OpenAI chat dialect with DeepSeek errors, usage and reasoning."""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from relaygate.emulator.openai import OpenAIEmulator, _Answer

__all__ = ["DeepSeekEmulator"]


class DeepSeekEmulator(OpenAIEmulator):
    name: ClassVar[str] = "deepseek"
    prefixes: ClassVar[tuple[str, ...]] = ("/v1", "")
    has_embeddings: ClassVar[bool] = False
    keepalive_default: ClassVar[bool] = True
    owned_by: ClassVar[str] = "deepseek"
    model_ids: ClassVar[tuple[str, ...]] = ("deepseek-chat", "deepseek-reasoner")
    obfuscation: ClassVar[bool] = False

    _ERRORS: ClassVar[dict[int, tuple[str, str, str | None]]] = {
        400: ("invalid_request_error", "Invalid Format", "invalid_request_error"),
        401: (
            "authentication_error",
            "Authentication Fails, Your api key is invalid",
            "invalid_request_error",
        ),
        402: ("unknown_error", "Insufficient Balance", "invalid_request_error"),
        404: ("invalid_request_error", "Not Found", "invalid_request_error"),
        422: ("invalid_request_error", "Invalid Parameters", "invalid_request_error"),
        429: ("rate_limit_error", "Rate Limit Reached", "rate_limit_error"),
        500: ("api_error", "Server Error", "internal_server_error"),
        503: ("api_error", "Server Overloaded", "service_unavailable"),
    }

    def auth_error(self, missing: bool) -> web.Response:
        if missing:
            return self.error(
                401, "Authentication Fails, no api key provided (Authorization: Bearer <key>)"
            )
        return self.error(401)

    def _reasons(self, model: str) -> bool:
        return "reasoner" in model

    def usage(self, ans: _Answer) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": ans.prompt_tokens,
            "completion_tokens": ans.completion_tokens,
            "total_tokens": ans.prompt_tokens + ans.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if ans.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": ans.reasoning_tokens}
        out["prompt_cache_hit_tokens"] = 0
        out["prompt_cache_miss_tokens"] = ans.prompt_tokens
        return out

    def decorate_message(self, msg: dict[str, Any]) -> None:
        """DeepSeek messages carry no OpenAI ``refusal``/``annotations`` fields: add nothing."""

    def decorate_completion(self, obj: dict[str, Any], choice: dict[str, Any]) -> None:
        obj["system_fingerprint"] = "fp_emulator"

    def chunk_base(self, cid: str, created: int, model: str) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_emulator",
        }

    def first_delta(self, ans: _Answer) -> dict[str, Any]:
        if ans.reasoning:
            return {"role": "assistant", "content": None, "reasoning_content": ""}
        if ans.tool_name:
            return {"role": "assistant", "content": None, **self.tool_header(ans)}
        return {"role": "assistant", "content": ""}
