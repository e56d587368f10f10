"""What the object relay (``relay/objects.py``) does with an upstream answer: record the
objects a creation made, keep each object's last-seen state, mark deletions, and charge
work the upstream reports done — once per object (``storage/objects.py``
``claim_billing``):

==================  ==========================================  ==========================
object              charged when the gateway sees it            for
==================  ==========================================  ==========================
fine-tuning job     ``status: succeeded`` with ``trained_tokens``  training tokens (model's
                                                                 ``training`` price)
run                 ``status: completed`` with ``usage``        prompt/completion tokens
                    (retrieve, a run answer, or a stream's
                    ``thread.run.completed`` event)
batch               ``status: completed`` with ``usage``        tokens, at the model of the
                                                                 batch's input file
video               ``status: completed``, or its content       seconds (``per_second``)
==================  ==========================================  ==========================
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson

from relaygate.billing.media import Measure
from relaygate.context import RelayContext
from relaygate.providers.base import Target, Usage
from relaygate.relay.attempt import spawn
from relaygate.relay.multipart import Form
from relaygate.relay.object_paths import ObjectPath
from relaygate.relay.passthrough import Reply
from relaygate.state import AppState
from relaygate.storage.objects import ObjectRecord

__all__ = ["Unrecorded", "reply_for", "undo_path"]

log = logging.getLogger("relaygate")

_SNIFF = 64 * 1024
#: final statuses of runs and batches (their usage is final)
_ENDED = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def _int(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def batch_input_model(form: Form | None) -> str | None:
    """The model the first request of a batch input file (JSONL) names: the price its
    batch is charged at."""
    if form is None:
        return None
    for part in form.files("file"):
        if part.path is None:
            continue
        with open(part.path, "rb") as f:
            head = f.read(_SNIFF)
        line = head.split(b"\n", 1)[0]
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        body = obj.get("body") if isinstance(obj, dict) else None
        return _str(body.get("model")) if isinstance(body, dict) else None
    return None


class Unrecorded(Exception):
    """An object the upstream created could not be recorded (the database failed): the
    relay undoes it upstream (:func:`undo_path`) and answers 503, so nothing is left that
    its owner could not reach."""

    def __init__(self, obj_id: str) -> None:
        super().__init__(obj_id)
        self.obj_id = obj_id


def undo_path(op: ObjectPath, obj_id: str) -> tuple[str, str]:
    """(method, upstream path) that undoes the creation of ``obj_id``: a delete, or a
    cancel for jobs and batches (they cannot be deleted)."""
    base = "/" + op.collection
    if op.kind in ("fine_tuning.job", "batch"):
        return "POST", f"{base}/{obj_id}/cancel"
    return "DELETE", f"{base}/{obj_id}"


def _made_files(obj: dict[str, Any]) -> list[str]:
    """Files an upstream job made for its owner: a batch's output and error files, a
    fine-tuning job's result files (they belong to the job's owner, on its channel)."""
    found = [obj.get("output_file_id"), obj.get("error_file_id")]
    results = obj.get("result_files")
    if isinstance(results, list):
        found.extend(results)
    return [f for f in found if isinstance(f, str) and f]


def _due(kind: str, obj: dict[str, Any]) -> tuple[Usage | None, Measure | None] | None:
    """What a finished object is charged for, or None while it is not due."""
    status = obj.get("status")
    if kind == "fine_tuning.job":
        tokens = _int(obj.get("trained_tokens"))
        if status == "succeeded" and tokens:
            return None, Measure(training_tokens=tokens)
    elif kind in ("thread.run", "batch"):
        usage = obj.get("usage")
        if status in _ENDED and isinstance(usage, dict):  # tokens used are billed, however
            # the run or batch ended (OpenAI bills a failed or cancelled run's usage too)
            prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
            completion = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
            if prompt or completion:
                return Usage(prompt, completion, prompt + completion), None
    elif kind == "video" and status == "completed":
        seconds = _int(obj.get("seconds"))
        if seconds:
            return None, Measure(milliseconds=seconds * 1000)
    return None


async def _charge(
    state: AppState, ctx: RelayContext, rec_id: str, kind: str, model: str | None, obj: Any
) -> None:
    if not isinstance(obj, dict) or model is None:
        return
    due = _due(kind, obj)
    if due is None:
        return
    objects = state.repo.objects
    if not await objects.claim_billing(rec_id):
        return  # charged already
    try:
        await state.billing.charge_deferred(ctx, model, due[0], due[1])
    except Exception:
        await objects.unclaim_billing(rec_id)
        raise


def reply_for(
    state: AppState,
    ctx: RelayContext,
    op: ObjectPath,
    method: str,
    body: dict[str, Any],
    root: ObjectRecord | None,
    refs: list[ObjectRecord],
    form: Form | None,
) -> Reply:
    """The :class:`Reply` for one object request (see the module docstring)."""
    assert ctx.user is not None and ctx.key is not None
    user_id, key_id = ctx.user.id, ctx.key.id
    objects = state.repo.objects

    async def remember(
        obj_id: Any, kind: str, target: Target, parent: str | None, model: Any, data: Any
    ) -> None:
        if not isinstance(obj_id, str) or not obj_id:
            return
        snapshot = orjson.dumps(data).decode() if isinstance(data, dict) else None
        added = await objects.add(
            obj_id=obj_id[:160],
            kind=kind,
            user_id=user_id,
            key_id=key_id,
            channel_id=target.channel_id,
            parent_id=parent,
            model=_str(model),
            data=snapshot,
        )
        if not added and snapshot is not None:
            rec = await objects.get(obj_id)
            if rec is not None and rec.user_id == user_id:
                await objects.update(obj_id, data=snapshot)

    def public(target: Target, upstream: Any) -> str | None:
        name = _str(upstream)
        return None if name is None else state.router.public_model(target.channel_id, name)

    def created_model(obj: dict[str, Any], target: Target) -> str | None:
        """The public model an object is billed at (prices are kept by public name)."""
        if op.kind == "file" and obj.get("purpose") == "batch":
            return batch_input_model(form)
        if op.kind == "batch":
            return next((r.model for r in refs if r.model), None)
        return _str(body.get("model")) or public(target, obj.get("model"))

    # ---- runs (JSON answers and streams) ------------------------------------------------
    thread = root.id if root is not None and op.collection == "threads" else None
    seen_runs: dict[str, dict[str, Any]] = {}

    async def run_answer(run: dict[str, Any], target: Target) -> None:
        run_id = run.get("id")
        parent = _str(run.get("thread_id")) or thread
        if op.collection == "threads/runs" and parent is not None:
            await remember(parent, "thread", target, None, None, {"id": parent, "object": "thread"})
        model = public(target, run.get("model"))
        await remember(run_id, "thread.run", target, parent, model, run)
        if isinstance(run_id, str):
            await _charge(state, ctx, run_id, "thread.run", model, run)

    def on_event(event: str | None, data: bytes) -> bool:
        if event is not None and event.startswith("thread.run.") and "step" not in event:
            with contextlib.suppress(orjson.JSONDecodeError):
                run = orjson.loads(data)
                if isinstance(run, dict) and isinstance(run.get("id"), str):
                    seen_runs[run["id"]] = run
                    if event == "thread.run.created" and ctx.target is not None:
                        spawn(run_answer(run, ctx.target))  # recorded even if the client leaves
        return True

    async def on_stream_end(target: Target) -> None:
        for run in seen_runs.values():
            if run.get("status") == "completed":
                await run_answer(run, target)

    runs = op.creates_run or op.run_id is not None
    if runs:

        async def on_run_json(obj: dict[str, Any], target: Target) -> None:
            if obj.get("object") == "thread.run":
                await run_answer(obj, target)

        return Reply(on_json=on_run_json, on_event=on_event, on_end=on_stream_end)

    # ---- creations --------------------------------------------------------------------
    if method == "POST" and (root is None or (op.kind == "video" and op.sub == ("remix",))):

        async def on_created(obj: dict[str, Any], target: Target) -> None:
            obj_id = obj.get("id")
            try:
                await remember(obj_id, op.kind, target, None, created_model(obj, target), obj)
            except Exception as exc:
                if isinstance(obj_id, str) and obj_id:
                    raise Unrecorded(obj_id) from exc
                raise

        return Reply(on_json=on_created)

    assert root is not None
    # ---- the object itself: retrieve, modify, cancel, delete ------------------------------
    if op.sub in ((), ("cancel",)):

        async def on_object(obj: dict[str, Any], target: Target) -> None:
            if method == "DELETE":
                if obj.get("deleted") is True:
                    await objects.update(root.id, deleted=True)
                return
            if obj.get("id") == root.id:
                await objects.update(root.id, data=orjson.dumps(obj).decode())
                for made in _made_files(obj):  # a batch's output, a job's result files
                    await remember(made, "file", target, root.id, None, None)
                model = root.model or public(target, obj.get("model"))
                await _charge(state, ctx, root.id, op.kind, model, obj)

        return Reply(on_json=on_object)

    if op.kind == "video" and op.sub == ("content",):

        async def on_content(target: Target) -> None:
            last: Any = None
            if root.data:
                with contextlib.suppress(orjson.JSONDecodeError):
                    last = orjson.loads(root.data)
            if isinstance(last, dict):
                last = {**last, "status": "completed"}  # its content was served: it is done
                model = root.model or public(target, last.get("model"))
                await _charge(state, ctx, root.id, "video", model, last)

        return Reply(on_end=on_content, content=True)
    # sub-resources: passed through as they are (a file's content as bytes, whatever its type)
    return Reply(content=op.sub == ("content",))
