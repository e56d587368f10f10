"""The OpenAI emulator's stateful object endpoints: shared plumbing and the route hook.

``add_object_routes`` serves, under each prefix of the OpenAI emulator (``/v1``), OpenAI's
object APIs, each kept in memory per emulator instance (ids carry the server's random salt,
so two emulators never hand out the same id):

* ``openai_files.py``: ``/files`` (multipart upload, list, retrieve, content, delete).
* ``openai_fine_tuning.py``: ``/fine_tuning/jobs`` (with events, checkpoints, cancel).
* ``openai_batches.py`` (answers in ``openai_batch_answers.py``): ``/batches``.
* ``openai_videos.py``: ``/videos`` (Sora: create, list, retrieve, delete, content, remix).
* ``openai_assistants.py``: ``/assistants``, ``/threads`` and their ``/messages``.
* ``openai_runs.py`` (events in ``openai_run_stream.py``): ``/threads/{id}/runs``,
  ``/threads/runs``, run steps, streamed runs.
* ``openai_vector_stores.py``: ``/vector_stores``, their ``/files`` and ``/file_batches``.

Timed objects (fine-tuning jobs, runs, batches, videos, vector store files) move through their
statuses by wall time: every one reaches its final state ``Knobs.job_seconds`` after it was
created (0.5 s by default); the answer to the create request always shows the first status.
Every request goes through the usual pipeline (auth, ``latency_ms``, injected failures and
hangs of ``Provider.gate``); the ``model`` of a JSON body (or of the video form) also works as a
trigger (``error-500``, ``hang``). Unknown ids are answered 404 in OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from relaygate.emulator.base import Provider
from relaygate.emulator.openai_assistants import AssistantsApi
from relaygate.emulator.openai_batches import BatchesApi
from relaygate.emulator.openai_files import FilesApi
from relaygate.emulator.openai_fine_tuning import FineTuningApi
from relaygate.emulator.openai_object_api import ObjectApi
from relaygate.emulator.openai_runs import RunsApi
from relaygate.emulator.openai_vector_stores import VectorStoresApi
from relaygate.emulator.openai_videos import VideosApi

__all__ = ["add_object_routes"]


def add_object_routes(provider: Provider, app: web.Application, prefixes: Sequence[str]) -> None:
    """Serve the object APIs (the OpenAI emulator only, not its OpenAI-compatible subclasses)."""
    if provider.name != "openai":
        return

    api = ObjectApi(provider, app, prefixes)
    files = FilesApi(api)
    FineTuningApi(api, files)
    BatchesApi(api, files)
    VideosApi(api)
    assistants = AssistantsApi(api)
    RunsApi(api, assistants)  # before the threads' own routes: /threads/runs is not a thread id
    assistants.add_thread_routes()
    VectorStoresApi(api, files)
