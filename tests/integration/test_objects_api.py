"""OpenAI's stateful endpoints through the running gateway with the official openai SDK:
files (real multipart uploads, streamed downloads), fine-tuning jobs, assistants, threads,
messages and runs (a streaming run too), vector stores, batches and videos.

Two upstream channels (two emulators) and two users: every object goes back to the channel
that made it, a user never sees or touches the other's objects (the same 404 as an unknown
id), lists show only the caller's, and the deferred work is billed once when the gateway sees
it done (training tokens, run and batch tokens, video seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs

# the SDK marks the Assistants and Sora APIs deprecated; they are still OpenAI's API surface
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

UPLOAD_CAP = 512 * 1024
T = TypeVar("T")

PRICES = [
    {"model": "ft-base", "input": "1", "output": "2", "training": "30"},  # CNY per 1M tokens
    {"model": "house-gpt", "input": "3", "output": "5"},
    {"model": "house-video", "input": "0", "output": "0", "per_second": "0.5"},
]
MAPPING = {
    "ft-base": "gpt-4o-mini-2024-07-18",
    "house-gpt": "gpt-4o-mini",
    "house-video": "sora-2",
}


class World:
    def __init__(self, gw: Gateway, emus: list[EmulatorServer], users: list[tuple[int, str]]):
        self.gw, self.emus = gw, emus
        self.uid, key = users[0]
        self.uid2, key2 = users[1]
        self.key = key
        self.a = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        self.b = openai.OpenAI(api_key=key2, base_url=gw.base_url, max_retries=0)
        self.cids: list[int] = []

    def paths(self, i: int) -> list[str]:
        return [r["path"] for r in self.emus[i].stats.snapshot()["recorded"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = [
        EmulatorServer("openai", knobs=Knobs(api_key=f"sk-up-{i}", job_seconds=0.3)).start()
        for i in (1, 2)
    ]
    gw = Gateway(
        Path(tmp_path_factory.mktemp("objects")),
        {"RELAYGATE_MAX_UPLOAD_BYTES": str(UPLOAD_CAP), "RELAYGATE_USD_RATE": "7.2"},
    )
    try:
        gw.start()
        w_cids = []
        for i, emu in enumerate(emus, 1):
            w_cids.append(
                gw.create_channel(
                    name=f"openai-{i}",
                    provider="openai_compat",
                    profile="openai",
                    base_url=emu.base_url,
                    keys=[f"sk-up-{i}"],
                    models=list(MAPPING),
                    model_mapping=MAPPING,
                    priority=10 - i,  # channel 1 is first choice for new objects
                )
            )
        for body in PRICES:
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **body})
        users = []
        for name in ("alice", "bob"):
            uid = gw.create_user(name, balance="100")
            users.append((uid, gw.create_key(uid, name=name)))
        time.sleep(1.2)
        world = World(gw, emus, users)
        world.cids = w_cids
        yield world
    finally:
        gw.stop()
        for emu in emus:
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus:
        emu.stats.reset()


def log_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request log row for {request_id}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)


def charged(gw: Gateway, user_id: int, since: int) -> list[dict[str, Any]]:
    """The user's log rows with a charge, newer than row id ``since``."""
    time.sleep(0.6)  # the request-log writer flushes
    rows = gw.admin("GET", f"/logs?user_id={user_id}&limit=200")["data"]
    return [r for r in rows if r["id"] > since and Decimal(r["cost"]) > 0]


def last_row_id(gw: Gateway) -> int:
    time.sleep(0.6)
    rows = gw.admin("GET", "/logs?limit=1")["data"]
    return int(rows[0]["id"]) if rows else 0


def poll(get: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def jsonl(n: int, model: str = "house-gpt") -> bytes:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(n)
    ]  # fmt: skip
    return "\n".join(json.dumps(x) for x in lines).encode()


def training(n: int) -> bytes:
    rows = [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(n)]  # fmt: skip
    return "\n".join(json.dumps(r) for r in rows).encode()


