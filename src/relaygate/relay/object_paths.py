"""What an object-endpoint request is about: its collection, the object it names, and
the objects its body refers to (``relay/objects.py`` uses it).

OpenAI's stateful endpoints share one shape: a collection (``/files``,
``/fine_tuning/jobs``, ``/assistants``, ``/threads``, ``/vector_stores``, ``/batches``,
``/videos``), then an object id, then sub-resources that belong to that object (a
thread's messages and runs, a job's events, a vector store's files). The object named in
the path decides the channel and the owner; so do the objects a creation refers to in its
body (a fine-tuning job's ``training_file``, a batch's ``input_file_id``, a run's
``assistant_id``, …). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relaygate.errors import InvalidRequest, NotFound

__all__ = ["COLLECTIONS", "ObjectPath", "parse_path", "references"]

#: collection path -> (object kind recorded, surface that serves it)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "files": ("file", "files"),
    "fine_tuning/jobs": ("fine_tuning.job", "fine_tuning"),
    "assistants": ("assistant", "assistants"),
    "threads": ("thread", "assistants"),
    "vector_stores": ("vector_store", "vector_stores"),
    "batches": ("batch", "batches"),
    "videos": ("video", "videos"),
}

#: body fields that name an object of the caller's (the ids must be theirs)
_REF_KEYS = frozenset(
    {
        "training_file",
        "validation_file",
        "input_file_id",
        "file_id",
        "file_ids",
        "assistant_id",
        "vector_store_ids",
        "thread_id",
    }
)
_ID = re.compile(r"[A-Za-z0-9_\-:.]{1,160}")
_MAX_REFS = 200
#: keys whose values are the caller's own strings, never object ids (OpenAI's ``metadata``)
_FREE_FORM = frozenset({"metadata"})


def _is_id(seg: str) -> bool:
    # ``.`` and ``..`` are dot segments: sent upstream in a path they would climb out of
    # the object (``/files/f/../../chat/completions``) once the URL is normalized
    return _ID.fullmatch(seg) is not None and seg.strip(".") != ""


@dataclass(frozen=True, slots=True)
class ObjectPath:
    collection: str  # a key of COLLECTIONS
    kind: str
    surface: str
    root: str | None  # the object the path names (None: the collection itself)
    sub: tuple[str, ...]  # what follows the object id
    upstream: str  # the path to send upstream (without /v1)

    @property
    def creates(self) -> bool:
        """A POST here creates an object of ``kind`` (or a run: see ``creates_run``)."""
        return self.root is None and self.collection != "threads/runs"

    @property
    def run_id(self) -> str | None:
        """``/threads/{thread}/runs/{run}[/…]``: the run named."""
        if self.collection == "threads" and len(self.sub) >= 2 and self.sub[0] == "runs":
            return self.sub[1]
        return None

    @property
    def creates_run(self) -> bool:
        """``POST /threads/{thread}/runs`` or ``POST /threads/runs``."""
        return self.sub == ("runs",) or self.collection == "threads/runs"


def parse_path(path: str) -> ObjectPath | None:
    """The object request a ``/v1/...`` path makes, or None if it is not one."""
    rel = path[3:] if path.startswith("/v1/") else path
    segs = rel.strip("/").split("/")
    if not segs or not segs[0]:
        return None
    if segs[0] == "fine_tuning":
        if len(segs) < 2 or segs[1] != "jobs":
            return None
        coll, rest = "fine_tuning/jobs", segs[2:]
    else:
        coll, rest = segs[0], segs[1:]
    found = COLLECTIONS.get(coll)
    if found is None:
        return None
    kind, surface = found
    upstream = "/" + "/".join(segs)
    if coll == "threads" and rest[:1] == ["runs"]:
        if len(rest) != 1:
            raise NotFound(f"Unknown URL: {path}.")
        return ObjectPath("threads/runs", "thread", surface, None, (), upstream)
    if not rest:
        return ObjectPath(coll, kind, surface, None, (), upstream)
    for seg in rest:
        if not _is_id(seg):
            raise NotFound(f"No such object: `{seg[:80]}`.", code="object_not_found")
    return ObjectPath(coll, kind, surface, rest[0], tuple(rest[1:]), upstream)


def references(body: Any) -> set[str]:
    """The object ids a JSON body names in the fields that refer to objects (at any
    depth: ``tool_resources.file_search.vector_store_ids``, ``attachments[].file_id``)."""
    found: set[str] = set()

    def walk(node: Any, depth: int) -> None:
        if depth > 12:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REF_KEYS:
                    add(key, value)
                elif key not in _FREE_FORM:
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        many = key.endswith("_ids")  # file_ids, vector_store_ids: arrays; the rest: one id
        if many != isinstance(value, list):
            what = "an array of object ids" if many else "one object id (a string)"
            raise InvalidRequest(f"`{key}` must be {what}.", param=key)
        values = value if many else [value]
        for v in values:
            if v is None:
                continue
            if not isinstance(v, str) or not _is_id(v):
                raise InvalidRequest(f"`{key}` must name an object by its id.", param=key)
            found.add(v)
        if len(found) > _MAX_REFS:
            raise InvalidRequest(f"The request refers to more than {_MAX_REFS} objects.")

    walk(body, 0)
    return found
