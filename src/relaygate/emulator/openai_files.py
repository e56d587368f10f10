"""The OpenAI emulator's ``/files``: multipart upload, list, retrieve, content, delete.

Uploads are read part by part and kept in memory (the test files are small); ``bytes`` is
their size. Fine-tuning and batch uploads must be ``.jsonl`` (400 otherwise, as OpenAI);
content of ``assistants`` files cannot be downloaded (400, as OpenAI). Other modules add the
files they produce (batch output, fine-tuning results) with ``FilesApi.add``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_object_api import Body, ObjectApi, now_ts

__all__ = ["FilesApi", "StoredFile"]

#: the purposes an upload may name (``CreateFileRequest.purpose``)
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: purposes whose uploads must be JSON Lines
JSONL_PURPOSES = ("batch", "fine-tune")
#: purposes whose content cannot be downloaded
NO_DOWNLOAD = ("assistants",)


@dataclass(slots=True)
class StoredFile:
    """One file: its wire object (``OpenAIFile``) and its bytes."""

    obj: Body
    data: bytes

    @property
    def id(self) -> str:
        return str(self.obj["id"])

    @property
    def purpose(self) -> str:
        return str(self.obj["purpose"])


class FilesApi:
    """The files of one emulator and their routes."""

    def __init__(self, api: ObjectApi) -> None:
        self.api = api
        self.files: dict[str, StoredFile] = {}
        api.route("POST", "/files", self.create, form=True)
        api.route("GET", "/files", self.list)
        api.route("GET", "/files/{file_id}", self.retrieve)
        api.route("DELETE", "/files/{file_id}", self.delete)
        api.route("GET", "/files/{file_id}/content", self.content)

    # -- store ----------------------------------------------------------------------------
    def add(
        self, filename: str, purpose: str, data: bytes, expires_at: int | None = None
    ) -> StoredFile:
        fid = self.api.provider.core.ids("file-")
        obj: Body = {
            "object": "file",
            "id": fid,
            "purpose": purpose,
            "filename": filename,
            "bytes": len(data),
            "created_at": now_ts(),
            "expires_at": expires_at,
            "status": "processed",
            "status_details": None,
        }
        stored = StoredFile(obj, data)
        self.files[fid] = stored
        return stored

    def get(self, fid: Any) -> StoredFile | None:
        return self.files.get(fid) if isinstance(fid, str) else None

    def find(self, request: web.Request) -> StoredFile:
        fid = request.match_info["file_id"]
        stored = self.files.get(fid)
        if stored is None:
            raise self.api.missing(f"No such File object: {fid}", param="id")
        return stored

    # -- endpoints ------------------------------------------------------------------------
    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        api = self.api
        if not request.content_type.startswith("multipart/"):
            raise api.bad(
                "Uploads must be multipart/form-data with the fields 'file' and 'purpose'."
            )
        form = await api.read_form(request)
        await api.gate(knobs)
        upload = form.files.get("file")
        if upload is None:
            raise api.bad("Missing required parameter: 'file'.", param="file")
        purpose = form.fields.get("purpose")
        if not purpose:
            raise api.bad("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            allowed = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
            raise api.bad(
                f"Invalid value for 'purpose': '{purpose}'. Supported values are: {allowed}.",
                param="purpose",
            )
        filename, data = upload
        if purpose in JSONL_PURPOSES and not filename.lower().endswith(".jsonl"):
            label = "Fine-Tuning" if purpose == "fine-tune" else "Batch"
            raise api.bad(f"Invalid file format for {label} API. Must be .jsonl", param="file")
        created = self.add(filename, purpose, data, self._expiry(form.fields))
        return await api.send(request, knobs, created.obj)

    def _expiry(self, fields: dict[str, str]) -> int | None:
        anchor = fields.get("expires_after[anchor]")
        seconds = fields.get("expires_after[seconds]")
        if anchor is None and seconds is None:
            return None
        if anchor != "created_at":
            raise self.api.bad(
                "Invalid 'expires_after.anchor': expected 'created_at'.",
                param="expires_after.anchor",
            )
        try:
            value = int(seconds or "")
        except ValueError:
            value = -1
        if not 3600 <= value <= 2592000:
            raise self.api.bad(
                "Invalid 'expires_after.seconds': must be between 3600 and 2592000.",
                param="expires_after.seconds",
            )
        return now_ts() + value

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        purpose = request.query.get("purpose")
        items = [f.obj for f in self.files.values() if purpose in (None, "", f.purpose)]
        page = self.api.page(items, request.query, limit=10000, max_limit=10000)
        return await self.api.send(request, knobs, page)

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def delete(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        stored = self.find(request)
        del self.files[stored.id]
        return await self.api.send(request, knobs, self.api.deleted(stored.id, "file"))

    async def content(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        stored = self.find(request)
        if stored.purpose in NO_DOWNLOAD:
            raise self.api.bad(f"Not allowed to download files of purpose: {stored.purpose}")
        return await self.api.send_bytes(
            request, knobs, stored.data, "application/octet-stream", stored.obj["filename"]
        )