# ---- files -------------------------------------------------------------------------------
def test_file_upload_list_retrieve_download_delete(world: World) -> None:
    payload = bytes(range(256)) * 800  # 200 KiB: streamed both ways
    f = world.a.files.create(file=("data.bin", payload, "application/octet-stream"),
                             purpose="user_data")  # fmt: skip
    assert f.id.startswith("file-") and f.bytes == len(payload)
    assert world.paths(0)[-1] == "/v1/files"  # channel 1: the first choice
    assert f.id in [x.id for x in world.a.files.list()]
    assert world.a.files.retrieve(f.id).filename == "data.bin"
    assert world.a.files.content(f.id).content == payload
    assert world.a.files.delete(f.id).deleted is True
    assert f.id not in [x.id for x in world.a.files.list()]
    with pytest.raises(openai.NotFoundError):
        world.a.files.retrieve(f.id)


def test_another_users_objects_are_invisible_and_untouchable(world: World) -> None:
    f = world.a.files.create(file=("mine.jsonl", training(3), "application/jsonl"),
                             purpose="fine-tune")  # fmt: skip
    for call in (
        lambda: world.b.files.retrieve(f.id),
        lambda: world.b.files.content(f.id),
        lambda: world.b.files.delete(f.id),
        lambda: world.b.fine_tuning.jobs.create(model="ft-base", training_file=f.id),
    ):
        with pytest.raises(openai.NotFoundError) as exc:
            call()
        assert exc.value.body["code"] == "object_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        world.b.files.retrieve("file-doesnotexist")
    assert unknown.value.body == exc.value.body | {  # type: ignore[operator]
        "message": unknown.value.body["message"]  # type: ignore[index]
    }  # the same answer as for an id that exists but is someone else's
    assert f.id not in [x.id for x in world.b.files.list()]
    assert f.id in [x.id for x in world.a.files.list()]
    assert world.a.files.retrieve(f.id).id == f.id  # untouched


def test_objects_stay_on_the_channel_that_made_them(world: World) -> None:
    gw = world.gw
    gw.admin("PATCH", f"/channels/{world.cids[0]}", {"status": "disabled"})
    try:
        time.sleep(1.2)
        f = world.a.files.create(file=("t.jsonl", training(4), "application/jsonl"),
                                 purpose="fine-tune")  # fmt: skip
        assert world.paths(1)[-1] == "/v1/files"
    finally:
        gw.admin("PATCH", f"/channels/{world.cids[0]}", {"status": "enabled"})
    time.sleep(1.2)
    world.emus[1].stats.reset()
    world.a.files.retrieve(f.id)
    job = world.a.fine_tuning.jobs.create(model="ft-base", training_file=f.id)
    world.a.fine_tuning.jobs.retrieve(job.id)
    assert world.paths(0) == []  # channel 1 is first choice, yet saw none of it
    assert world.paths(1) == [
        f"/v1/files/{f.id}",
        "/v1/fine_tuning/jobs",
        f"/v1/fine_tuning/jobs/{job.id}",
    ]
    sent = world.emus[1].stats.snapshot()["recorded"][1]["body"]
    assert sent["model"] == "gpt-4o-mini-2024-07-18"  # the channel's upstream name
    # an object of channel 2 with one of channel 1 in the same request: refused
    g = world.a.files.create(file=("u.jsonl", training(2), "application/jsonl"),
                             purpose="fine-tune")  # fmt: skip
    assert world.paths(0)[-1] == "/v1/files"
    with pytest.raises(openai.APIStatusError) as exc:
        world.a.fine_tuning.jobs.create(model="ft-base", training_file=f.id, validation_file=g.id)
    assert exc.value.body["code"] == "object_channel_mismatch"  # type: ignore[index]


def test_upload_over_the_cap_leaves_nothing_behind(world: World) -> None:
    before = [x.id for x in world.a.files.list()]
    r = httpx.post(world.gw.base_url + "/files", headers={"Authorization": f"Bearer {world.key}"},
                   data={"purpose": "assistants"},
                   files={"file": ("big.bin", b"x" * (UPLOAD_CAP + 10), "application/octet-stream")},
                   timeout=10)  # fmt: skip
    assert r.status_code == 403 and "larger than" in r.json()["error"]["message"]
    assert world.paths(0) == [] and world.paths(1) == []
    assert [x.id for x in world.a.files.list()] == before
    r = httpx.post(world.gw.base_url + "/files", headers={"Authorization": f"Bearer {world.key}",
                   "Content-Type": "multipart/form-data; boundary=zz"}, content=b"--zz\r\nbad",
                   timeout=10)  # fmt: skip
    assert r.status_code == 403 and "malformed" in r.json()["error"]["message"]


