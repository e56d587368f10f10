"""The OpenAI emulator's ``/fine_tuning/jobs``: create, list, retrieve, cancel, events, checkpoints.

A job moves by wall time over ``Knobs.job_seconds`` (taken when it is created):
``validating_files`` (first 20 %), ``queued`` (to 40 %), ``running``, then ``succeeded``. A
training file whose non-empty lines are not all JSON objects fails the job at the end of
validation (``failed``, ``error.code`` ``invalid_training_file``), as OpenAI's validation does.

Deterministic results: ``n_epochs`` is the requested integer (``"auto"``: 3), ``batch_size`` 1,
so ``steps = n_epochs x examples`` (non-empty lines) and
``trained_tokens = n_epochs x ceil(training file bytes / 4)``. ``fine_tuned_model`` is
``ft:<model>:emulator:<suffix or empty>:<8 random hex>``; one checkpoint per epoch (the last
three), events newest first, and a ``step_metrics.csv`` result file (purpose
``fine-tune-results``).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_files import FilesApi, StoredFile
from relaygate.emulator.openai_object_api import Body, ObjectApi, fraction, now_ts

__all__ = ["FineTuningApi", "trained_tokens"]

AUTO_EPOCHS = 3
ORDER = ("validating_files", "queued", "running", "succeeded")
#: the fraction of ``job_seconds`` at which each status starts
STARTS = {"queued": 0.2, "running": 0.4, "succeeded": 1.0}
DONE = ("succeeded", "failed", "cancelled")


def trained_tokens(size: int, n_epochs: int) -> int:
    """The tokens a job trains on: ``n_epochs x ceil(bytes / 4)`` of the training file."""
    return n_epochs * ((size + 3) // 4)


def _examples(data: bytes) -> tuple[int, str | None]:
    """Number of examples (non-empty lines) and the first problem found, if any."""
    count = 0
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ok = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            ok = False
        if not ok:
            return count, f"Invalid file format. Line {number} is not a JSON object."
        count += 1
    if count == 0:
        return 0, "Invalid file format. The training file has no examples."
    return count, None


@dataclass(slots=True)
class Job:
    obj: Body
    t0: float
    seconds: float
    training: StoredFile
    n_epochs: int
    examples: int
    problem: str | None
    events: list[Body] = field(default_factory=list)
    checkpoints: list[Body] = field(default_factory=list)


class FineTuningApi:
    """The fine-tuning jobs of one emulator and their routes."""

    def __init__(self, api: ObjectApi, files: FilesApi) -> None:
        self.api = api
        self.files = files
        self.jobs: dict[str, Job] = {}
        base = "/fine_tuning/jobs"
        api.route("POST", base, self.create)
        api.route("GET", base, self.list)
        api.route("GET", base + "/{job_id}", self.retrieve)
        api.route("POST", base + "/{job_id}/cancel", self.cancel)
        api.route("GET", base + "/{job_id}/events", self.list_events)
        api.route("GET", base + "/{job_id}/checkpoints", self.list_checkpoints)

    # -- helpers --------------------------------------------------------------------------
    def _file(self, body: Body, name: str) -> StoredFile | None:
        fid = body.get(name)
        if fid is None and name == "validation_file":
            return None
        stored = self.files.get(fid)
        if stored is None:
            raise self.api.bad(f"invalid {name}: {fid}", param=name)
        if stored.purpose != "fine-tune":
            raise self.api.bad(
                f"File {fid} has purpose '{stored.purpose}'; expected 'fine-tune'.", param=name
            )
        return stored

    def _hyperparameters(self, body: Body) -> Body:
        method = body.get("method")
        hp: Any = body.get("hyperparameters")
        if isinstance(method, dict) and isinstance(method.get(method.get("type")), dict):
            hp = method[method["type"]].get("hyperparameters", hp)
        hp = dict(hp) if isinstance(hp, dict) else {}
        epochs = hp.get("n_epochs", "auto")
        if epochs != "auto" and (
            not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 50
        ):
            raise self.api.bad(
                "Invalid 'n_epochs': expected 'auto' or an integer from 1 to 50.",
                param="hyperparameters.n_epochs",
            )
        return {
            "n_epochs": epochs,
            "batch_size": hp.get("batch_size", "auto"),
            "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto"),
        }

    def _event(self, job: Job, message: str, level: str = "info", **data: Any) -> None:
        event: Body = {
            "object": "fine_tuning.job.event",
            "id": self.api.provider.core.ids("ftevent-"),
            "created_at": now_ts(),
            "level": level,
            "message": message,
            "type": "metrics" if data else "message",
            "data": data,
        }
        job.events.append(event)

    def find(self, request: web.Request) -> Job:
        jid = request.match_info["job_id"]
        job = self.jobs.get(jid)
        if job is None:
            raise self.api.missing(f"Could not find fine-tuning job: {jid}", param="id")
        self.refresh(job)
        return job

    # -- progress -------------------------------------------------------------------------
    def refresh(self, job: Job) -> None:
        """Enter every status whose start time has come."""
        done = fraction(job.t0, job.seconds)
        while job.obj["status"] not in DONE:
            following = ORDER[ORDER.index(job.obj["status"]) + 1]
            if done < STARTS[following]:
                return
            self._enter(job, following)

    def _enter(self, job: Job, status: str) -> None:
        obj = job.obj
        if status == "queued" and job.problem is not None:
            obj["status"] = "failed"
            obj["finished_at"] = now_ts()
            obj["estimated_finish"] = None
            msg = f"The job failed due to an invalid training file. {job.problem}"
            obj["error"] = {
                "code": "invalid_training_file",
                "message": msg,
                "param": "training_file",
            }
            self._event(job, msg, "error")
            return
        obj["status"] = status
        if status == "queued":
            self._event(job, "Files validated, moving job to queued state")
        elif status == "running":
            obj["hyperparameters"] = {
                "n_epochs": job.n_epochs,
                "batch_size": 1,
                "learning_rate_multiplier": 2.0,
            }
            obj["method"]["supervised"] = {"hyperparameters": obj["hyperparameters"]}
            self._event(job, "Fine-tuning job started")
        else:
            self._succeed(job)

    def _succeed(self, job: Job) -> None:
        obj = job.obj
        steps_per_epoch = job.examples
        total = job.n_epochs * steps_per_epoch
        model = f"ft:{obj['model']}:emulator:{obj['user_provided_suffix'] or ''}:"
        model += os.urandom(4).hex()
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        for epoch in range(1, job.n_epochs + 1):
            step = epoch * steps_per_epoch
            loss = round(1.0 / (epoch + 1), 4)
            accuracy = round(1.0 - loss / 2, 4)
            rows.append(f"{step},{loss},{accuracy},,")
            self._event(
                job,
                f"Step {step}/{total}: training loss={loss:.4f}",
                step=step,
                train_loss=loss,
                total_steps=total,
                train_mean_token_accuracy=accuracy,
            )
            if epoch > job.n_epochs - 3:
                job.checkpoints.append(
                    {
                        "object": "fine_tuning.job.checkpoint",
                        "id": self.api.provider.core.ids("ftckpt-"),
                        "created_at": now_ts(),
                        "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
                        "step_number": step,
                        "metrics": {
                            "step": float(step),
                            "train_loss": loss,
                            "train_mean_token_accuracy": accuracy,
                        },
                        "fine_tuning_job_id": obj["id"],
                    }
                )
        results = self.files.add(
            "step_metrics.csv", "fine-tune-results", ("\n".join(rows) + "\n").encode()
        )
        obj.update(
            status="succeeded",
            finished_at=now_ts(),
            estimated_finish=None,
            fine_tuned_model=model,
            trained_tokens=trained_tokens(len(job.training.data), job.n_epochs),
            result_files=[results.id],
        )
        self._event(job, f"New fine-tuned model created: {model}")
        self._event(job, "The job has successfully completed")

    # -- endpoints ------------------------------------------------------------------------
    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        api = self.api
        body = api.body(body)
        model = api.required_str(body, "model")
        api.required_str(body, "training_file")
        training = self._file(body, "training_file")
        assert training is not None
        validation = self._file(body, "validation_file")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
            raise api.bad("Invalid 'suffix': expected 1 to 64 characters.", param="suffix")
        hp = self._hyperparameters(body)
        seed = body.get("seed")
        jid = api.provider.core.ids("ftjob-")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = zlib.crc32(jid.encode()) & 0x7FFFFFFF
        created = now_ts()
        obj: Body = {
            "object": "fine_tuning.job",
            "id": jid,
            "model": model,
            "created_at": created,
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-emulator",
            "result_files": [],
            "status": "validating_files",
            "validation_file": validation.id if validation else None,
            "training_file": training.id,
            "hyperparameters": hp,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
            "trained_tokens": None,
            "error": None,
            "user_provided_suffix": suffix,
            "seed": seed,
            "estimated_finish": created + max(1, round(knobs.job_seconds)),
            "integrations": body.get("integrations"),
            "metadata": api.metadata(body),
        }
        examples, problem = _examples(training.data)
        epochs = hp["n_epochs"] if isinstance(hp["n_epochs"], int) else AUTO_EPOCHS
        job = Job(obj, time.monotonic(), knobs.job_seconds, training, epochs, examples, problem)
        self.jobs[jid] = job
        self._event(job, f"Created fine-tuning job: {jid}")
        self._event(job, f"Validating training file: {training.id}")
        return await api.send(request, knobs, obj)

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        wanted = {
            k[len("metadata[") : -1]: v
            for k, v in request.query.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        items = []
        for job in self.jobs.values():
            self.refresh(job)
            meta = job.obj["metadata"] or {}
            if all(meta.get(k) == v for k, v in wanted.items()):
                items.append(job.obj)
        page = self.api.page(items, {**request.query, "order": "desc"}, ids=False)
        return await self.api.send(request, knobs, page)

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def cancel(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        job = self.find(request)
        status = job.obj["status"]
        if status in DONE:
            raise self.api.bad(
                f"Cannot cancel a fine-tuning job with status '{status}'.", param="id"
            )
        job.obj.update(status="cancelled", estimated_finish=None)
        self._event(job, "Fine-tuning job cancelled")
        return await self.api.send(request, knobs, job.obj)

    async def list_events(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        job = self.find(request)
        page = self.api.page(job.events, {**request.query, "order": "desc"}, ids=False)
        return await self.api.send(request, knobs, page)

    async def list_checkpoints(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        job = self.find(request)
        page = self.api.page(job.checkpoints, {**request.query, "order": "desc"}, limit=10)
        return await self.api.send(request, knobs, page)
