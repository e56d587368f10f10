"""The OpenAI emulator's Assistants v2 runs: create (also with a new thread), retrieve, modify,
list, cancel, submit_tool_outputs, run steps; streamed runs as OpenAI's SSE events.

A run is ``queued`` for the first 20 % of ``Knobs.job_seconds``, then ``in_progress`` (its step
and, for an answer, its assistant message ``in_progress`` in the thread), then, at
``job_seconds``: ``completed`` (the message holds the ``reply`` knob) or, when the run has a
function tool (and ``tool_choice`` is not ``none``), ``requires_action`` with one call whose
arguments come from the function's schema. ``submit_tool_outputs`` starts the timeline again;
the answer is then ``The tool returned: <outputs>``. A cancelled run is ``cancelling``, then
``cancelled`` (its message ``incomplete``).

Usage (``count_tokens``: ``ceil(characters / 4)``): ``prompt_tokens`` = tokens of the run's
instructions + for each thread message present when the run is created ``4 + tokens of its
text`` (+ tokens of the submitted outputs, for the answer after a tool call);
``completion_tokens`` = tokens of the answer (of the call's arguments for a tool-call step).
Each step has its usage; the run's is their sum.

A streamed run (``stream: true``) is written with ``Provider.send_stream`` (``chunks``,
``first_token_ms``, ``chunk_interval_ms``, ``cut_after``, ``midstream_error`` apply); it is in
its final state in memory as soon as the stream starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from relaygate.emulator.base import count_tokens
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_assistants import AssistantsApi, Thread, message_text
from relaygate.emulator.openai_object_api import Body, ObjectApi, fraction, now_ts
from relaygate.emulator.openai_run_stream import Frames, pick_call, stream_plan, usage

__all__ = ["Run", "RunsApi"]

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


@dataclass(slots=True)
class Run:
    obj: Body
    thread: Thread
    t0: float
    seconds: float
    prompt_tokens: int
    reply: str
    call: Body | None = None
    step: Body | None = None
    message: Body | None = None
    steps: dict[str, Body] = field(default_factory=dict)


class RunsApi:
    """The runs of one emulator's threads and their routes."""

    def __init__(self, api: ObjectApi, assistants: AssistantsApi) -> None:
        self.api = api
        self.assistants = assistants
        self.runs: dict[str, Run] = {}
        assistants.active_run = self.active_run
        assistants.catch_up = self.catch_up
        route = assistants.route
        base = "/threads/{thread_id}/runs"
        route("POST", "/threads/runs", self.create_thread_and_run)
        route("POST", base, self.create)
        route("GET", base, self.list)
        route("GET", base + "/{run_id}", self.retrieve)
        route("POST", base + "/{run_id}", self.modify)
        route("POST", base + "/{run_id}/cancel", self.cancel)
        route("POST", base + "/{run_id}/submit_tool_outputs", self.submit_tool_outputs)
        route("GET", base + "/{run_id}/steps", self.list_steps)
        route("GET", base + "/{run_id}/steps/{step_id}", self.retrieve_step)

    # -- lookups and progress -------------------------------------------------------------
    def active_run(self, thread: Thread) -> str | None:
        for run in self.runs.values():
            if run.thread is thread and run.obj["status"] in ACTIVE:
                return str(run.obj["id"])
        return None

    def catch_up(self, thread: Thread) -> None:
        for run in self.runs.values():
            if run.thread is thread:
                self.refresh(run)

    def find(self, request: web.Request) -> Run:
        thread = self.assistants.thread(request)
        rid = request.match_info["run_id"]
        run = self.runs.get(rid)
        if run is None or run.thread is not thread:
            raise self.api.missing(f"No run found with id '{rid}'.", param="run_id")
        self.refresh(run)
        return run

    def refresh(self, run: Run) -> None:
        status = run.obj["status"]
        if status == "cancelling":
            self._cancelled(run)
            return
        done = fraction(run.t0, run.seconds)
        if status == "queued" and done >= 0.2:
            self._start(run, Frames())
        if run.obj["status"] == "in_progress" and done >= 1:
            self._finish(run, Frames())

    # -- transitions (each adds its events to ``out``) ------------------------------------
    def _new_step(self, run: Run, kind: str, details: Body) -> Body:
        obj = run.obj
        step: Body = {
            "id": self.api.provider.core.ids("step_"),
            "object": "thread.run.step",
            "created_at": now_ts(),
            "run_id": obj["id"],
            "assistant_id": obj["assistant_id"],
            "thread_id": obj["thread_id"],
            "type": kind,
            "status": "in_progress",
            "cancelled_at": None,
            "completed_at": None,
            "expired_at": None,
            "failed_at": None,
            "last_error": None,
            "step_details": details,
            "usage": None,
            "metadata": {},
        }
        run.steps[step["id"]] = step
        run.step = step
        return step

    def _start(self, run: Run, out: Frames) -> None:
        obj = run.obj
        obj["status"] = "in_progress"
        obj["started_at"] = obj["started_at"] or now_ts()
        out.add("thread.run.in_progress", obj)
        if run.call is not None:
            step = self._new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
            out.add("thread.run.step.created", step)
            out.add("thread.run.step.in_progress", step)
            return
        msg = self.assistants.add_message(
            run.thread,
            "assistant",
            [],
            status="in_progress",
            assistant_id=obj["assistant_id"],
            run_id=obj["id"],
        )
        run.message = msg
        details = {"type": "message_creation", "message_creation": {"message_id": msg["id"]}}
        step = self._new_step(run, "message_creation", details)
        out.add("thread.run.step.created", step)
        out.add("thread.run.step.in_progress", step)
        out.add("thread.message.created", msg)
        out.add("thread.message.in_progress", msg)

    def _finish(self, run: Run, out: Frames) -> None:
        obj, step = run.obj, run.step
        assert step is not None
        if run.call is not None:
            step["step_details"]["tool_calls"] = [
                {**run.call, "function": {**run.call["function"], "output": None}}
            ]
            obj["status"] = "requires_action"
            obj["required_action"] = {
                "type": "submit_tool_outputs",
                "submit_tool_outputs": {"tool_calls": [run.call]},
            }
            out.add("thread.run.requires_action", obj)
            return
        msg = run.message
        assert msg is not None
        done = now_ts()
        msg["content"] = [{"type": "text", "text": {"value": run.reply, "annotations": []}}]
        msg.update(status="completed", completed_at=done)
        out.add("thread.message.completed", msg)
        step.update(
            status="completed",
            completed_at=done,
            usage=usage(run.prompt_tokens, max(count_tokens(run.reply), 1)),
        )
        out.add("thread.run.step.completed", step)
        totals = [0, 0]
        for s in run.steps.values():
            if s["usage"]:
                totals[0] += s["usage"]["prompt_tokens"]
                totals[1] += s["usage"]["completion_tokens"]
        obj.update(status="completed", completed_at=done, usage=usage(*totals))
        out.add("thread.run.completed", obj)

    def _cancelled(self, run: Run) -> None:
        done = now_ts()
        run.obj.update(status="cancelled", cancelled_at=done, required_action=None)
        if run.step is not None and run.step["status"] == "in_progress":
            run.step.update(status="cancelled", cancelled_at=done)
        if run.message is not None and run.message["status"] == "in_progress":
            run.message.update(
                status="incomplete",
                incomplete_at=done,
                incomplete_details={"reason": "run_cancelled"},
            )

    # -- creating -------------------------------------------------------------------------
    def _create(self, thread: Thread, body: Body, knobs: Knobs) -> Run:
        api = self.api
        assistant = self.assistants.assistant(api.required_str(body, "assistant_id"))
        active = self.active_run(thread)
        if active is not None:
            raise api.bad(f"Thread {thread.id} already has an active run {active}.")
        extra = body.get("additional_messages") or []
        if not isinstance(extra, list):
            raise api.bad("Invalid 'additional_messages': expected an array.")
        for message in extra:
            self.assistants.user_message(thread, message)
        instructions = body.get("instructions") or assistant["instructions"] or ""
        if body.get("additional_instructions"):
            instructions += str(body["additional_instructions"])
        tools = self.assistants.tools(body["tools"]) if "tools" in body else assistant["tools"]
        created = now_ts()
        obj: Body = {
            "id": api.provider.core.ids("run_"),
            "object": "thread.run",
            "created_at": created,
            "assistant_id": assistant["id"],
            "thread_id": thread.id,
            "status": "queued",
            "started_at": None,
            "expires_at": created + 600,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "required_action": None,
            "last_error": None,
            "model": body.get("model") or assistant["model"],
            "instructions": instructions,
            "tools": tools,
            "tool_resources": {},
            "metadata": api.metadata(body),
            "temperature": body.get("temperature", assistant["temperature"]),
            "top_p": body.get("top_p", assistant["top_p"]),
            "max_completion_tokens": body.get("max_completion_tokens"),
            "max_prompt_tokens": body.get("max_prompt_tokens"),
            "truncation_strategy": body.get("truncation_strategy")
            or {"type": "auto", "last_messages": None},
            "incomplete_details": None,
            "usage": None,
            "response_format": body.get("response_format", assistant["response_format"]),
            "tool_choice": body.get("tool_choice", "auto"),
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
        }
        prompt = count_tokens(instructions) + sum(
            4 + count_tokens(message_text(m)) for m in thread.messages.values()
        )
        run = Run(obj, thread, time.monotonic(), knobs.job_seconds, prompt, knobs.reply)
        run.call = pick_call(tools, obj["tool_choice"], api.provider.core.ids)
        self.runs[obj["id"]] = run
        return run

    async def _answer(
        self, request: web.Request, knobs: Knobs, run: Run, body: Body, out: Frames
    ) -> web.StreamResponse:
        """The run as JSON, or (``stream: true``) its events, run to the end now."""
        if body.get("stream") is not True:
            return await self.api.send(request, knobs, run.obj)
        if run.obj["status"] == "queued":
            self._start(run, out)
        chunks = stream_plan(run.step, run.message, run.call, run.reply, knobs.chunks)
        tail = Frames()
        self._finish(run, tail)
        if knobs.midstream_error:
            run.obj.update(
                status="failed",
                failed_at=now_ts(),
                last_error={"code": "server_error", "message": "The server had an error."},
            )
        plan = out.plan(chunks, tail)
        return await self.api.provider.send_stream(request, knobs, plan, None)

    # -- endpoints ------------------------------------------------------------------------
    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        thread = self.assistants.thread(request)
        self.catch_up(thread)
        body = self.api.body(body)
        run = self._create(thread, body, knobs)
        out = Frames()
        out.add("thread.run.created", run.obj)
        out.add("thread.run.queued", run.obj)
        return await self._answer(request, knobs, run, body, out)

    async def create_thread_and_run(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        body = self.api.body(body)
        self.assistants.assistant(self.api.required_str(body, "assistant_id"))
        spec = body.get("thread") or {}
        thread = self.assistants.new_thread(self.api.body(spec))
        run = self._create(thread, body, knobs)
        out = Frames()
        out.add("thread.created", thread.obj)
        out.add("thread.run.created", run.obj)
        out.add("thread.run.queued", run.obj)
        return await self._answer(request, knobs, run, body, out)

    async def list(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        thread = self.assistants.thread(request)
        self.catch_up(thread)
        items = [r.obj for r in self.runs.values() if r.thread is thread]
        return await self.api.send(request, knobs, self.api.page(items, request.query))

    async def retrieve(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.find(request).obj)

    async def modify(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        run = self.find(request)
        run.obj["metadata"] = self.api.metadata(self.api.body(body), run.obj["metadata"])
        return await self.api.send(request, knobs, run.obj)

    async def cancel(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        run = self.find(request)
        status = run.obj["status"]
        if status not in ("queued", "in_progress", "requires_action"):
            raise self.api.bad(f"Cannot cancel run with status '{status}'.")
        run.obj["status"] = "cancelling"
        return await self.api.send(request, knobs, run.obj)

    async def submit_tool_outputs(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        api = self.api
        run = self.find(request)
        body = api.body(body)
        status = run.obj["status"]
        if status != "requires_action" or run.call is None or run.step is None:
            raise api.bad(f'Runs in status "{status}" do not accept tool outputs.')
        outputs = body.get("tool_outputs")
        given = (
            {
                o.get("tool_call_id"): str(o.get("output", ""))
                for o in outputs
                if isinstance(o, dict)
            }
            if isinstance(outputs, list)
            else {}
        )
        call_id = run.call["id"]
        if call_id not in given:
            raise api.bad(
                f"Expected tool outputs for call_ids ['{call_id}'], got {sorted(map(str, given))}",
                param="tool_outputs",
            )
        output = given[call_id]
        out = Frames()
        step = run.step
        step["step_details"]["tool_calls"][0]["function"]["output"] = output
        arguments = run.call["function"]["arguments"]
        step.update(
            status="completed",
            completed_at=now_ts(),
            usage=usage(run.prompt_tokens, max(count_tokens(arguments), 1)),
        )
        out.add("thread.run.step.completed", step)
        run.call = None
        run.prompt_tokens += count_tokens(output)
        run.reply = f"The tool returned: {output}"
        run.t0 = time.monotonic()
        run.obj.update(status="queued", required_action=None)
        out.add("thread.run.queued", run.obj)
        return await self._answer(request, knobs, run, body, out)

    async def list_steps(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        run = self.find(request)
        page = self.api.page(list(run.steps.values()), request.query)
        return await self.api.send(request, knobs, page)

    async def retrieve_step(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        run = self.find(request)
        sid = request.match_info["step_id"]
        step = run.steps.get(sid)
        if step is None:
            raise self.api.missing(f"No run step found with id '{sid}'.", param="step_id")
        return await self.api.send(request, knobs, step)
