"""The OpenAI emulator's Assistants v2 objects: ``/assistants``, ``/threads`` and their messages.

Every ``/assistants`` and ``/threads`` request must carry ``OpenAI-Beta: assistants=v2`` (the
SDK sends it); without it OpenAI answers 400, and so does the emulator. Runs live in
``openai_runs.py``, which registers two hooks here: whether a thread has an active run (no
message may be added then: 400, as OpenAI) and the catch-up of a thread's runs before its
messages are read (a run appends its assistant message when it starts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_object_api import Body, ObjectApi, ObjectOp, now_ts

__all__ = ["AssistantsApi", "Thread", "message_text"]

TOOL_TYPES = ("code_interpreter", "file_search", "function")
_ASSISTANT_FIELDS = (
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
    "reasoning_effort",
)


def message_text(message: Body) -> str:
    """The text of a thread message (its text parts joined)."""
    return "".join(
        str(part["text"]["value"])
        for part in message.get("content") or ()
        if part.get("type") == "text"
    )


@dataclass(slots=True)
class Thread:
    obj: Body
    messages: dict[str, Body] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.obj["id"])


class AssistantsApi:
    """Assistants, threads and messages of one emulator and their routes."""

    def __init__(self, api: ObjectApi) -> None:
        self.api = api
        self.assistants: dict[str, Body] = {}
        self.threads: dict[str, Thread] = {}
        #: set by the runs: the id of the thread's active run, if any
        self.active_run: Callable[[Thread], str | None] = lambda thread: None
        #: set by the runs: bring the thread's runs up to date
        self.catch_up: Callable[[Thread], None] = lambda thread: None
        route = self.route
        route("POST", "/assistants", self.create_assistant)
        route("GET", "/assistants", self.list_assistants)
        route("GET", "/assistants/{assistant_id}", self.retrieve_assistant)
        route("POST", "/assistants/{assistant_id}", self.modify_assistant)
        route("DELETE", "/assistants/{assistant_id}", self.delete_assistant)

    def add_thread_routes(self) -> None:
        """The thread routes (after ``/threads/runs``, which would match a thread id)."""
        route = self.route
        route("POST", "/threads", self.create_thread)
        route("GET", "/threads/{thread_id}", self.retrieve_thread)
        route("POST", "/threads/{thread_id}", self.modify_thread)
        route("DELETE", "/threads/{thread_id}", self.delete_thread)
        route("POST", "/threads/{thread_id}/messages", self.create_message)
        route("GET", "/threads/{thread_id}/messages", self.list_messages)
        route("GET", "/threads/{thread_id}/messages/{message_id}", self.retrieve_message)
        route("POST", "/threads/{thread_id}/messages/{message_id}", self.modify_message)
        route("DELETE", "/threads/{thread_id}/messages/{message_id}", self.delete_message)

    def route(self, method: str, path: str, op: ObjectOp) -> None:
        """A route of the Assistants API: the ``OpenAI-Beta`` header is checked first."""
        api = self.api

        async def checked(request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
            beta = request.headers.get("OpenAI-Beta", "")
            if "assistants=v2" not in beta:
                if "assistants=v1" in beta:
                    raise api.bad(
                        "The v1 Assistants API has been deprecated. Please try again by "
                        "setting the header 'OpenAI-Beta: assistants=v2'.",
                        code="invalid_beta",
                    )
                raise api.bad(
                    "You must provide the 'OpenAI-Beta' header to access the Assistants API. "
                    "Please try again by setting the header 'OpenAI-Beta: assistants=v2'.",
                    code="invalid_beta",
                )
            return await op(request, knobs, body)

        api.route(method, path, checked)

    # -- lookups --------------------------------------------------------------------------
    def assistant(self, aid: Any, param: str = "assistant_id") -> Body:
        found = self.assistants.get(aid) if isinstance(aid, str) else None
        if found is None:
            raise self.api.missing(f"No assistant found with id '{aid}'.", param=param)
        return found

    def thread(self, request: web.Request) -> Thread:
        tid = request.match_info["thread_id"]
        found = self.threads.get(tid)
        if found is None:
            raise self.api.missing(f"No thread found with id '{tid}'.", param="thread_id")
        return found

    def message(self, request: web.Request) -> tuple[Thread, Body]:
        thread = self.thread(request)
        self.catch_up(thread)
        mid = request.match_info["message_id"]
        found = thread.messages.get(mid)
        if found is None:
            raise self.api.missing(f"No message found with id '{mid}'.", param="message_id")
        return thread, found

    # -- building -------------------------------------------------------------------------
    def tools(self, value: Any, param: str = "tools") -> list[Body]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > 128:
            raise self.api.bad(f"Invalid '{param}': expected an array.", param=param)
        for i, tool in enumerate(value):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in TOOL_TYPES:
                raise self.api.bad(
                    f"Invalid value for '{param}[{i}].type': '{kind}'.", param=f"{param}[{i}].type"
                )
            func = tool.get("function")
            if kind == "function" and not (isinstance(func, dict) and func.get("name")):
                raise self.api.bad(
                    f"Missing required parameter: '{param}[{i}].function.name'.",
                    param=f"{param}[{i}].function.name",
                )
        return list(value)

    def content(self, value: Any) -> list[Body]:
        """A message's ``content`` (a string or parts) as message content objects."""
        if isinstance(value, str):
            return [{"type": "text", "text": {"value": value, "annotations": []}}]
        parts: list[Body] = []
        for part in value if isinstance(value, list) else [None]:
            if not isinstance(part, dict):
                raise self.api.bad("Invalid 'content': expected a string or an array of parts.")
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
            elif kind in ("image_file", "image_url") and isinstance(part.get(kind), dict):
                parts.append({"type": kind, kind: part[kind]})
            else:
                raise self.api.bad("Invalid 'content': expected a string or an array of parts.")
        return parts

    def add_message(
        self,
        thread: Thread,
        role: str,
        content: list[Body],
        *,
        status: str = "completed",
        assistant_id: str | None = None,
        run_id: str | None = None,
        attachments: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> Body:
        created = now_ts()
        msg: Body = {
            "id": self.api.provider.core.ids("msg_"),
            "object": "thread.message",
            "created_at": created,
            "assistant_id": assistant_id,
            "thread_id": thread.id,
            "run_id": run_id,
            "role": role,
            "content": content,
            "attachments": attachments if isinstance(attachments, list) else [],
            "metadata": metadata or {},
            "status": status,
            "incomplete_details": None,
            "completed_at": created if status == "completed" else None,
            "incomplete_at": None,
        }
        thread.messages[msg["id"]] = msg
        return msg

    def user_message(self, thread: Thread, body: Any) -> Body:
        """A message from a request (``role``, ``content``, ``attachments``, ``metadata``)."""
        body = self.api.body(body)
        role = body.get("role")
        if role not in ("user", "assistant"):
            raise self.api.bad(
                f"Invalid value: '{role}'. Supported values are: 'user' and 'assistant'.",
                param="role",
            )
        if "content" not in body:
            raise self.api.bad("Missing required parameter: 'content'.", param="content")
        content = self.content(body["content"])
        meta = self.api.metadata(body)
        return self.add_message(
            thread, role, content, attachments=body.get("attachments"), metadata=meta
        )

    def new_thread(self, body: Body) -> Thread:
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise self.api.bad("Invalid 'messages': expected an array.", param="messages")
        obj: Body = {
            "id": self.api.provider.core.ids("thread_"),
            "object": "thread",
            "created_at": now_ts(),
            "metadata": self.api.metadata(body),
            "tool_resources": body.get("tool_resources") or {},
        }
        thread = Thread(obj)
        for message in messages:
            self.user_message(thread, message)
        self.threads[thread.id] = thread
        return thread

    # -- assistants -----------------------------------------------------------------------
    def _set_assistant(self, obj: Body, body: Body) -> None:
        for name in _ASSISTANT_FIELDS:
            if name not in body:
                continue
            value = body[name]
            if name == "tools":
                value = self.tools(value)
            elif name == "metadata":
                value = self.api.metadata(body)
            obj[name] = value

    async def create_assistant(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        body = self.api.body(body)
        self.api.required_str(body, "model")
        obj: Body = {
            "id": self.api.provider.core.ids("asst_"),
            "object": "assistant",
            "created_at": now_ts(),
            "name": None,
            "description": None,
            "model": None,
            "instructions": None,
            "tools": [],
            "tool_resources": {},
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "response_format": "auto",
        }
        self._set_assistant(obj, body)
        self.assistants[obj["id"]] = obj
        return await self.api.send(request, knobs, obj)

    async def list_assistants(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        page = self.api.page(list(self.assistants.values()), request.query)
        return await self.api.send(request, knobs, page)

    async def retrieve_assistant(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        obj = self.assistant(request.match_info["assistant_id"])
        return await self.api.send(request, knobs, obj)

    async def modify_assistant(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        obj = self.assistant(request.match_info["assistant_id"])
        self._set_assistant(obj, self.api.body(body))
        return await self.api.send(request, knobs, obj)

    async def delete_assistant(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        obj = self.assistant(request.match_info["assistant_id"])
        del self.assistants[obj["id"]]
        return await self.api.send(request, knobs, self.api.deleted(obj["id"], "assistant.deleted"))

    # -- threads --------------------------------------------------------------------------
    async def create_thread(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread = self.new_thread(self.api.body(body))
        return await self.api.send(request, knobs, thread.obj)

    async def retrieve_thread(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.thread(request).obj)

    async def modify_thread(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread = self.thread(request)
        body = self.api.body(body)
        if "metadata" in body:
            thread.obj["metadata"] = self.api.metadata(body)
        if "tool_resources" in body:
            thread.obj["tool_resources"] = body["tool_resources"] or {}
        return await self.api.send(request, knobs, thread.obj)

    async def delete_thread(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread = self.thread(request)
        del self.threads[thread.id]
        return await self.api.send(request, knobs, self.api.deleted(thread.id, "thread.deleted"))

    # -- messages -------------------------------------------------------------------------
    async def create_message(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread = self.thread(request)
        self.catch_up(thread)
        active = self.active_run(thread)
        if active is not None:
            raise self.api.bad(f"Can't add messages to {thread.id} while a run {active} is active.")
        return await self.api.send(request, knobs, self.user_message(thread, body))

    async def list_messages(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread = self.thread(request)
        self.catch_up(thread)
        run_id = request.query.get("run_id")
        items = [m for m in thread.messages.values() if run_id in (None, m["run_id"])]
        return await self.api.send(request, knobs, self.api.page(items, request.query))

    async def retrieve_message(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        return await self.api.send(request, knobs, self.message(request)[1])

    async def modify_message(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        _, msg = self.message(request)
        msg["metadata"] = self.api.metadata(self.api.body(body), msg["metadata"])
        return await self.api.send(request, knobs, msg)

    async def delete_message(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        thread, msg = self.message(request)
        del thread.messages[msg["id"]]
        deleted = self.api.deleted(msg["id"], "thread.message.deleted")
        return await self.api.send(request, knobs, deleted)
