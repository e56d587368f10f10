"""The OpenAI emulator's Assistants v2 objects and vector stores, driven with the ``openai`` SDK:
assistants, threads, messages, runs (polled and streamed, with tool calls), run steps, vector
stores with their files and file batches.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta.threads import Text, TextDelta

from relaygate.emulator import DEFAULT_REPLY, EmulatorServer, Knobs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the beta SDK calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
STREAM_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    *["thread.message.delta"] * 3,
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


def tokens(text: str) -> int:
    return (len(text) + 3) // 4


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai", knobs=Knobs(job_seconds=0.2, chunks=3)) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(emu: EmulatorServer) -> Iterator[None]:
    yield
    emu.reset()


@pytest.fixture
def client(emu: EmulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emu.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.deltas: list[str] = []
        self.done_text: str | None = None

    def on_event(self, event: Any) -> None:
        self.names.append(event.event)

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")

    def on_text_done(self, text: Text) -> None:
        self.done_text = text.value


# ---------------------------------------------------------------------------------------------
# assistants, threads, messages
# ---------------------------------------------------------------------------------------------


def test_assistants_crud(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini", name="Helper", tools=[WEATHER])
    assert a.id.startswith("asst_") and a.object == "assistant"
    assert (a.name, a.model, a.tools[0].type) == ("Helper", "gpt-4o-mini", "function")
    b = client.beta.assistants.create(model="gpt-4o", metadata={"k": "v"})
    assert client.beta.assistants.retrieve(a.id).name == "Helper"
    updated = client.beta.assistants.update(a.id, instructions="Be brief", name="H2")
    assert (updated.instructions, updated.name) == ("Be brief", "H2")
    listed = client.beta.assistants.list(limit=1)
    assert [x.id for x in listed.data] == [b.id] and listed.has_more
    assert [x.id for x in client.beta.assistants.list(limit=1, after=b.id).data] == [a.id]
    assert [x.id for x in client.beta.assistants.list(order="asc", before=b.id).data] == [a.id]
    deleted = client.beta.assistants.delete(a.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (a.id, True, "assistant.deleted")
    with pytest.raises(openai.NotFoundError, match="No assistant found"):
        client.beta.assistants.retrieve(a.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function"}])
    assert err.value.body["param"] == "tools[0].function.name"


def test_assistants_need_the_beta_header(emu: EmulatorServer) -> None:
    auth = {"Authorization": "Bearer sk-test"}
    resp = httpx.get(emu.url("/v1/assistants"), headers=auth)
    assert resp.status_code == 400 and "OpenAI-Beta" in resp.json()["error"]["message"]
    resp = httpx.get(emu.url("/v1/assistants"), headers={**auth, "OpenAI-Beta": "assistants=v1"})
    assert resp.status_code == 400 and "deprecated" in resp.json()["error"]["message"]
    resp = httpx.get(emu.url("/v1/assistants"), headers={**auth, "OpenAI-Beta": "assistants=v2"})
    assert resp.status_code == 200 and resp.json()["object"] == "list"


def test_threads_and_messages(client: openai.OpenAI) -> None:
    threads = client.beta.threads
    t = threads.create(messages=[{"role": "user", "content": "Hello"}], metadata={"a": "1"})
    assert t.id.startswith("thread_") and t.metadata == {"a": "1"}
    assert threads.retrieve(t.id).id == t.id
    assert threads.update(t.id, metadata={"a": "2"}).metadata == {"a": "2"}

    m = threads.messages.create(
        t.id, role="user", content=[{"type": "text", "text": "Second"}], metadata={"x": "y"}
    )
    assert m.id.startswith("msg_") and m.thread_id == t.id and m.status == "completed"
    assert m.content[0].text.value == "Second"
    listed = threads.messages.list(t.id)
    assert listed.data[0].id == m.id and len(listed.data) == 2
    assert [x.content[0].text.value for x in threads.messages.list(t.id, order="asc").data] == [
        "Hello",
        "Second",
    ]
    assert threads.messages.retrieve(m.id, thread_id=t.id).metadata == {"x": "y"}
    assert threads.messages.update(m.id, thread_id=t.id, metadata={"x": "z"}).metadata == {"x": "z"}
    gone = threads.messages.delete(m.id, thread_id=t.id)
    assert (gone.id, gone.deleted) == (m.id, True)
    with pytest.raises(openai.NotFoundError, match="No message found"):
        threads.messages.retrieve(m.id, thread_id=t.id)
    with pytest.raises(openai.BadRequestError) as err:
        threads.messages.create(t.id, role="system", content="x")  # type: ignore[arg-type]
    assert err.value.body["param"] == "role"

    assert threads.delete(t.id).deleted is True
    with pytest.raises(openai.NotFoundError, match="No thread found"):
        threads.retrieve(t.id)
    with pytest.raises(openai.NotFoundError):
        threads.messages.list(t.id)


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------


def test_run_completes_with_reply_steps_and_usage(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini", instructions="Be kind")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Hello there"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    assert run.id.startswith("run_") and run.status == "queued" and run.usage is None
    assert (run.model, run.instructions) == ("gpt-4o-mini", "Be kind")
    run = client.beta.threads.runs.poll(run.id, thread_id=t.id, poll_interval_ms=50)
    assert run.status == "completed"
    prompt = tokens("Be kind") + 4 + tokens("Hello there")
    completion = tokens(DEFAULT_REPLY)
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (prompt, completion)
    assert run.usage.total_tokens == prompt + completion

    messages = client.beta.threads.messages.list(t.id).data
    assert messages[0].role == "assistant" and messages[0].run_id == run.id
    assert messages[0].content[0].text.value == DEFAULT_REPLY
    assert [m.id for m in client.beta.threads.messages.list(t.id, run_id=run.id).data] == [
        messages[0].id
    ]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data
    assert len(steps) == 1 and steps[0].id.startswith("step_")
    assert steps[0].type == "message_creation" and steps[0].status == "completed"
    assert steps[0].step_details.message_creation.message_id == messages[0].id  # type: ignore[union-attr]
    assert steps[0].usage is not None and steps[0].usage.total_tokens == prompt + completion
    step = client.beta.threads.runs.steps.retrieve(steps[0].id, thread_id=t.id, run_id=run.id)
    assert step.id == steps[0].id
    assert [r.id for r in client.beta.threads.runs.list(t.id).data] == [run.id]
    assert client.beta.threads.runs.update(run.id, thread_id=t.id, metadata={"m": "1"}).metadata
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'completed'"):
        client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    with pytest.raises(openai.NotFoundError, match="No run found"):
        client.beta.threads.runs.retrieve("run_nope", thread_id=t.id)
    with pytest.raises(openai.NotFoundError, match="No assistant found"):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id="asst_nope")


def test_active_run_blocks_messages_and_runs_then_cancels(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    emu.configure(job_seconds=30)
    a = client.beta.assistants.create(model="gpt-4o-mini")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    with pytest.raises(openai.BadRequestError, match="while a run"):
        client.beta.threads.messages.create(t.id, role="user", content="more")
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    assert client.beta.threads.runs.cancel(run.id, thread_id=t.id).status == "cancelling"
    run = client.beta.threads.runs.retrieve(run.id, thread_id=t.id)
    assert run.status == "cancelled" and run.cancelled_at is not None
    client.beta.threads.messages.create(t.id, role="user", content="now it works")


def test_streamed_run_events_read_by_the_sdk(client: openai.OpenAI, emu: EmulatorServer) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=t.id, assistant_id=a.id, event_handler=handler
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert handler.names == STREAM_EVENTS
    assert "".join(handler.deltas) == DEFAULT_REPLY and handler.done_text == DEFAULT_REPLY
    assert final.status == "completed" and final.usage is not None
    assert final.usage.completion_tokens == tokens(DEFAULT_REPLY)
    assert client.beta.threads.runs.retrieve(final.id, thread_id=t.id).status == "completed"
    assert emu.stats.streams_completed == 1

    raw = httpx.post(
        emu.url(f"/v1/threads/{t.id}/runs"),
        json={"assistant_id": a.id, "stream": True},
        headers={"Authorization": "Bearer sk-test", "OpenAI-Beta": "assistants=v2"},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("event: done\ndata: [DONE]\n\n")


def test_create_thread_and_run_streamed(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini")
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=a.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        event_handler=handler,
    ) as stream:
        stream.until_done()
    assert handler.names == ["thread.created", *STREAM_EVENTS]
    polled = client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "Hi"}]}
    )
    assert polled.status == "completed"


def test_run_with_a_function_tool(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, poll_interval_ms=50
    )
    assert run.status == "requires_action" and run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "weather"
    assert call.function.arguments == '{"location":"Florence"}'
    with pytest.raises(openai.BadRequestError, match="Expected tool outputs"):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": "call_x", "output": "?"}]
        )
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=t.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "22C"}],
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    reply = "The tool returned: 22C"
    assert client.beta.threads.messages.list(t.id).data[0].content[0].text.value == reply
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].function.output == "22C"  # type: ignore[union-attr]
    base = 4 + tokens("Weather?")
    assert run.usage is not None
    assert run.usage.prompt_tokens == base + base + tokens("22C")
    assert run.usage.completion_tokens == tokens(call.function.arguments) + tokens(reply)
    with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": call.id, "output": "x"}]
        )
    none = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, tool_choice="none", poll_interval_ms=50
    )
    assert none.status == "completed"


def test_streamed_tool_call_and_streamed_outputs(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=t.id, assistant_id=a.id, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert first.names[-1] == "thread.run.requires_action"
    assert "thread.run.step.delta" in first.names
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=t.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        event_handler=second,
    ) as stream:
        stream.until_done()
    assert second.names[:3] == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
    ]
    assert second.names[-1] == "thread.run.completed"
    assert second.done_text == "The tool returned: sunny"


def test_run_stream_midstream_error(client: openai.OpenAI, emu: EmulatorServer) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    emu.configure(midstream_error=True)
    handler = Recorder()
    with (
        pytest.raises(openai.APIError, match="The server had an error"),
        client.beta.threads.runs.stream(
            thread_id=t.id, assistant_id=a.id, event_handler=handler
        ) as stream,
    ):
        stream.until_done()
    assert handler.names[-1] == "thread.message.delta"  # one delta, then the error
    assert handler.names.count("thread.message.delta") == 1
    run = client.beta.threads.runs.list(t.id).data[0]
    assert run.status == "failed" and run.last_error is not None


# ---------------------------------------------------------------------------------------------
# vector stores
# ---------------------------------------------------------------------------------------------


def test_vector_stores(client: openai.OpenAI) -> None:
    doc = client.files.create(file=("a.txt", io.BytesIO(b"alpha" * 10)), purpose="assistants")
    vs = client.vector_stores.create(name="docs", file_ids=[doc.id], metadata={"k": "v"})
    assert vs.id.startswith("vs_") and vs.status == "in_progress"
    assert vs.file_counts.in_progress == 1 and vs.usage_bytes == 0
    vs = wait_for(lambda: client.vector_stores.retrieve(vs.id), lambda v: v.status == "completed")
    assert vs.file_counts.completed == 1 and vs.usage_bytes == 50
    assert client.vector_stores.update(vs.id, name="renamed").name == "renamed"
    with_expiry = client.vector_stores.update(
        vs.id, expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert with_expiry.expires_at == with_expiry.last_active_at + 2 * 86400
    assert vs.id in [v.id for v in client.vector_stores.list().data]
    deleted = client.vector_stores.delete(vs.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (vs.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError, match="No vector store found"):
        client.vector_stores.retrieve(vs.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(file_ids=["file-nope"])


def test_vector_store_files_and_batches(client: openai.OpenAI) -> None:
    docs = [
        client.files.create(file=(f"{i}.txt", io.BytesIO(b"x" * (i + 1))), purpose="assistants")
        for i in range(3)
    ]
    vs = client.vector_stores.create(name="empty")
    assert vs.status == "completed" and vs.file_counts.total == 0
    vf = client.vector_stores.files.create(vector_store_id=vs.id, file_id=docs[0].id)
    assert (vf.id, vf.object, vf.status) == (docs[0].id, "vector_store.file", "in_progress")
    vf = client.vector_stores.files.poll(docs[0].id, vector_store_id=vs.id, poll_interval_ms=50)
    assert vf.status == "completed" and vf.usage_bytes == 1
    updated = client.vector_stores.files.update(
        docs[0].id, vector_store_id=vs.id, attributes={"lang": "en"}
    )
    assert updated.attributes == {"lang": "en"}
    assert [f.id for f in client.vector_stores.files.list(vs.id, filter="completed").data] == [
        docs[0].id
    ]
    batch = client.vector_stores.file_batches.create(
        vector_store_id=vs.id, file_ids=[docs[1].id, docs[2].id]
    )
    assert batch.object == "vector_store.files_batch" and batch.file_counts.total == 2
    batch = client.vector_stores.file_batches.poll(
        batch.id, vector_store_id=vs.id, poll_interval_ms=50
    )
    assert batch.status == "completed" and batch.file_counts.completed == 2
    in_batch = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id)
    assert sorted(f.id for f in in_batch.data) == sorted([docs[1].id, docs[2].id])
    assert client.vector_stores.retrieve(vs.id).usage_bytes == 1 + 2 + 3
    gone = client.vector_stores.files.delete(docs[0].id, vector_store_id=vs.id)
    assert (gone.id, gone.deleted) == (docs[0].id, True)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(docs[0].id, vector_store_id=vs.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=vs.id, file_id="file-nope")
