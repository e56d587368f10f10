"""The OpenAI emulator's stateful object endpoints, driven with the official ``openai`` SDK:
files, fine-tuning jobs, batches, videos, and the failure knobs on them.

Assistants, threads, runs and vector stores: ``test_emulator_assistants.py``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from relaygate.emulator import DEFAULT_REPLY, EmulatorServer, Knobs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # beta / Sora SDK calls

TRAIN = (
    b'{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}\n'
    b'{"messages":[{"role":"user","content":"Bye"},{"role":"assistant","content":"Ciao"}]}\n'
)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai", knobs=Knobs(job_seconds=0.2)) as server:
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


def upload(client: openai.OpenAI, data: bytes, purpose: Any, name: str = "data.jsonl") -> Any:
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose)


def batch_line(custom_id: str, model: str = "gpt-4o-mini", text: str = "Hello there") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line).encode() + b"\n"


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def test_files_upload_list_retrieve_content_delete(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    big = b"".join(b'{"n": %d}\n' % i for i in range(5000))  # > 16 KiB: several chunks
    f = upload(client, big, "batch", "big.jsonl")
    assert f.id.startswith("file-") and f.object == "file"
    assert (f.bytes, f.filename, f.purpose, f.status) == (
        len(big),
        "big.jsonl",
        "batch",
        "processed",
    )
    g = client.files.create(
        file=("t.jsonl", io.BytesIO(TRAIN)),
        purpose="fine-tune",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert g.expires_at == g.created_at + 3600

    assert client.files.retrieve(f.id).bytes == len(big)
    listed = client.files.list()
    assert [x.id for x in listed.data][:2] == [g.id, f.id]  # newest first
    assert [x.id for x in client.files.list(purpose="fine-tune").data] == [g.id]
    page = client.files.list(limit=1, order="asc")
    assert page.has_more is True and page.data[0].id == f.id
    assert client.files.list(limit=1, order="asc", after=f.id).data[0].id == g.id

    raw = client.files.with_raw_response.content(f.id)
    assert raw.http_response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in raw.http_response.headers
    assert raw.content == big

    deleted = client.files.delete(f.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f.id, "file", True)
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(f.id)
    assert err.value.body == {
        "message": f"No such File object: {f.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(f.id)


def test_files_refusals(client: openai.OpenAI, emu: EmulatorServer) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, b"x", "nonsense")
    assert err.value.body["param"] == "purpose"
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        upload(client, TRAIN, "fine-tune", "train.txt")
    with pytest.raises(openai.BadRequestError, match=r"expires_after\.seconds"):
        client.files.create(
            file=("a.jsonl", io.BytesIO(b"{}")),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 60},
        )
    doc = upload(client, b"notes", "assistants", "notes.txt")
    with pytest.raises(openai.BadRequestError, match="Not allowed to download"):
        client.files.content(doc.id)
    # a JSON body is not an upload; no API key is refused first
    headers = {"Authorization": "Bearer sk-test"}
    resp = httpx.post(emu.url("/v1/files"), json={"purpose": "batch"}, headers=headers)
    assert resp.status_code == 400 and "multipart/form-data" in resp.json()["error"]["message"]
    assert httpx.get(emu.url("/v1/files")).status_code == 401


def test_two_emulators_hand_out_different_ids(client: openai.OpenAI) -> None:
    with (
        EmulatorServer("openai") as other,
        openai.OpenAI(base_url=other.base_url, api_key="sk-test", max_retries=0) as c2,
    ):
        a = upload(client, TRAIN, "fine-tune")
        b = upload(c2, TRAIN, "fine-tune")
        assert a.id != b.id and a.id[:13] != b.id[:13]  # the random per-server part
        with pytest.raises(openai.NotFoundError):
            c2.files.retrieve(a.id)


def test_only_the_openai_emulator_serves_objects() -> None:
    with EmulatorServer("deepseek") as ds:
        resp = httpx.get(ds.url("/v1/files"), headers={"Authorization": "Bearer sk-test"})
        assert resp.status_code == 404


# ---------------------------------------------------------------------------------------------
# fine-tuning
# ---------------------------------------------------------------------------------------------


def test_fine_tuning_job_succeeds_with_deterministic_results(client: openai.OpenAI) -> None:
    train = upload(client, TRAIN, "fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=train.id,
        suffix="mine",
        hyperparameters={"n_epochs": 2},
    )
    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    assert job.trained_tokens is None and job.fine_tuned_model is None
    job = wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.finished_at)
    assert job.status == "succeeded"
    assert job.trained_tokens == 2 * ((len(TRAIN) + 3) // 4)
    assert job.fine_tuned_model.startswith("ft:gpt-4o-mini:emulator:mine:")
    assert job.hyperparameters.n_epochs == 2

    events = client.fine_tuning.jobs.list_events(job.id).data
    assert all(e.id.startswith("ftevent-") for e in events)
    messages = [e.message for e in events]
    assert messages[-1] == f"Created fine-tuning job: {job.id}"  # newest first
    assert messages[0] == "The job has successfully completed"
    assert "Step 4/4: training loss=0.3333" in messages
    assert len(client.fine_tuning.jobs.list_events(job.id, limit=2).data) == 2

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [4, 2]
    assert checkpoints[0].id.startswith("ftckpt-")
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-4"
    metrics = client.files.content(job.result_files[0]).read().decode()
    assert metrics.splitlines()[0].startswith("step,train_loss")

    assert job.id in [j.id for j in client.fine_tuning.jobs.list().data]
    with pytest.raises(openai.BadRequestError, match="succeeded"):
        client.fine_tuning.jobs.cancel(job.id)


def test_fine_tuning_statuses_move_in_order(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(job_seconds=0.6)
    train = upload(client, TRAIN, "fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)
    order = ["validating_files", "queued", "running", "succeeded"]
    seen = [job.status]
    while seen[-1] != "succeeded":
        time.sleep(0.04)
        status = client.fine_tuning.jobs.retrieve(job.id).status
        if status != seen[-1]:
            seen.append(status)
    assert seen == sorted(seen, key=order.index) and len(seen) >= 3


def test_fine_tuning_cancel_and_refusals(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(job_seconds=30)
    train = upload(client, TRAIN, "fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"

    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")
    assert err.value.body["param"] == "training_file"
    batch_file = upload(client, b"{}\n", "batch")
    with pytest.raises(openai.BadRequestError, match="expected 'fine-tune'"):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=batch_file.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.list_events("ftjob-nope")


def test_fine_tuning_job_fails_on_invalid_training_data(client: openai.OpenAI) -> None:
    bad = upload(client, b'{"messages": []}\nnot json\n', "fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=bad.id)
    job = wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.finished_at)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error.code == "invalid_training_file" and "Line 2" in job.error.message


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------


def test_batch_completes_with_output_error_file_and_usage(client: openai.OpenAI) -> None:
    data = batch_line("a") + batch_line("b", text="x" * 40) + batch_line("c", model="error-429")
    infile = upload(client, data, "batch")
    batch = client.batches.create(
        input_file_id=infile.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.id.startswith("batch_") and batch.status == "validating"
    batch = wait_for(lambda: client.batches.retrieve(batch.id), lambda b: b.completed_at)
    assert batch.status == "completed" and batch.model == "gpt-4o-mini"
    assert (batch.request_counts.total, batch.request_counts.completed) == (3, 2)
    assert batch.request_counts.failed == 1

    lines = [json.loads(x) for x in client.files.content(batch.output_file_id).read().splitlines()]
    assert [x["custom_id"] for x in lines] == ["a", "b"]
    reply_tokens = (len(DEFAULT_REPLY) + 3) // 4
    prompts = [4 + (len("Hello there") + 3) // 4, 4 + 10]
    for line, prompt in zip(lines, prompts, strict=True):
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200
        assert body["choices"][0]["message"]["content"] == DEFAULT_REPLY
        assert body["usage"]["prompt_tokens"] == prompt
        assert body["usage"]["completion_tokens"] == reply_tokens
    assert batch.usage.input_tokens == sum(prompts)
    assert batch.usage.output_tokens == 2 * reply_tokens
    assert batch.usage.total_tokens == sum(prompts) + 2 * reply_tokens

    errors = client.files.content(batch.error_file_id).read().splitlines()
    assert json.loads(errors[0])["response"]["status_code"] == 429
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert batch.id in [b.id for b in client.batches.list().data]
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.batches.cancel(batch.id)


def test_batch_embeddings_usage(client: openai.OpenAI) -> None:
    line = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings"}
    line["body"] = {"model": "text-embedding-3-small", "input": ["abcd", "abcdefgh"]}
    infile = upload(client, json.dumps(line).encode(), "batch")
    batch = client.batches.create(
        input_file_id=infile.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    batch = wait_for(lambda: client.batches.retrieve(batch.id), lambda b: b.completed_at)
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (3, 0)
    out = json.loads(client.files.content(batch.output_file_id).read())
    assert len(out["response"]["body"]["data"]) == 2


def test_batch_cancel_and_refusals(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(job_seconds=30)
    infile = upload(client, batch_line("a"), "batch")
    batch = client.batches.create(
        input_file_id=infile.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelled"

    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    tuning = upload(client, TRAIN, "fine-tune")
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        client.batches.create(
            input_file_id=tuning.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=infile.id, endpoint="/v1/nope", completion_window="24h")
    assert err.value.body["param"] == "endpoint"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_batch_with_bad_lines_fails_validation(client: openai.OpenAI) -> None:
    data = batch_line("a") + batch_line("a") + b"nope\n"
    infile = upload(client, data, "batch")
    batch = client.batches.create(
        input_file_id=infile.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    batch = wait_for(lambda: client.batches.retrieve(batch.id), lambda b: b.failed_at)
    assert batch.status == "failed" and batch.output_file_id is None
    codes = [(e.code, e.line) for e in batch.errors.data]
    assert ("mismatched_endpoint", 1) in codes
    assert ("duplicate_custom_id", 2) in codes
    assert ("invalid_json_line", 3) in codes


# ---------------------------------------------------------------------------------------------
# videos
# ---------------------------------------------------------------------------------------------


def test_video_lifecycle_and_content(client: openai.OpenAI, emu: EmulatorServer) -> None:
    video = client.videos.create(prompt="A cat on a skateboard", seconds="8", size="1280x720")
    assert video.id.startswith("video_") and video.status == "queued" and video.progress == 0
    assert (video.model, video.seconds, video.size) == ("sora-2", "8", "1280x720")
    video = wait_for(lambda: client.videos.retrieve(video.id), lambda v: v.status == "completed")
    assert video.progress == 100 and video.expires_at == video.completed_at + 3600

    raw = client.videos.with_raw_response.download_content(video.id)
    assert raw.http_response.headers["content-type"] == "video/mp4"
    data = raw.content
    assert len(data) == 8 * 16384 and data[4:8] == b"ftyp" and data[28:32] == b"mdat"
    assert client.videos.download_content(video.id).read() == data  # deterministic
    thumb = client.videos.with_raw_response.download_content(video.id, variant="thumbnail")
    assert thumb.http_response.headers["content-type"] == "image/webp"
    assert thumb.content[:4] == b"RIFF"

    remix = client.videos.remix(video.id, prompt="Now at night")
    assert remix.remixed_from_video_id == video.id and remix.seconds == "8"
    assert [v.id for v in client.videos.list().data] == [remix.id, video.id]
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)


def test_video_refusals_and_json_create(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(job_seconds=30)
    video = client.videos.create(prompt="slow")
    with pytest.raises(openai.NotFoundError, match="not ready"):
        client.videos.download_content(video.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt="x", seconds="5")  # type: ignore[arg-type]
    assert err.value.body["param"] == "seconds"
    with pytest.raises(openai.BadRequestError, match="Supported values for sora-2 are"):
        client.videos.create(prompt="x", model="sora-2", size="1792x1024")
    pro = client.videos.create(prompt="x", model="sora-2-pro", size="1792x1024")
    assert pro.size == "1792x1024"
    resp = httpx.post(
        emu.url("/v1/videos"),
        json={"prompt": "json body", "seconds": "12"},
        headers={"Authorization": "Bearer sk-test"},
    )
    assert resp.status_code == 200 and resp.json()["seconds"] == "12"


# ---------------------------------------------------------------------------------------------
# failure knobs
# ---------------------------------------------------------------------------------------------


def test_failure_knobs_apply_to_object_endpoints(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    emu.configure(fail_status=500, fail_times=1, retry_after=2)
    with pytest.raises(openai.InternalServerError) as err:
        client.files.list()
    assert err.value.response.headers["retry-after"] == "2"
    client.files.list()  # only one failure

    train = upload(client, TRAIN, "fine-tune")
    with pytest.raises(openai.RateLimitError):
        client.fine_tuning.jobs.create(model="error-429", training_file=train.id)
    with pytest.raises(openai.RateLimitError):
        client.videos.create(prompt="x", model="error-429")

    emu.reset()
    emu.configure(latency_ms=150)
    start = time.monotonic()
    client.files.retrieve(train.id)
    assert time.monotonic() - start >= 0.15


def test_hang_knob_holds_object_requests(emu: EmulatorServer) -> None:
    emu.configure(hang=True)
    with (
        openai.OpenAI(base_url=emu.base_url, api_key="sk-test", max_retries=0, timeout=0.3) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.batches.list()
