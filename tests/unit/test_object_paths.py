"""relay/object_paths.py: which object request a ``/v1/...`` path makes, and which object
ids a request body refers to."""

from __future__ import annotations

from typing import Any

import pytest

from relaygate.errors import InvalidRequest, NotFound
from relaygate.relay.object_paths import COLLECTIONS, ObjectPath, parse_path, references

# path -> (collection, kind, surface, root, sub, upstream)
SHAPES: dict[str, tuple[str, str, str, str | None, tuple[str, ...], str]] = {
    "/v1/files": ("files", "file", "files", None, (), "/files"),
    "/v1/files/": ("files", "file", "files", None, (), "/files"),
    "/v1/files/file-1": ("files", "file", "files", "file-1", (), "/files/file-1"),
    "/v1/files/file-1/content": (
        "files",
        "file",
        "files",
        "file-1",
        ("content",),
        "/files/file-1/content",
    ),
    "/v1/fine_tuning/jobs": (
        "fine_tuning/jobs",
        "fine_tuning.job",
        "fine_tuning",
        None,
        (),
        "/fine_tuning/jobs",
    ),
    "/v1/fine_tuning/jobs/ftjob-1/events": (
        "fine_tuning/jobs",
        "fine_tuning.job",
        "fine_tuning",
        "ftjob-1",
        ("events",),
        "/fine_tuning/jobs/ftjob-1/events",
    ),
    "/v1/fine_tuning/jobs/ftjob-1/checkpoints": (
        "fine_tuning/jobs",
        "fine_tuning.job",
        "fine_tuning",
        "ftjob-1",
        ("checkpoints",),
        "/fine_tuning/jobs/ftjob-1/checkpoints",
    ),
    "/v1/assistants/asst_1": (
        "assistants",
        "assistant",
        "assistants",
        "asst_1",
        (),
        "/assistants/asst_1",
    ),
    "/v1/threads": ("threads", "thread", "assistants", None, (), "/threads"),
    "/v1/threads/runs": ("threads/runs", "thread", "assistants", None, (), "/threads/runs"),
    "/v1/threads/thread_1/messages": (
        "threads",
        "thread",
        "assistants",
        "thread_1",
        ("messages",),
        "/threads/thread_1/messages",
    ),
    "/v1/threads/thread_1/runs": (
        "threads",
        "thread",
        "assistants",
        "thread_1",
        ("runs",),
        "/threads/thread_1/runs",
    ),
    "/v1/threads/thread_1/runs/run_1/steps": (
        "threads",
        "thread",
        "assistants",
        "thread_1",
        ("runs", "run_1", "steps"),
        "/threads/thread_1/runs/run_1/steps",
    ),
    "/v1/vector_stores": (
        "vector_stores",
        "vector_store",
        "vector_stores",
        None,
        (),
        "/vector_stores",
    ),
    "/v1/vector_stores/vs_1/files/file-2": (
        "vector_stores",
        "vector_store",
        "vector_stores",
        "vs_1",
        ("files", "file-2"),
        "/vector_stores/vs_1/files/file-2",
    ),
    "/v1/batches/batch_1/cancel": (
        "batches",
        "batch",
        "batches",
        "batch_1",
        ("cancel",),
        "/batches/batch_1/cancel",
    ),
    "/v1/videos/video_1/content": (
        "videos",
        "video",
        "videos",
        "video_1",
        ("content",),
        "/videos/video_1/content",
    ),
    "/videos/video_1": ("videos", "video", "videos", "video_1", (), "/videos/video_1"),
}


@pytest.mark.parametrize("path", sorted(SHAPES))
def test_shapes(path: str) -> None:
    op = parse_path(path)
    assert op is not None
    got = (op.collection, op.kind, op.surface, op.root, op.sub, op.upstream)
    assert got == SHAPES[path]


def test_every_collection_parses() -> None:
    for coll, (kind, surface) in COLLECTIONS.items():
        op = parse_path(f"/v1/{coll}/obj-1:x.y")
        assert op == ObjectPath(coll, kind, surface, "obj-1:x.y", (), f"/{coll}/obj-1:x.y")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/models",
        "/v1/fine_tuning",
        "/v1/fine_tuning/other",
        "/v1/fine_tuning/checkpoints/ckpt-1/permissions",
        "/v1/",
        "/v1",
        "/",
        "",
        "/v1/filesx",
        "/v1/Files",
    ],
)
def test_not_object_paths(path: str) -> None:
    assert parse_path(path) is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/file 1",
        "/v1/files/a/b c",
        "/v1/files//content",
        "/v1/files/fïle-1",
        "/v1/files/" + "a" * 161,
        "/v1/threads/thread_1/runs/run 1",
        "/v1/files/file-1%2Fx",
        "/v1/threads/runs/run_1",
        # dot segments would move the upstream path out of the object (URL normalization)
        "/v1/files/..",
        "/v1/files/.",
        "/v1/files/file-1/../../chat/completions",
        "/v1/threads/thread_1/runs/../../../completions",
        "/v1/vector_stores/vs_1/files/..",
    ],
)
def test_bad_ids_are_not_found(path: str) -> None:
    with pytest.raises(NotFound) as info:
        parse_path(path)
    assert info.value.http_status(True) == 404