# ---- fine-tuning -------------------------------------------------------------------------
def test_fine_tuning_job_is_billed_its_training_tokens_once(world: World) -> None:
    since = last_row_id(world.gw)
    f = world.a.files.create(file=("t.jsonl", training(20), "application/jsonl"),
                             purpose="fine-tune")  # fmt: skip
    job = world.a.fine_tuning.jobs.create(model="ft-base", training_file=f.id)
    done = poll(
        lambda: world.a.fine_tuning.jobs.retrieve(job.id), lambda j: j.status == "succeeded"
    )
    assert done.trained_tokens and done.fine_tuned_model
    world.a.fine_tuning.jobs.retrieve(job.id)  # seen done again: no second charge
    assert job.id in [j.id for j in world.a.fine_tuning.jobs.list()]
    assert job.id not in [j.id for j in world.b.fine_tuning.jobs.list()]
    assert world.a.fine_tuning.jobs.list_events(job.id).data
    assert world.a.fine_tuning.jobs.checkpoints.list(job.id).data is not None
    rows = charged(world.gw, world.uid, since)
    assert len(rows) == 1
    assert int(Decimal(rows[0]["cost"]) * 1_000_000) == 30 * done.trained_tokens
    with pytest.raises(openai.BadRequestError):
        world.a.fine_tuning.jobs.cancel(job.id)  # finished: the upstream's 400 passed on


def test_fine_tuning_job_can_be_cancelled(world: World) -> None:
    world.emus[0].configure(job_seconds=30)
    try:
        f = world.a.files.create(file=("t.jsonl", training(2), "application/jsonl"),
                                 purpose="fine-tune")  # fmt: skip
        job = world.a.fine_tuning.jobs.create(model="ft-base", training_file=f.id)
        assert world.a.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    finally:
        world.emus[0].configure(job_seconds=0.3)


# ---- assistants, threads, runs -------------------------------------------------------------
def test_assistant_thread_messages_and_a_polled_run_billed_once(world: World) -> None:
    since = last_row_id(world.gw)
    asst = world.a.beta.assistants.create(model="house-gpt", name="helper")
    thread = world.a.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    world.a.beta.threads.messages.create(thread.id, role="user", content="and more")
    run = world.a.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                                    poll_interval_ms=100)  # fmt: skip
    assert run.status == "completed" and run.usage is not None
    world.a.beta.threads.runs.retrieve(run.id, thread_id=thread.id)  # seen again: no new charge
    msgs = world.a.beta.threads.messages.list(thread.id).data
    assert any(m.role == "assistant" for m in msgs)
    assert world.a.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data is not None
    assert asst.id in [a.id for a in world.a.beta.assistants.list()]
    assert asst.id not in [a.id for a in world.b.beta.assistants.list()]
    with pytest.raises(openai.NotFoundError):
        world.b.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        world.b.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    rows = [r for r in charged(world.gw, world.uid, since) if r["endpoint"] == "threads"]
    assert len(rows) == 1
    u = run.usage
    assert rows[0]["prompt_tokens"] == u.prompt_tokens
    assert (
        int(Decimal(rows[0]["cost"]) * 1_000_000) == 3 * u.prompt_tokens + 5 * u.completion_tokens
    )
    assert world.a.beta.assistants.delete(asst.id).deleted is True


