"""The OpenAI emulator's ``/batches``: create, list, retrieve, cancel.

A batch moves by wall time over ``Knobs.job_seconds``: ``validating`` (first 20 %),
``in_progress`` (to 80 %), ``finalizing``, then ``completed``. The input file (purpose
``batch``) is checked when the batch is created; a bad line (not JSON, no ``custom_id``, a
duplicate ``custom_id``, a method other than POST, a ``url`` other than the batch's
``endpoint``) fails the batch at the end of validation with ``errors``, as OpenAI does.

On completion the output file (purpose ``batch_output``) holds one line per input line, in
order: ``{id, custom_id, response: {status_code, request_id, body}, error}``. Answers are
deterministic (see ``openai_batch_answers.py``); a line whose body ``model`` is ``error-NNN``
goes to the error file with that status. ``request_counts`` and ``usage`` (the sums of the
answers' usage) are set on completion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_batch_answers import ENDPOINTS, answer
from relaygate.emulator.openai_files import FilesApi
from relaygate.emulator.openai_object_api import Body, ObjectApi, fraction, now_ts

__all__ = ["BatchesApi"]

ORDER = ("validating", "in_progress", "finalizing", "completed")
#: the fraction of ``job_seconds`` at which each status starts
STARTS = {"in_progress": 0.2, "finalizing": 0.8, "completed": 1.0}
DONE = ("completed", "failed", "cancelled", "expired")
DAY = 24 * 3600


def _check_lines(data: bytes, endpoint: str) -> tuple[list[Body], list[Body]]:
    """The requests of an input file and the errors found in it (``BatchError`` objects)."""
    requests: list[Body] = []
    errors: list[Body] = []
    seen: set[str] = set()

    def err(code: str, message: str, line: int, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": line})

    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            err("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        cid = line.get("custom_id")
        if not isinstance(cid, str) or not cid:
            err("missing_required_parameter", "Missing 'custom_id'.", number, "custom_id")
        elif cid in seen:
            err("duplicate_custom_id", f"The custom_id '{cid}' is not unique.", number)
        if line.get("method") != "POST":
            err("invalid_method", "Only POST requests are supported.", number, "method")
        if line.get("url") != endpoint:
            msg = f"The URL provided for this request does not match the batch endpoint {endpoint}."
            err("mismatched_endpoint", msg, number, "url")
        if not isinstance(line.get("body"), dict):
            err("missing_required_parameter", "Missing 'body'.", number, "body")
        if isinstance(cid, str):
            seen.add(cid)
        requests.append(line)
    if not requests and not errors:
        err("empty_file", "The input file is empty.", 0)
    return requests, errors


@dataclass(slots=True)
class Batch:
    obj: Body
    t0: float
    seconds: float
    requests: list[Body]
    errors: list[Body] = field(default_factory=list)


class BatchesApi:
    """The batches of one emulator and their routes."""

    def __init__(self, api: ObjectApi, files: FilesApi) -> None:
        self.api = api
        self.files = files
        self.batches: dict[str, Batch] = {}
        api.route("POST", "/batches", self.create)
        api.route("GET", "/batches", self.list)
        api.route("GET", "/batches/{batch_id}", self.retrieve)
        api.route("POST", "/batches/{batch_id}/cancel", self.cancel)

    def find(self, request: web.Request) -> Batch:
        bid = request.match_info["batch_id"]
        batch = self.batches.get(bid)
        if batch is None:
            raise self.api.missing(f"No batch found with id '{bid}'.", param="batch_id")
        self.refresh(batch)
        return batch

    # -- progress -------------------------------------------------------------------------
    def refresh(self, batch: Batch) -> None:
        obj = batch.obj
        if obj["status"] == "cancelling":
            obj.update(status="cancelled", cancelled_at=now_ts())
            return
        done = fraction(batch.t0, batch.seconds)
        while obj["status"] not in DONE:
            following = ORDER[ORDER.index(obj["status"]) + 1]
            if done < STARTS[following]:
                return
            if following == "in_progress" and batch.errors:
                obj.update(
                    status="failed",
                    failed_at=now_ts(),
                    errors={"object": "list", "data": batch.errors},
                )
                return
            obj["status"] = following
            obj[f"{following}_at"] = now_ts()
            if following == "in_progress":
                obj["request_counts"]["total"] = len(batch.requests)
            elif following == "completed":
                self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        """Answer every request: output and error files, counts and usage."""
        obj = batch.obj
        ids = self.api.provider.core.ids
        knobs = self.api.provider.core.knobs
        out: list[bytes] = []
        failed: list[bytes] = []
        usage = {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0}
        for req in batch.requests:
            status, body, tokens = answer(obj["endpoint"], req["body"], knobs, ids)
            for k, v in tokens.items():
                usage[k] += v
            line = {
                "id": ids("batch_req_"),
                "custom_id": req["custom_id"],
                "response": {"status_code": status, "request_id": ids("req_"), "body": body},
                "error": None,
            }
            (out if status == 200 else failed).append(orjson.dumps(line))
        bid = obj["id"]
        if out:
            data = b"\n".join(out) + b"\n"
            obj["output_file_id"] = self.files.add(f"{bid}_output.jsonl", "batch_output", data).id
        if failed:
            data = b"\n".join(failed) + b"\n"
            obj["error_file_id"] = self.files.add(f"{bid}_error.jsonl", "batch_output", data).id
        obj["request_counts"] = {
            "total": len(batch.requests),
            "completed": len(out),
            "failed": len(failed),
        }
        obj["usage"] = {
            "input_tokens": usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        }

    # -- endpoints ------------------------------------------------------------------------
    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        api = self.api
        body = api.body(body)
        fid = api.required_str(body, "input_file_id")
        endpoint = api.required_str(body, "endpoint")
        window = api.required_str(body, "completion_window")
        if endpoint not in ENDPOINTS:
            allowed = ", ".join(ENDPOINTS)
            raise api.bad(
                f"Invalid value for 'endpoint': '{endpoint}'. Supported values are: {allowed}.",
                param="endpoint",
            )
        if window != "24h":
            raise api.bad(
                f"Invalid value for 'completion_window': '{window}'. Supported values are: '24h'.",
                param="completion_window",
            )
        stored = self.files.get(fid)
        if stored is None:
            raise api.missing(f"No such File object: {fid}", param="input_file_id")
        if stored.purpose != "batch":
            raise api.bad(
                f"File {fid} has purpose '{stored.purpose}'; batches need purpose 'batch'.",
                param="input_file_id",
            )
        requests, errors = _check_lines(stored.data, endpoint)
        models = [r["body"].get("model") for r in requests if isinstance(r.get("body"), dict)]
        created = now_ts()
        obj: Body = {
            "id": api.provider.core.ids("batch_"),
            "object": "batch",
            "endpoint": endpoint,
            "model": next((m for m in models if isinstance(m, str)), None),
            "errors": None,
            "input_file_id": fid,
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": created,
            "in_progress_at": None,
            "expires_at": created + DAY,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "usage": None,
            "metadata": api.metadata(body) or None,
        }
        batch = Batch(obj, time.monotonic(), knobs.job_seconds, requests, errors)
        self.batches[obj["id"]] = batch
        return await api.send(request, knobs, obj)

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        for batch in self.batches.values():
            self.refresh(batch)
        items = [b.obj for b in self.batches.values()]
        page = self.api.page(items, {**request.query, "order": "desc"})
        return await self.api.send(request, knobs, page)

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def cancel(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        batch = self.find(request)
        status = batch.obj["status"]
        if status in DONE or status == "cancelling":
            raise self.api.bad(f"Cannot cancel a batch with status '{status}'.")
        batch.obj.update(status="cancelling", cancelling_at=now_ts())
        return await self.api.send(request, knobs, batch.obj)
