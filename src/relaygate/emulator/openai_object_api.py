"""Plumbing shared by the OpenAI emulator's object endpoints (see ``openai_objects.py``).

Route registration through ``Provider.api`` and ``Provider.gate`` (multipart uploads read by
the endpoint, part by part), OpenAI error answers, ``metadata`` checks and paged lists.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import BodyPartReader, web

from relaygate.emulator.base import EarlyResponse, Provider
from relaygate.emulator.knobs import Knobs

__all__ = ["DOWNLOAD_CHUNK", "Body", "Form", "ObjectApi", "fraction", "now_ts"]

Body = dict[str, Any]
ObjectOp = Callable[[web.Request, Knobs, Any], Awaitable[web.StreamResponse]]

#: the chunk size of streamed downloads (file and video content) and of upload reads
DOWNLOAD_CHUNK = 16 * 1024
#: the largest upload kept in memory (OpenAI's own limit is 512 MB)
MAX_UPLOAD = 64 * 1024 * 1024


def now_ts() -> int:
    """Unix seconds, as OpenAI's ``created_at`` fields."""
    return int(time.time())


def fraction(t0: float, seconds: float) -> float:
    """How far (0 = just created, >= 1 = done) a timed object created at ``t0`` has come."""
    if seconds <= 0:
        return 1.0
    return (time.monotonic() - t0) / seconds


