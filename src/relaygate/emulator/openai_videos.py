"""The OpenAI emulator's ``/videos`` (Sora 2): create, list, retrieve, delete, content, remix.

``POST /videos`` takes JSON or a multipart form (what the SDK sends): ``prompt`` (required),
``model`` (``sora-2`` by default; ``sora-2*`` models only), ``seconds`` (``"4"``, ``"8"`` or
``"12"``; 4 by default) and ``size`` (``720x1280`` by default; ``sora-2`` only renders
``720x1280`` and ``1280x720``, the pro models also ``1024x1792`` and ``1792x1024``).

A video is ``queued`` for the first 20 % of ``Knobs.job_seconds``, then ``in_progress`` with
``progress`` rising from 0 to 99, then ``completed`` (``progress`` 100, ``expires_at`` an hour
later). Its content before completion is a 404. The content is deterministic: the ``video``
variant is ``seconds x 16384`` bytes of ``video/mp4`` (an ``ftyp`` box, then one ``mdat`` box);
``thumbnail`` is 1024 bytes of ``image/webp``, ``spritesheet`` 2048 bytes of ``image/jpeg``;
all streamed in chunks.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_object_api import Body, ObjectApi, fraction, now_ts

__all__ = ["VideosApi", "video_bytes"]

SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
BASIC_SIZES = SIZES[:2]
BYTES_PER_SECOND = 16384
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}


def _filler(key: str, n: int) -> bytes:
    return hashlib.shake_256(key.encode()).digest(n) if n > 0 else b""


def video_bytes(video_id: str, seconds: int, variant: str = "video") -> bytes:
    """The content of a completed video (deterministic for its id)."""
    if variant == "thumbnail":
        body = b"WEBPVP8 " + _filler(video_id + "/thumb", 1024 - 16)
        return b"RIFF" + struct.pack("<I", len(body)) + body
    if variant == "spritesheet":
        return b"\xff\xd8\xff\xe0" + _filler(video_id + "/sprites", 2048 - 6) + b"\xff\xd9"
    total = seconds * BYTES_PER_SECOND
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 0x200) + b"isommp41"
    mdat = struct.pack(">I", total - len(ftyp)) + b"mdat"
    return ftyp + mdat + _filler(video_id, total - len(ftyp) - len(mdat))


@dataclass(slots=True)
class Video:
    obj: Body
    t0: float
    seconds: float


class VideosApi:
    """The videos of one emulator and their routes."""

    def __init__(self, api: ObjectApi) -> None:
        self.api = api
        self.videos: dict[str, Video] = {}
        api.route("POST", "/videos", self.create, form=True)
        api.route("GET", "/videos", self.list)
        api.route("GET", "/videos/{video_id}", self.retrieve)
        api.route("DELETE", "/videos/{video_id}", self.delete)
        api.route("GET", "/videos/{video_id}/content", self.content)
        api.route("POST", "/videos/{video_id}/remix", self.remix)

    def find(self, request: web.Request) -> Video:
        vid = request.match_info["video_id"]
        video = self.videos.get(vid)
        if video is None:
            raise self.api.missing(f"Video with id '{vid}' not found.", param="video_id")
        self.refresh(video)
        return video

    def refresh(self, video: Video) -> None:
        obj = video.obj
        if obj["status"] == "completed":
            return
        done = fraction(video.t0, video.seconds)
        if done >= 1:
            completed = now_ts()
            obj.update(status="completed", progress=100, completed_at=completed)
            obj["expires_at"] = completed + 3600
        elif done >= 0.2:
            obj.update(status="in_progress", progress=min(int((done - 0.2) / 0.8 * 100), 99))

    # -- endpoints ------------------------------------------------------------------------
    def _new(self, knobs: Knobs, model: str, prompt: str, seconds: str, size: str) -> Video:
        obj: Body = {
            "id": self.api.provider.core.ids("video_"),
            "object": "video",
            "model": model,
            "status": "queued",
            "progress": 0,
            "created_at": now_ts(),
            "completed_at": None,
            "expires_at": None,
            "prompt": prompt,
            "size": size,
            "seconds": seconds,
            "remixed_from_video_id": None,
            "error": None,
        }
        video = Video(obj, time.monotonic(), knobs.job_seconds)
        self.videos[obj["id"]] = video
        return video

    def _params(self, fields: dict[str, Any]) -> tuple[str, str, str, str]:
        api = self.api
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise api.bad("Missing required parameter: 'prompt'.", param="prompt")
        if len(prompt) > 32000:
            raise api.bad("Invalid 'prompt': string too long.", param="prompt")
        model = fields.get("model") or "sora-2"
        if not isinstance(model, str) or not model.startswith("sora-2"):
            raise api.bad(f"Invalid value for 'model': '{model}'.", param="model")
        seconds = str(fields.get("seconds") or "4")
        if seconds not in SECONDS:
            raise api.bad(
                f"Invalid value: '{seconds}'. Supported values are: '4', '8', and '12'.",
                param="seconds",
                code="invalid_value",
            )
        size = str(fields.get("size") or "720x1280")
        allowed = SIZES if model.startswith("sora-2-pro") else BASIC_SIZES
        if size not in allowed:
            names = ", ".join(f"'{s}'" for s in allowed)
            raise api.bad(
                f"Invalid value: '{size}'. Supported values for {model} are: {names}.",
                param="size",
                code="invalid_value",
            )
        return model, prompt, seconds, size

    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        api = self.api
        if request.content_type.startswith("multipart/"):
            form = await api.read_form(request)
            fields: dict[str, Any] = dict(form.fields)
        else:
            fields = api.body(body)
        model = fields.get("model")
        await api.gate(knobs, model if isinstance(model, str) else "")
        video = self._new(knobs, *self._params(fields))
        return await api.send(request, knobs, video.obj)

    async def remix(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        api = self.api
        source = self.find(request)
        body = api.body(body)
        prompt = api.required_str(body, "prompt")
        if source.obj["status"] != "completed":
            raise api.bad("Only completed videos can be remixed.", param="video_id")
        src = source.obj
        video = self._new(knobs, src["model"], prompt, src["seconds"], src["size"])
        video.obj["remixed_from_video_id"] = src["id"]
        return await api.send(request, knobs, video.obj)

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        for video in self.videos.values():
            self.refresh(video)
        items = [v.obj for v in self.videos.values()]
        return await self.api.send(request, knobs, self.api.page(items, request.query))

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def delete(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        video = self.find(request)
        del self.videos[video.obj["id"]]
        return await self.api.send(
            request, knobs, self.api.deleted(video.obj["id"], "video.deleted")
        )

    async def content(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        video = self.find(request)
        variant = request.query.get("variant", "video")
        if variant not in VARIANTS:
            raise self.api.bad(
                f"Invalid value for 'variant': '{variant}'. Supported values are: 'video', "
                "'thumbnail', and 'spritesheet'.",
                param="variant",
            )
        obj = video.obj
        if obj["status"] != "completed":
            raise self.api.missing(
                f"Video is not ready yet (status '{obj['status']}'); use GET /v1/videos/"
                f"{obj['id']} to check its status.",
                param="video_id",
            )
        data = video_bytes(obj["id"], int(obj["seconds"]), variant)
        return await self.api.send_bytes(request, knobs, data, VARIANTS[variant])