def test_streaming_run_is_relayed_event_by_event_and_billed(world: World) -> None:
    since = last_row_id(world.gw)
    asst = world.a.beta.assistants.create(model="house-gpt")
    thread = world.a.beta.threads.create(messages=[{"role": "user", "content": "stream please"}])
    events: list[str] = []
    with world.a.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as stream:
        for event in stream:
            events.append(event.event)
        final = stream.get_final_run()
        text = "".join(
            c.text.value for m in stream.get_final_messages() for c in m.content if c.type == "text"
        )
    assert events[0] == "thread.run.created" and events[-1] == "thread.run.completed"
    assert "thread.message.delta" in events and text
    assert final.usage is not None
    rows = [r for r in charged(world.gw, world.uid, since) if r["endpoint"] == "threads"]
    assert len(rows) == 1 and rows[0]["completion_tokens"] == final.usage.completion_tokens
    # the run is the owner's: retrieving it later does not charge again
    world.a.beta.threads.runs.retrieve(final.id, thread_id=thread.id)
    rows = [r for r in charged(world.gw, world.uid, since) if r["endpoint"] == "threads"]
    assert len(rows) == 1


def test_create_thread_and_run_records_the_new_thread(world: World) -> None:
    asst = world.a.beta.assistants.create(model="house-gpt")
    run = world.a.beta.threads.create_and_run(assistant_id=asst.id,
                                              thread={"messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert world.a.beta.threads.retrieve(run.thread_id).id == run.thread_id
    with pytest.raises(openai.NotFoundError):
        world.b.beta.threads.retrieve(run.thread_id)


# ---- vector stores -------------------------------------------------------------------------
def test_vector_store_with_files(world: World) -> None:
    f = world.a.files.create(file=("doc.txt", b"relaygate routes requests", "text/plain"),
                             purpose="assistants")  # fmt: skip
    vs = world.a.vector_stores.create(name="docs", file_ids=[f.id])
    g = world.a.files.create(file=("doc2.txt", b"more text", "text/plain"), purpose="assistants")
    world.a.vector_stores.files.create(vector_store_id=vs.id, file_id=g.id)
    ids = {x.id for x in world.a.vector_stores.files.list(vector_store_id=vs.id)}
    assert {f.id, g.id} <= ids
    assert vs.id in [v.id for v in world.a.vector_stores.list()]
    assert vs.id not in [v.id for v in world.b.vector_stores.list()]
    with pytest.raises(openai.NotFoundError):
        world.b.vector_stores.files.create(vector_store_id=vs.id, file_id=g.id)
    h = world.b.files.create(file=("b.txt", b"bob's", "text/plain"), purpose="assistants")
    with pytest.raises(openai.NotFoundError):  # bob's file into alice's store: neither is his
        world.a.vector_stores.files.create(vector_store_id=vs.id, file_id=h.id)
    assert world.a.vector_stores.delete(vs.id).deleted is True


# ---- batches -------------------------------------------------------------------------------
def test_batch_is_billed_at_its_input_files_model_and_its_output_is_the_owners(
    world: World,
) -> None:
    since = last_row_id(world.gw)
    f = world.a.files.create(file=("in.jsonl", jsonl(3), "application/jsonl"), purpose="batch")
    batch = world.a.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")  # fmt: skip
    done = poll(lambda: world.a.batches.retrieve(batch.id), lambda b: b.status == "completed")
    assert done.output_file_id
    out = world.a.files.content(done.output_file_id).text
    assert len(out.strip().splitlines()) == 3
    with pytest.raises(openai.NotFoundError):
        world.b.files.content(done.output_file_id)
    world.a.batches.retrieve(batch.id)
    rows = [r for r in charged(world.gw, world.uid, since) if r["endpoint"] == "batches"]
    assert len(rows) == 1 and rows[0]["model"] == "house-gpt"
    usage = done.usage
    assert usage is not None
    assert (
        int(Decimal(rows[0]["cost"]) * 1_000_000)
        == 3 * usage.input_tokens + 5 * usage.output_tokens
    )
    assert batch.id in [b.id for b in world.a.batches.list()]
    assert batch.id not in [b.id for b in world.b.batches.list()]


# ---- videos -------------------------------------------------------------------------------
def test_video_job_is_billed_by_seconds_once_and_its_content_streams(world: World) -> None:
    since = last_row_id(world.gw)
    v = world.a.videos.create(model="house-video", prompt="a lighthouse at dusk", seconds="8")
    assert v.model == "sora-2"  # the SDK sends a multipart form: its model field was mapped
    done = poll(lambda: world.a.videos.retrieve(v.id), lambda x: x.status == "completed")
    assert done.status == "completed"
    content = world.a.videos.download_content(v.id).content
    assert len(content) > 1000
    world.a.videos.retrieve(v.id)
    rows = [r for r in charged(world.gw, world.uid, since) if r["endpoint"] == "videos"]
    assert len(rows) == 1
    assert int(Decimal(rows[0]["cost"]) * 1_000_000) == 8 * 500_000  # 8 s × 0.5 CNY
    assert v.id in [x.id for x in world.a.videos.list()]
    with pytest.raises(openai.NotFoundError):
        world.b.videos.download_content(v.id)
    assert world.a.videos.delete(v.id).deleted is True


def test_unknown_ids_and_paths(world: World) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        world.a.beta.threads.retrieve("thread_nope")
    assert exc.value.body["code"] == "object_not_found"  # type: ignore[index]
    r = httpx.get(
        world.gw.base_url + "/files/bad%20id", headers={"Authorization": f"Bearer {world.key}"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "object_not_found"
    r = httpx.get(
        world.gw.base_url + "/files?limit=0", headers={"Authorization": f"Bearer {world.key}"}
    )
    assert r.status_code == 403 and r.json()["error"]["param"] == "limit"
    r = httpx.put(world.gw.base_url + "/files", headers={"Authorization": f"Bearer {world.key}"})
    assert r.status_code == 405
    r = httpx.get(world.gw.base_url + "/files")
    assert r.status_code == 401


def test_work_charged_later_needs_a_balance_to_start(world: World) -> None:
    uid = world.gw.create_user("broke", balance=None)
    broke = openai.OpenAI(api_key=world.gw.create_key(uid), base_url=world.gw.base_url,
                          max_retries=0)  # fmt: skip
    f = broke.files.create(file=("t.jsonl", training(2), "application/jsonl"), purpose="fine-tune")
    asst = broke.beta.assistants.create(model="house-gpt")  # free: allowed
    thread = broke.beta.threads.create()
    world.emus[0].stats.reset()
    for call in (
        lambda: broke.fine_tuning.jobs.create(model="ft-base", training_file=f.id),
        lambda: broke.videos.create(model="house-video", prompt="x", seconds="4"),
        lambda: broke.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id),
    ):
        with pytest.raises(openai.APIStatusError) as exc:
            call()
        assert exc.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert world.paths(0) == [] and world.paths(1) == []


def test_a_run_may_name_only_models_its_channel_serves(world: World) -> None:
    asst = world.a.beta.assistants.create(model="house-gpt")
    thread = world.a.beta.threads.create()
    with pytest.raises(openai.APIStatusError) as exc:
        world.a.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id,
                                         model="gpt-4.5-preview")  # fmt: skip
    assert exc.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_cancelling_a_run_needs_no_balance(world: World) -> None:
    world.emus[0].configure(job_seconds=30)
    try:
        uid = world.gw.create_user("spent", balance="0.01")
        spent = openai.OpenAI(api_key=world.gw.create_key(uid), base_url=world.gw.base_url,
                              max_retries=0)  # fmt: skip
        asst = spent.beta.assistants.create(model="house-gpt")
        thread = spent.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = spent.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
        deadline = time.monotonic() + 15
        while True:  # the worker gives its idle budget lease back (after ~2 s idle)
            try:
                world.gw.admin("POST", f"/users/{uid}/balance",
                               {"amount": "-0.01", "reason": "spent"})  # fmt: skip
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the budget lease was never given back"
                time.sleep(0.5)
        assert world.gw.balance(uid)["balance_units"] == 0
        with pytest.raises(openai.APIStatusError) as exc:  # no new work ...
            spent.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
        assert exc.value.body["code"] == "insufficient_quota"  # type: ignore[index]
        cancelled = spent.beta.threads.runs.cancel(run.id, thread_id=thread.id)  # ... but this
        assert cancelled.status in ("cancelling", "cancelled")
    finally:
        world.emus[0].configure(job_seconds=0.3)