class _FormRequest:
    """A multipart request as ``Provider.api`` sees it: no body to read.

    ``Provider.api`` reads and parses JSON bodies; an upload is read by the endpoint itself,
    part by part (``request.multipart()``), so the wrapper must not buffer it first.
    """

    can_read_body = False

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    def __getitem__(self, key: Any) -> Any:
        return self._request[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._request[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._request.get(key, default)


@dataclass(slots=True)
class Form:
    """A multipart body: text fields and uploaded files (name -> (filename, bytes))."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


class ObjectApi:
    """Route registration, errors, answers and lists shared by the object endpoint modules."""

    def __init__(self, provider: Provider, app: web.Application, prefixes: Sequence[str]) -> None:
        self.provider = provider
        self.app = app
        self.prefixes = tuple(prefixes)

    # -- routes ---------------------------------------------------------------------------
    def route(self, method: str, path: str, op: ObjectOp, *, form: bool = False) -> None:
        """Serve ``method path`` under every prefix.

        JSON routes pass the gate (with the body's ``model``) before ``op``; ``form`` routes
        accept multipart bodies, read them in ``op`` and call ``gate`` themselves.
        """
        provider = self.provider

        async def gated(request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
            if not form:
                model = body.get("model") if isinstance(body, dict) else None
                await provider.gate(knobs, model if isinstance(model, str) else "")
            return await op(request, knobs, body)

        wrapped = provider.api(gated)
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = wrapped
        if form:

            async def form_handler(request: web.Request) -> web.StreamResponse:
                if request.content_type.startswith("multipart/"):
                    return await wrapped(cast(web.Request, _FormRequest(request)))
                return await wrapped(request)

            handler = form_handler
        for prefix in self.prefixes:
            self.app.router.add_route(method, prefix + path, handler)

    async def gate(self, knobs: Knobs, model: str = "") -> None:
        await self.provider.gate(knobs, model)

    # -- answers --------------------------------------------------------------------------
    async def send(self, request: web.Request, knobs: Knobs, payload: Any) -> web.StreamResponse:
        return await self.provider.send_json(request, knobs, payload)

    @staticmethod
    def error(
        status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> EarlyResponse:
        """OpenAI's error answer, to ``raise``."""
        err = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
        if status >= 500:
            err["type"] = "server_error"
        return EarlyResponse(Provider.json_response({"error": err}, status))

    def missing(self, message: str, param: str | None = None) -> EarlyResponse:
        """404 for an unknown object."""
        return self.error(404, message, param=param)

    def bad(self, message: str, param: str | None = None, code: str | None = None) -> EarlyResponse:
        """400 for a refused request."""
        return self.error(400, message, param=param, code=code)

    def body(self, body: Any) -> Body:
        """The JSON body as an object (an absent body is an empty object)."""
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise self.bad("The request body must be a JSON object.")
        return body

    def required_str(self, body: Body, name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise self.bad(f"Missing required parameter: '{name}'.", param=name)
        return value

    def metadata(self, body: Body, old: Any = None) -> dict[str, str]:
        """``metadata`` checked as OpenAI does: at most 16 string pairs."""
        value = body.get("metadata", old if old is not None else {})
        if value is None:
            return {}
        if (
            not isinstance(value, dict)
            or len(value) > 16
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise self.bad(
                "Invalid 'metadata': expected an object of at most 16 string values.",
                param="metadata",
            )
        return dict(value)

    # -- lists ----------------------------------------------------------------------------
    def page(
        self,
        items: Sequence[Body],
        query: Mapping[str, str],
        *,
        limit: int = 20,
        max_limit: int = 100,
        order: str = "desc",
        ids: bool = True,
    ) -> Body:
        """One page of a list answer; ``items`` oldest first (the order of creation).

        ``limit``/``order``/``after``/``before`` from the query; ``ids`` adds ``first_id`` and
        ``last_id`` (lists that have them).
        """
        size = limit
        if "limit" in query:
            try:
                size = int(query["limit"])
            except ValueError:
                raise self.bad("Invalid 'limit': expected an integer.", param="limit") from None
            if not 1 <= size <= max_limit:
                raise self.bad(
                    f"Invalid 'limit': must be between 1 and {max_limit}.", param="limit"
                )
        direction = query.get("order", order)
        if direction not in ("asc", "desc"):
            raise self.bad("Invalid 'order': expected 'asc' or 'desc'.", param="order")
        seq = list(items) if direction == "asc" else list(reversed(items))
        position = {str(item["id"]): i for i, item in enumerate(seq)}
        after, before = query.get("after"), query.get("before")
        if after:
            seq = seq[position[after] + 1 :] if after in position else []
            data = seq[:size]
        elif before:
            seq = seq[: position[before]] if before in position else []
            data = seq[-size:]
        else:
            data = seq[:size]
        out: Body = {"object": "list", "data": data}
        if ids:
            out["first_id"] = data[0]["id"] if data else None
            out["last_id"] = data[-1]["id"] if data else None
        out["has_more"] = len(seq) > len(data)
        return out

    async def read_form(self, request: web.Request) -> Form:
        """The multipart body, read part by part (a file in ``DOWNLOAD_CHUNK`` reads)."""
        form = Form()
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or not part.name:
                    continue
                if part.filename is None:
                    form.fields[part.name] = await part.text()
                    continue
                buf = bytearray()
                while chunk := await part.read_chunk(DOWNLOAD_CHUNK):
                    buf += chunk
                    if len(buf) > MAX_UPLOAD:
                        raise self.error(413, f"File is larger than {MAX_UPLOAD} bytes.")
                form.files[part.name] = (part.filename, bytes(buf))
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise self.bad(f"Could not parse the multipart form: {exc}") from None
        return form

    async def send_bytes(
        self,
        request: web.Request,
        knobs: Knobs,
        data: bytes,
        content_type: str,
        filename: str | None = None,
    ) -> web.StreamResponse:
        """A download streamed in ``DOWNLOAD_CHUNK`` writes (chunked, no Content-Length)."""
        await self.provider.delay(knobs, first_token=True)
        headers = {"Content-Type": content_type}
        if filename:
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        resp = web.StreamResponse(headers=headers)
        try:
            await resp.prepare(request)
            for start in range(0, len(data), DOWNLOAD_CHUNK):
                await resp.write(data[start : start + DOWNLOAD_CHUNK])
            await resp.write_eof()
        except ConnectionResetError:
            self.provider._lost(None)
        return resp

    @staticmethod
    def deleted(oid: str, kind: str) -> Body:
        return {"id": oid, "object": kind, "deleted": True}