def test_id_length_boundary() -> None:
    op = parse_path("/v1/files/" + "a" * 160)
    assert op is not None and op.root == "a" * 160
    op = parse_path("/v1/files/file-1...x")  # dots inside an id are fine
    assert op is not None and op.root == "file-1...x"


@pytest.mark.parametrize(
    ("path", "creates", "run_id", "creates_run"),
    [
        ("/v1/files", True, None, False),
        ("/v1/files/file-1", False, None, False),
        ("/v1/threads", True, None, False),
        ("/v1/threads/runs", False, None, True),
        ("/v1/threads/thread_1", False, None, False),
        ("/v1/threads/thread_1/runs", False, None, True),
        ("/v1/threads/thread_1/runs/run_1", False, "run_1", False),
        ("/v1/threads/thread_1/runs/run_1/cancel", False, "run_1", False),
        ("/v1/threads/thread_1/runs/run_1/steps/step_1", False, "run_1", False),
        ("/v1/threads/thread_1/messages", False, None, False),
        ("/v1/vector_stores/vs_1/runs/x", False, None, False),  # runs only under threads
        ("/v1/fine_tuning/jobs", True, None, False),
    ],
)
def test_properties(path: str, creates: bool, run_id: str | None, creates_run: bool) -> None:
    op = parse_path(path)
    assert op is not None
    assert (op.creates, op.run_id, op.creates_run) == (creates, run_id, creates_run)


# ---- references ----------------------------------------------------------------------------
def test_references_everywhere_they_occur() -> None:
    body = {
        "model": "gpt-4o",
        "training_file": "file-train",
        "validation_file": None,
        "assistant_id": "asst_1",
        "thread": {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_file", "image_file": {"file_id": "file-img"}}],
                    "attachments": [{"file_id": "file-att", "tools": [{"type": "file_search"}]}],
                }
            ],
            "tool_resources": {
                "code_interpreter": {"file_ids": ["file-c1", "file-c2", None]},
                "file_search": {
                    "vector_store_ids": ["vs_1"],
                    "vector_stores": [{"file_ids": ["file-v1"]}],
                },
            },
        },
    }
    assert references(body) == {
        "file-train",
        "asst_1",
        "file-img",
        "file-att",
        "file-c1",
        "file-c2",
        "vs_1",
        "file-v1",
    }


def test_references_of_bodies_without_any() -> None:
    assert references({}) == set()
    assert references({"model": "m", "input": [{"file": "x"}]}) == set()
    assert references(None) == set()
    assert references(["file_id"]) == set()
    assert references({"file_ids": [], "file_id": None}) == set()


def test_metadata_is_free_form() -> None:
    """OpenAI's ``metadata`` holds the caller's own key/value strings: a key named like a
    reference there names no object."""
    body = {"file_id": "file-1", "metadata": {"file_id": "my own id with spaces", "x": "y"}}
    assert references(body) == {"file-1"}
    nested = {"thread": {"metadata": {"assistant_id": "whatever"}}, "assistant_id": "asst_1"}
    assert references(nested) == {"asst_1"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"file_id": 5}, "file_id"),
        ({"file_id": True}, "file_id"),
        ({"file_id": {"id": "file-1"}}, "file_id"),
        ({"file_ids": ["file-1", 7]}, "file_ids"),
        ({"file_ids": [["file-1"]]}, "file_ids"),
        ({"training_file": "file 1"}, "training_file"),
        ({"training_file": ""}, "training_file"),
        ({"input_file_id": "../x"}, "input_file_id"),
        ({"input_file_id": ".."}, "input_file_id"),
        ({"thread_id": "t" * 161}, "thread_id"),
        ({"a": [{"b": {"vector_store_ids": ["vs 1"]}}]}, "vector_store_ids"),
    ],
)
def test_bad_references(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        references(body)
    assert info.value.param == param and info.value.http_status(True) == 400


def test_reference_count_cap() -> None:
    assert len(references({"file_ids": [f"file-{i}" for i in range(200)]})) == 200
    # repeats count once
    assert len(references({"file_ids": ["file-1"] * 1000})) == 1
    with pytest.raises(InvalidRequest, match="more than 200"):
        references({"file_ids": [f"file-{i}" for i in range(201)]})
    spread = {
        "a": {"file_ids": [f"a-{i}" for i in range(150)]},
        "b": [{"file_id": f"b-{i}"} for i in range(51)],
    }
    with pytest.raises(InvalidRequest, match="more than 200"):
        references(spread)


def test_deep_nesting_terminates() -> None:
    deep: Any = {"file_id": "file-deep"}
    for _ in range(5000):
        deep = {"x": [deep]}
    assert references(deep) == set()  # too deep to be a real reference; no RecursionError
    shallow: Any = {"file_id": "file-1"}
    for _ in range(5):
        shallow = {"x": [shallow]}
    assert references(shallow) == {"file-1"}
    loop: dict[str, Any] = {}
    loop["self"] = [loop]  # a cycle (not from JSON, but it must not hang either)
    assert references(loop) == set()
