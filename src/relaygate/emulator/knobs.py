"""Emulator knobs (behaviour switches) and thread-safe request statistics."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

__all__ = [
    "DEFAULT_REASONING",
    "DEFAULT_REPLY",
    "KNOB_NAMES",
    "Knobs",
    "RecordedRequest",
    "Stats",
    "UsageMode",
]

UsageMode = Literal["include_usage", "never", "on_finish_chunk", "in_choice"]
USAGE_MODES: tuple[str, ...] = get_args(UsageMode)

DEFAULT_REPLY = "Hello from the relaygate emulator."
DEFAULT_REASONING = "The user wants a short greeting, so I will answer briefly."


@dataclass(frozen=True, slots=True)
class Knobs:
    """Behaviour of an emulator. Immutable: change it with ``EmulatorServer.configure``.

    ``latency_ms``: delay before the response headers (first byte).
    ``chunks``: number of content chunks in a stream (the reply is split into that many pieces).
    ``chunk_interval_ms``: pause between consecutive content chunks of a stream.
    ``reply``: the assistant text. ``reasoning``: reasoning/thinking text (deepseek ``*reasoner*``
    models, Anthropic ``thinking``).
    ``usage``: where an OpenAI-family stream puts usage (see ``UsageMode``).
    ``first_token_ms``: a slow first token. Streams send the headers and the provider's opening
    events (OpenAI's role chunk, Anthropic's ``message_start``…) at once, then wait this long
    before the first content chunk; non-streamed answers add it to ``latency_ms``.
    ``fail_status``/``fail_times``: answer that HTTP status (provider error body) for the next
    ``fail_times`` requests (-1 = always); the counter restarts on every ``configure``.
    ``fail_every``: fail every n-th request instead (n=2: the 2nd, 4th, … fail), with
    ``fail_status`` (500 when it is None). ``fail_rate``: fail this fraction (0..1) of requests at
    random instead, drawn from a generator seeded by ``seed`` (None: unseeded). With either, a
    ``fail_times`` >= 0 caps the number of injected failures. Requests are counted (and the
    generator re-seeded) from the last ``configure``/reset, over every chat or embeddings request
    that passes the auth and body checks (the ``error-…``/``hang`` trigger models
    excepted). ``fail_every`` and ``fail_rate`` exclude each other.
    ``retry_after``: add a ``retry-after`` header (seconds) to injected error responses.
    ``hang``: never answer. ``hang_every``: the n-th, 2n-th, … request never answers (counted
    like ``fail_every``; a hung request fails no other). A hung request holds nothing but its own
    connection: the client closing it ends the request.
    ``cut_after``: in streams, close the connection abruptly after N content chunks (no
    terminator). ``midstream_error``: after the first content chunk send the provider's in-stream
    error and end the stream.
    ``keepalive``: DeepSeek ``: keep-alive`` comments / leading blank lines (None = provider
    default: on for deepseek only).
    ``api_key``: expected key (None = any non-empty key); ``require_auth``: False skips auth.
    ``embedding_dim``: default vector size; ``embeddings_base64``: honour
    ``encoding_format=base64`` (False = always floats).
    ``job_seconds``: how long the OpenAI emulator's timed objects (fine-tuning jobs, assistant
    runs, batches, videos, vector store files) take to reach their final status.
    """

    latency_ms: float = 0.0
    chunks: int = 5
    chunk_interval_ms: float = 0.0
    reply: str = DEFAULT_REPLY
    reasoning: str = DEFAULT_REASONING
    usage: UsageMode = "include_usage"
    fail_status: int | None = None
    fail_times: int = -1
    fail_every: int | None = None
    fail_rate: float = 0.0
    seed: int | None = None
    first_token_ms: float = 0.0
    retry_after: int | None = None
    hang: bool = False
    hang_every: int | None = None
    cut_after: int | None = None
    midstream_error: bool = False
    keepalive: bool | None = None
    api_key: str | None = None
    require_auth: bool = True
    embedding_dim: int = 8
    embeddings_base64: bool = False
    job_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.usage not in USAGE_MODES:
            raise ValueError(f"usage must be one of {USAGE_MODES}, not {self.usage!r}")
        if self.chunks < 0:
            raise ValueError("chunks must be >= 0")
        for name in ("latency_ms", "chunk_interval_ms", "first_token_ms", "job_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0")
        for name in ("fail_every", "hang_every"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be an integer >= 1 or null")
        rate = self.fail_rate
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ValueError("fail_rate must be a number from 0 to 1")
        if self.fail_every is not None and rate > 0:
            raise ValueError("fail_every and fail_rate cannot both be set")
        if self.seed is not None and (
            not isinstance(self.seed, int) or isinstance(self.seed, bool)
        ):
            raise ValueError("seed must be an integer or null")
        if self.fail_status is not None and not 100 <= self.fail_status <= 599:
            raise ValueError("fail_status must be an HTTP status code")
        if self.cut_after is not None and self.cut_after < 0:
            raise ValueError("cut_after must be >= 0")
        if self.embedding_dim < 1:
            raise ValueError("embedding_dim must be >= 1")

    def with_changes(self, **changes: Any) -> Knobs:
        unknown = set(changes) - set(KNOB_NAMES)
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KNOB_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Knobs))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received (body parsed as JSON; None if absent/invalid)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive (multidict.CIMultiDictProxy)
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": {str(k): v for k, v in self.query.items()},
            "headers": {str(k): v for k, v in self.headers.items()},
            "body": self.body,
        }


class Stats:
    """Counters of one emulator, updated by the server thread, readable from any thread.

    ``requests``: API requests received (control endpoints excluded).
    ``in_flight`` / ``max_in_flight``: concurrently running API requests.
    ``errors``: injected/validation error responses (HTTP errors and mid-stream errors).
    ``streams_started`` / ``streams_completed``: streams that sent headers / ended normally.
    ``disconnected``: streams whose client went away before the end.
    ``streams_cut``: streams closed on purpose by ``cut_after``.
    ``aborted``: non-stream requests (or not-yet-started streams, hangs) whose client went away.
    ``recorded``: the last ``keep`` requests (``bodies``/``headers`` views, ``last_*``).
    """

    _COUNTERS = (
        "requests",
        "in_flight",
        "max_in_flight",
        "errors",
        "streams_started",
        "streams_completed",
        "disconnected",
        "streams_cut",
        "aborted",
    )

    def __init__(self, keep: int = 50) -> None:
        self._cond = threading.Condition()
        self.recorded: deque[RecordedRequest] = deque(maxlen=keep)
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.errors = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.disconnected = 0
        self.streams_cut = 0
        self.aborted = 0

    # -- views ----------------------------------------------------------------------------
    @property
    def bodies(self) -> list[Any]:
        with self._cond:
            return [r.body for r in self.recorded]

    @property
    def headers(self) -> list[Mapping[str, str]]:
        with self._cond:
            return [r.headers for r in self.recorded]

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._cond:
            return self.recorded[-1] if self.recorded else None

    @property
    def last_body(self) -> Any:
        last = self.last_request
        return None if last is None else last.body

    @property
    def last_headers(self) -> Mapping[str, str] | None:
        last = self.last_request
        return None if last is None else last.headers

    def snapshot(self, *, with_requests: bool = True) -> dict[str, Any]:
        with self._cond:
            out: dict[str, Any] = {name: getattr(self, name) for name in self._COUNTERS}
            if with_requests:
                out["recorded"] = [r.to_dict() for r in self.recorded]
            return out

    def wait_for(self, predicate: Callable[[Stats], bool], timeout: float = 5.0) -> bool:
        """Block (any thread but the emulator's) until ``predicate(stats)`` holds.

        Returns the final value of the predicate (False on timeout).
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def reset(self) -> None:
        with self._cond:
            self.recorded.clear()
            for name in self._COUNTERS:
                if name != "in_flight":
                    setattr(self, name, 0)
            self.max_in_flight = self.in_flight
            self._cond.notify_all()

    # -- mutators (server thread) ---------------------------------------------------------
    def _request_started(self) -> None:
        with self._cond:
            self.requests += 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
            self._cond.notify_all()

    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self.recorded.append(rec)
            self._cond.notify_all()

    def _request_finished(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def _bump(self, name: str, delta: int = 1) -> None:
        with self._cond:
            setattr(self, name, getattr(self, name) + delta)
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"Stats({self.snapshot(with_requests=False)})"
