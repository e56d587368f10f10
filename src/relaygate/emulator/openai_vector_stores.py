"""The OpenAI emulator's ``/vector_stores``: stores, their files and file batches.

Stores: create (with ``file_ids``), list, retrieve, modify, delete. Files: attach an uploaded
file (``file_id``), list (``filter`` by status), retrieve, update ``attributes``, delete. File
batches: create, retrieve, cancel, list their files. An attached file is ``in_progress`` until
``Knobs.job_seconds`` after it was attached, then ``completed`` with ``usage_bytes`` = the
file's size; the store is ``in_progress`` while any of its files is, and its ``usage_bytes``
is the sum over its completed files. An unknown ``file_id`` is a 404, as for ``/files``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_files import FilesApi
from relaygate.emulator.openai_object_api import Body, ObjectApi, fraction, now_ts

__all__ = ["VectorStoresApi"]

DEFAULT_CHUNKING = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}
COUNTS = ("in_progress", "completed", "failed", "cancelled")


@dataclass(slots=True)
class StoreFile:
    obj: Body
    size: int
    t0: float
    seconds: float
    batch_id: str | None = None


@dataclass(slots=True)
class Store:
    obj: Body
    files: dict[str, StoreFile] = field(default_factory=dict)
    batches: dict[str, Body] = field(default_factory=dict)


def _counts(files: list[StoreFile]) -> Body:
    counts: Body = dict.fromkeys(COUNTS, 0)
    for f in files:
        counts[f.obj["status"]] += 1
    counts["total"] = len(files)
    return counts


class VectorStoresApi:
    """The vector stores of one emulator and their routes."""

    def __init__(self, api: ObjectApi, files: FilesApi) -> None:
        self.api = api
        self.uploads = files
        self.stores: dict[str, Store] = {}
        r = api.route
        r("POST", "/vector_stores", self.create)
        r("GET", "/vector_stores", self.list)
        r("GET", "/vector_stores/{store_id}", self.retrieve)
        r("POST", "/vector_stores/{store_id}", self.modify)
        r("DELETE", "/vector_stores/{store_id}", self.delete)
        r("POST", "/vector_stores/{store_id}/files", self.add_file)
        r("GET", "/vector_stores/{store_id}/files", self.list_files)
        r("GET", "/vector_stores/{store_id}/files/{file_id}", self.retrieve_file)
        r("POST", "/vector_stores/{store_id}/files/{file_id}", self.update_file)
        r("DELETE", "/vector_stores/{store_id}/files/{file_id}", self.delete_file)
        r("POST", "/vector_stores/{store_id}/file_batches", self.create_batch)
        r("GET", "/vector_stores/{store_id}/file_batches/{batch_id}", self.retrieve_batch)
        r("POST", "/vector_stores/{store_id}/file_batches/{batch_id}/cancel", self.cancel_batch)
        r("GET", "/vector_stores/{store_id}/file_batches/{batch_id}/files", self.batch_files)

    # -- lookups and progress -------------------------------------------------------------
    def find(self, request: web.Request) -> Store:
        sid = request.match_info["store_id"]
        store = self.stores.get(sid)
        if store is None:
            raise self.api.missing(
                f"No vector store found with id '{sid}'.", param="vector_store_id"
            )
        self.refresh(store)
        return store

    def find_file(self, request: web.Request) -> tuple[Store, StoreFile]:
        store = self.find(request)
        fid = request.match_info["file_id"]
        found = store.files.get(fid)
        if found is None:
            raise self.api.missing(
                f"No file found with id '{fid}' in vector store '{store.obj['id']}'.",
                param="file_id",
            )
        return store, found

    def find_batch(self, request: web.Request) -> tuple[Store, Body]:
        store = self.find(request)
        bid = request.match_info["batch_id"]
        batch = store.batches.get(bid)
        if batch is None:
            raise self.api.missing(f"No file batch found with id '{bid}'.", param="batch_id")
        return store, batch

    def refresh(self, store: Store) -> None:
        for f in store.files.values():
            if f.obj["status"] == "in_progress" and fraction(f.t0, f.seconds) >= 1:
                f.obj.update(status="completed", usage_bytes=f.size)
        files = list(store.files.values())
        obj = store.obj
        obj["file_counts"] = _counts(files)
        obj["usage_bytes"] = sum(f.obj["usage_bytes"] for f in files)
        obj["status"] = "in_progress" if obj["file_counts"]["in_progress"] else "completed"
        for bid, batch in store.batches.items():
            mine = [f for f in files if f.batch_id == bid]
            batch["file_counts"] = _counts(mine)
            if batch["status"] == "in_progress" and not batch["file_counts"]["in_progress"]:
                batch["status"] = "completed"

    def _attach(self, store: Store, body: Body, knobs: Knobs, batch_id: str | None = None) -> Body:
        fid = body.get("file_id")
        upload = self.uploads.get(fid)
        if upload is None:
            raise self.api.missing(f"No such File object: {fid}", param="file_id")
        existing = store.files.get(upload.id)
        if existing is not None:
            return existing.obj
        obj: Body = {
            "id": upload.id,
            "object": "vector_store.file",
            "usage_bytes": 0,
            "created_at": now_ts(),
            "vector_store_id": store.obj["id"],
            "status": "in_progress",
            "last_error": None,
            "chunking_strategy": body.get("chunking_strategy") or DEFAULT_CHUNKING,
            "attributes": body.get("attributes") or {},
        }
        store.files[upload.id] = StoreFile(
            obj, len(upload.data), time.monotonic(), knobs.job_seconds, batch_id
        )
        return obj

    def _file_ids(self, body: Body) -> list[str]:
        ids = body.get("file_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise self.api.bad(
                "Invalid 'file_ids': expected an array of file ids.", param="file_ids"
            )
        return ids

    def _set(self, store: Store, body: Body) -> None:
        obj = store.obj
        if "name" in body:
            obj["name"] = body["name"]
        if "metadata" in body:
            obj["metadata"] = self.api.metadata(body)
        if "expires_after" in body:
            after = body["expires_after"]
            days = after.get("days") if isinstance(after, dict) else None
            if after is not None and (not isinstance(days, int) or not 1 <= days <= 365):
                raise self.api.bad(
                    "Invalid 'expires_after': expected {anchor: 'last_active_at', days: 1-365}.",
                    param="expires_after",
                )
            obj["expires_after"] = after
            obj["expires_at"] = obj["last_active_at"] + days * 86400 if days else None

    # -- stores ---------------------------------------------------------------------------
    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        body = self.api.body(body)
        file_ids = self._file_ids(body)
        for fid in file_ids:
            if self.uploads.get(fid) is None:
                raise self.api.missing(f"No such File object: {fid}", param="file_ids")
        created = now_ts()
        obj: Body = {
            "id": self.api.provider.core.ids("vs_"),
            "object": "vector_store",
            "created_at": created,
            "name": "",
            "usage_bytes": 0,
            "file_counts": _counts([]),
            "status": "completed",
            "expires_after": None,
            "expires_at": None,
            "last_active_at": created,
            "metadata": {},
        }
        store = Store(obj)
        self._set(store, body)
        for fid in file_ids:
            self._attach(store, {**body, "file_id": fid}, knobs)
        self.stores[obj["id"]] = store
        self.refresh(store)
        return await self.api.send(request, knobs, obj)

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        for store in self.stores.values():
            self.refresh(store)
        items = [s.obj for s in self.stores.values()]
        return await self.api.send(request, knobs, self.api.page(items, request.query))

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def modify(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        store = self.find(request)
        self._set(store, self.api.body(body))
        return await self.api.send(request, knobs, store.obj)

    async def delete(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        store = self.find(request)
        del self.stores[store.obj["id"]]
        deleted = self.api.deleted(store.obj["id"], "vector_store.deleted")
        return await self.api.send(request, knobs, deleted)

    # -- files ----------------------------------------------------------------------------
    async def add_file(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        store = self.find(request)
        body = self.api.body(body)
        self.api.required_str(body, "file_id")
        obj = self._attach(store, body, knobs)
        self.refresh(store)
        return await self.api.send(request, knobs, obj)

    async def list_files(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        store = self.find(request)
        wanted = request.query.get("filter")
        items = [f.obj for f in store.files.values() if wanted in (None, f.obj["status"])]
        return await self.api.send(request, knobs, self.api.page(items, request.query))

    async def retrieve_file(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find_file(request)[1].obj)

    async def update_file(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        _, found = self.find_file(request)
        attributes = self.api.body(body).get("attributes")
        if not isinstance(attributes, dict):
            raise self.api.bad("Missing required parameter: 'attributes'.", param="attributes")
        found.obj["attributes"] = attributes
        return await self.api.send(request, knobs, found.obj)

    async def delete_file(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        store, found = self.find_file(request)
        del store.files[found.obj["id"]]
        self.refresh(store)
        deleted = self.api.deleted(found.obj["id"], "vector_store.file.deleted")
        return await self.api.send(request, knobs, deleted)

    # -- file batches ---------------------------------------------------------------------
    async def create_batch(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        store = self.find(request)
        body = self.api.body(body)
        specs = [{**body, "file_id": fid} for fid in self._file_ids(body)]
        files = body.get("files")
        if isinstance(files, list):
            specs += [f for f in files if isinstance(f, dict)]
        if not specs:
            raise self.api.bad("Missing required parameter: 'file_ids'.", param="file_ids")
        for spec in specs:
            if self.uploads.get(spec.get("file_id")) is None:
                raise self.api.missing(f"No such File object: {spec.get('file_id')}", "file_ids")
        batch: Body = {
            "id": self.api.provider.core.ids("vsfb_"),
            "object": "vector_store.files_batch",
            "created_at": now_ts(),
            "vector_store_id": store.obj["id"],
            "status": "in_progress",
            "file_counts": _counts([]),
        }
        store.batches[batch["id"]] = batch
        for spec in specs:
            self._attach(store, spec, knobs, batch["id"])
        self.refresh(store)
        return await self.api.send(request, knobs, batch)

    async def retrieve_batch(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find_batch(request)[1])

    async def cancel_batch(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        store, batch = self.find_batch(request)
        if batch["status"] != "in_progress":
            raise self.api.bad(f"Cannot cancel a file batch with status '{batch['status']}'.")
        for f in store.files.values():
            if f.batch_id == batch["id"] and f.obj["status"] == "in_progress":
                f.obj["status"] = "cancelled"
        batch["status"] = "cancelled"
        self.refresh(store)
        return await self.api.send(request, knobs, batch)

    async def batch_files(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        store, batch = self.find_batch(request)
        wanted = request.query.get("filter")
        items = [
            f.obj
            for f in store.files.values()
            if f.batch_id == batch["id"] and wanted in (None, f.obj["status"])
        ]
        return await self.api.send(request, knobs, self.api.page(items, request.query))
