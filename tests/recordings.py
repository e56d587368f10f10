"""Load recorded provider traffic (go-vcr v2 cassettes) for replay tests.

The cassettes live in ``tests/fixtures/provider-recordings`` (see SOURCE.md there);
``RELAYGATE_RECORDINGS`` names another folder. Tests should skip when
:func:`recordings_dir` returns ``None``.

    for it in load_cassette(recordings_dir() / "TestOpenAICommon/gpt-4o/simple.yaml"):
        it.request_json(), it.response_status, it.is_stream, it.response_body

Streamed bodies are kept as received; decode them with ``relaygate.relay.sse.SSEDecoder``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml  # type: ignore[import-untyped]

__all__ = ["Interaction", "load_cassette", "recordings_dir"]

_CANDIDATES = (Path(__file__).resolve().parent / "fixtures" / "provider-recordings",)


def recordings_dir() -> Path | None:
    env = os.environ.get("RELAYGATE_RECORDINGS")
    for candidate in (Path(env),) if env else _CANDIDATES:
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class Interaction:
    """One recorded request/response pair. Header names are lower-cased, values joined."""

    request_method: str
    request_url: str
    request_headers: dict[str, str]
    request_body: bytes
    response_status: int
    response_headers: dict[str, str]
    response_body: bytes

    def request_json(self) -> Any:
        return orjson.loads(self.request_body)

    def response_json(self) -> Any:
        return orjson.loads(self.response_body)

    @property
    def is_stream(self) -> bool:
        return "text/event-stream" in self.response_headers.get("content-type", "")


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            values = value if isinstance(value, list) else [value]
            out[str(name).lower()] = ", ".join(str(v) for v in values)
    return out


def _body(raw: Any) -> bytes:
    if raw is None:
        return b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _status(response: dict[str, Any]) -> int:
    code = response.get("code")
    if isinstance(code, int):
        return code
    status = str(response.get("status") or "0")
    return int(status.split()[0])


def load_cassette(path: str | Path) -> list[Interaction]:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    out: list[Interaction] = []
    for item in doc.get("interactions") or []:
        request, response = item["request"], item["response"]
        out.append(
            Interaction(
                request_method=str(request.get("method") or "POST"),
                request_url=str(request.get("url") or ""),
                request_headers=_headers(request.get("headers")),
                request_body=_body(request.get("body")),
                response_status=_status(response),
                response_headers=_headers(response.get("headers")),
                response_body=_body(response.get("body")),
            )
        )
    return out
