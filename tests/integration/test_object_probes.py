"""Hostile requests on the object endpoints (files, fine-tuning jobs, assistants, threads and
runs, vector stores, batches) through the running gateway: ids with path tricks, references
of the wrong type or to another user's objects, methods OpenAI's API does not have, list
parameters that are garbage, JSON nested too deep, models a body names that the gateway does
not serve there. Each is refused in the error table's shape before the upstream sees
anything, and nothing is created: the caller's lists are unchanged.

The world (two emulator channels, alice and bob, a key of alice's limited to one model) is
``probe_world.py``'s; raw paths go out over a plain socket so nothing normalises them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from probe_world import BETA, World, assert_error, raw_http, start_world

COLLECTIONS = ["files", "fine_tuning/jobs", "assistants", "threads", "vector_stores", "batches"]


@dataclass
class Objects:
    """Alice's objects (and bob's) every probe points at."""

    file: str
    jsonl: str
    asst: str
    thread: str
    vs: str
    bob_file: str
    bob_asst: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start_world(tmp_path_factory.mktemp("object-probes"))


def _created(world: World, path: str, body: dict[str, Any], key: str | None = None) -> str:
    r = world.post(path, key, json=body, headers=BETA)
    assert r.status_code == 200, r.text
    oid: str = r.json()["id"]
    return oid


@pytest.fixture(scope="module")
def objs(world: World) -> Objects:
    jsonl = b'{"messages": [{"role": "user", "content": "q"}]}'
    r = world.post("/files", data={"purpose": "fine-tune"},
                   files={"file": ("t.jsonl", jsonl, "application/jsonl")})  # fmt: skip
    assert r.status_code == 200, r.text
    return Objects(
        file=world.upload(),
        jsonl=r.json()["id"],
        asst=_created(world, "/assistants", {"model": "house-gpt"}),
        thread=_created(world, "/threads", {}),
        vs=_created(world, "/vector_stores", {"name": "docs"}),
        bob_file=world.upload(world.key2, "bob.txt", b"bob's"),
        bob_asst=_created(world, "/assistants", {"model": "house-gpt"}, world.key2),
    )


@pytest.fixture
def before(world: World, objs: Objects) -> Iterator[dict[str, list[str]]]:
    """Alice's and bob's lists before the test; after it, the same and no upstream call."""
    for emu in world.emus:
        emu.reset(knobs=True, stats=True)
    lists = {c: world.ids(c) for c in COLLECTIONS} | {"bob": world.ids("files", world.key2)}
    yield lists
    assert world.paths() == [], "the upstream saw a refused request"
    after = {c: world.ids(c) for c in COLLECTIONS} | {"bob": world.ids("files", world.key2)}
    assert after == lists, "a refused request left an object behind"


# ---- ids with path tricks ------------------------------------------------------------------
TRICKS = [
    "/v1/files/..", "/v1/files/%2e%2e", "/v1/files/.", "/v1/files/{file}/../../chat/completions",
    "/v1/files/{file}/%2e%2e/%2e%2e/models", "/v1/files/{file}%2F..%2F..%2Fmodels",
    "/v1/files/..%2F..%2Fchat%2Fcompletions", "/v1/files/{file}/..", "/v1/files//{file}",
    "/v1/files/%C3%BC", "/v1/files/%F0%9F%98%80", "/v1/files/" + "x" * 500, "/v1/files/%00",
    "/v1/files/a%2Fb", "/v1/files/%", "/v1/files/%zz", "/v1/files/{bob_file}",
    "/v1/files/{bob_file}/content", "/v1/fine_tuning/jobs/..%2F..%2Ffiles",
    "/v1/threads/{thread}/runs/..%2F..%2F..%2Fassistants", "/v1/vector_stores/{vs}/files/..",
    "/v1/assistants/{bob_asst}", "/v1/threads/%2e",
]  # fmt: skip


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", TRICKS)
def test_path_tricks_are_404_and_reach_no_upstream(
    world: World, objs: Objects, before: dict[str, list[str]], method: str, path: str
) -> None:
    target = path.format(**objs.__dict__)
    got = raw_http(world, method, target, b"{}", {"Content-Type": "application/json", **BETA})
    assert_error(got, 404, code="object_not_found")


# ---- references in bodies --------------------------------------------------------------------
def _wrong_refs(o: Objects) -> list[tuple[str, dict[str, Any], str | None]]:
    ft = {"model": "ft-base"}
    vs_ids = {"model": "house-gpt", "tool_resources": {"file_search": {"vector_store_ids": 0}}}
    return [
        *[
            ("/fine_tuning/jobs", {**ft, "training_file": v}, "training_file")
            for v in (5, {"id": o.jsonl}, [o.jsonl], True, "../x", "", "a/b")
        ],
        (
            "/fine_tuning/jobs",
            {**ft, "training_file": o.jsonl, "validation_file": 5},
            "validation_file",
        ),
        *[
            ("/vector_stores", {"file_ids": v}, "file_ids")
            for v in ("x", o.file, [5], {"a": 1}, [[o.file]], 7, [o.file, "a b"])
        ],
        *[
            (
                "/assistants",
                orjson.loads(orjson.dumps(vs_ids).replace(b"0", orjson.dumps(v))),
                "vector_store_ids",
            )
            for v in ("x", 5, o.vs, [o.vs, 5])
        ],
        (
            "/threads",
            {"messages": [{"role": "user", "content": "x", "attachments": [{"file_id": 5}]}]},
            "file_id",
        ),
        *[("/threads/runs", {"assistant_id": v}, "assistant_id") for v in (5, [], {}, [o.asst])],
        *[
            (
                "/batches",
                {
                    "input_file_id": v,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
                "input_file_id",
            )
            for v in ([], 5)
        ],
        ("/vector_stores", {"file_ids": [f"file-{i}" for i in range(500)]}, None),
    ]


WRONG_REFS = len(_wrong_refs(Objects(*["x"] * 7)))


@pytest.mark.parametrize("case", range(WRONG_REFS))
def test_reference_of_the_wrong_type_is_refused(
    world: World, objs: Objects, before: dict[str, list[str]], case: int
) -> None:
    path, body, param = _wrong_refs(objs)[case]
    assert_error(world.post(path, json=body, headers=BETA), 403, param=param)


NULLS: list[tuple[str, str, dict[str, Any]]] = [
    ("/vector_stores", "vector_stores", {"file_ids": [None]}),
    ("/vector_stores", "vector_stores", {"file_ids": ["{file}", None]}),
    ("/vector_stores", "vector_stores", {"name": "x", "file_ids": None,
                                         "metadata": {"file_id": "not an id at all"}}),
    ("/assistants", "assistants", {"model": "house-gpt",
                                   "tool_resources": {"file_search": {"vector_store_ids": [None]}}}),
    ("/fine_tuning/jobs", "fine_tuning/jobs", {"model": "ft-base", "training_file": None}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "collection", "body"), NULLS)
def test_null_references_are_no_references(
    world: World, objs: Objects, path: str, collection: str, body: dict[str, Any]
) -> None:
    """A null (or a null in an array) names nothing: the upstream decides; nothing is left
    half made either way."""
    before = world.ids(collection)
    sent = orjson.loads(orjson.dumps(body).replace(b"{file}", objs.file.encode()))
    r = world.post(path, json=sent, headers=BETA)
    if r.status_code == 200:
        assert world.ids(collection) == [r.json()["id"], *before]
    else:
        assert_error(r, 400)
        assert world.ids(collection) == before


def _foreign_refs(o: Objects) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/fine_tuning/jobs", {"model": "ft-base", "training_file": o.bob_file}),
        (
            "/fine_tuning/jobs",
            {"model": "ft-base", "training_file": o.jsonl, "validation_file": o.bob_file},
        ),
        ("/vector_stores", {"file_ids": [o.file, o.bob_file]}),
        (
            "/assistants",
            {
                "model": "house-gpt",
                "tool_resources": {"code_interpreter": {"file_ids": [o.bob_file]}},
            },
        ),
        (
            "/threads",
            {
                "messages": [
                    {"role": "user", "content": "x", "attachments": [{"file_id": o.bob_file}]}
                ]
            },
        ),
        ("/threads/runs", {"assistant_id": o.bob_asst}),
        (
            "/batches",
            {
                "input_file_id": o.bob_file,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ),
        (f"/vector_stores/{o.vs}/files", {"file_id": o.bob_file}),
        (f"/threads/{o.thread}/runs", {"assistant_id": o.bob_asst}),
        (
            f"/threads/{o.thread}/messages",
            {"role": "user", "content": "x", "attachments": [{"file_id": o.bob_file}]},
        ),
    ]


@pytest.mark.parametrize("case", range(len(_foreign_refs(Objects(*["x"] * 7)))))
def test_another_users_object_in_a_body_is_404_and_the_upstream_sees_nothing(
    world: World, objs: Objects, before: dict[str, list[str]], case: int
) -> None:
    path, body = _foreign_refs(objs)[case]
    err = assert_error(world.post(path, json=body, headers=BETA), 404, code="object_not_found")
    assert objs.bob_file in err["message"] or objs.bob_asst in err["message"]


# ---- methods, lists, bodies ---------------------------------------------------------------
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    "path",
    ["/files", "/files/{file}", "/files/{file}/content", "/assistants/{asst}", "/threads/{thread}",
     "/threads/{thread}/messages", "/vector_stores/{vs}", "/vector_stores/{vs}/files",
     "/fine_tuning/jobs", "/batches", "/threads/runs"],
)  # fmt: skip
def test_methods_openai_does_not_have_are_405(
    world: World, objs: Objects, before: dict[str, list[str]], method: str, path: str
) -> None:
    r = world.request(method, path.format(**objs.__dict__), json={"name": "x"}, headers=BETA)
    assert_error(r, 405, code="method_not_allowed")


BAD_LIST = ["limit=abc", "limit=-1", "limit=0", "limit=101", "limit=1e3", "limit=", "limit=%20",
            "limit=%C2%B2", "limit=%D9%A1", "limit=" + "1" * 5000, "order=sideways", "order=",
            "order=ASC"]  # fmt: skip


@pytest.mark.parametrize("collection", COLLECTIONS)
@pytest.mark.parametrize("query", BAD_LIST, ids=[q[:20] for q in BAD_LIST])
def test_list_parameters_that_are_garbage_are_refused(
    world: World, before: dict[str, list[str]], collection: str, query: str
) -> None:
    r = world.request("GET", f"/{collection}?{query}", headers=BETA)
    assert_error(r, 403, param=query.split("=")[0])


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_list_cursors_that_are_garbage_page_only_the_callers_objects(
    world: World, objs: Objects, before: dict[str, list[str]], collection: str
) -> None:
    mine = set(before[collection])
    for cursor in ("%00", "x" * 500, objs.bob_file, "..", "%C3%BC", "%27%20OR%201=1--"):
        for name in ("after", "before"):
            r = world.request("GET", f"/{collection}?{name}={cursor}&limit=100", headers=BETA)
            assert r.status_code == 200, r.text
            assert {x["id"] for x in r.json()["data"]} <= mine


NOT_OBJECTS = [b"[]", b"5", b'"x"', b"null", b"{", b"\xff", b"[" * 100_000,
               b'{"model": "house-gpt", "tools": ' + b"[" * 1000 + b"]" * 1000 + b"}",
               b'{"metadata": ' + b'{"a": ' * 1000 + b"{}" + b"}" * 1001]  # fmt: skip


@pytest.mark.parametrize("path", ["/assistants", "/threads", "/vector_stores", "/batches"])
@pytest.mark.parametrize("raw", NOT_OBJECTS, ids=range(len(NOT_OBJECTS)))
def test_bodies_that_are_not_objects_or_nest_too_deep_are_refused(
    world: World, before: dict[str, list[str]], path: str, raw: bytes
) -> None:
    r = world.post(path, content=raw, headers={"Content-Type": "application/json", **BETA})
    assert_error(r, 403, code="invalid_request_error")


# ---- models a body names -----------------------------------------------------------------------
def _bad_models(o: Objects) -> list[tuple[str, dict[str, Any], str, str | None]]:
    run = f"/threads/{o.thread}/runs"
    ft = {"training_file": o.jsonl}
    return [
        ("/fine_tuning/jobs", {**ft, "model": "no-such-model"}, "model_not_found", None),
        ("/fine_tuning/jobs", {**ft, "model": "gpt-4o"}, "model_not_found", None),
        (run, {"assistant_id": o.asst, "model": "gpt-4o"}, "model_not_found", None),
        (run, {"assistant_id": o.asst, "model": "no-such-model"}, "model_not_found", None),
        ("/threads/runs", {"assistant_id": o.asst, "model": "gpt-4o"}, "model_not_found", None),
        ("/assistants", {"model": "no-such-model"}, "model_not_found", None),
        *[
            (p, {**b, "model": v}, "invalid_request_error", None)
            for p, b in (("/fine_tuning/jobs", ft), (run, {"assistant_id": o.asst}))
            for v in (5, [], {}, "", True)
        ],
        (run, {"assistant_id": o.asst, "model": "house-gpt"}, "model_not_found", "limited"),
        ("/assistants", {"model": "house-gpt"}, "model_not_found", "limited"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_models(Objects(*["x"] * 7)))))
def test_a_model_the_gateway_does_not_serve_there_is_refused(
    world: World, objs: Objects, before: dict[str, list[str]], case: int
) -> None:
    path, body, code, key = _bad_models(objs)[case]
    r = world.post(path, world.limited if key else None, json=body, headers=BETA)
    assert_error(r, 403, code=code, param="model")


def test_a_model_served_only_by_another_channel_is_refused(
    world: World, objs: Objects, before: dict[str, list[str]]
) -> None:
    cid = world.gw.create_channel(
        name="elsewhere", provider="openai_compat", profile="openai",
        base_url=world.emus[1].base_url, keys=["sk-up-2"], models=["house-elsewhere"],
    )  # fmt: skip
    try:
        time.sleep(1.2)
        body = {"assistant_id": objs.asst, "model": "house-elsewhere"}
        r = world.post(f"/threads/{objs.thread}/runs", json=body, headers=BETA)
        assert_error(r, 403, code="model_not_found", param="model")
    finally:
        world.gw.admin("DELETE", f"/channels/{cid}")


def test_a_run_with_a_model_served_on_its_channel_goes_through_mapped(
    world: World, objs: Objects
) -> None:
    body = {"assistant_id": objs.asst, "model": "house-gpt"}
    r = world.post(f"/threads/{objs.thread}/runs", json=body, headers=BETA)
    assert r.status_code == 200, r.text
    sent = orjson.loads(orjson.dumps(world.emus[0].stats.last_body))
    assert sent["model"] == "gpt-4o-mini"
