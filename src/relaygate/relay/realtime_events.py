"""What the gateway reads of a realtime session's events (``relay/realtime_pump.py`` relays
them): the client's text frames checked and shaped, the first ``session.update`` the
gateway sends for the shaping rules, and the usage of a ``response.done``.

Client frames. A text frame that is not a JSON object (not JSON, an array, a string, ...) is
answered by the gateway with an ``invalid_event`` ``error`` event and not sent upstream;
the session stays open. Only frames that do not start with ``{`` are parsed for that check
(audio frames are large and many). Other frames pass as they are, unknown event types and
wrong-typed fields too: the upstream answers those with its own ``error`` event.

Shaping (``services/shaping_realtime.py``). With rules for the attempt (the model's, then
the channel's: ``relay/shaping.py`` ``attempt_rules``), :meth:`ClientFrames.initial` is a
``session.update`` sent upstream before any client frame (the upstream's answer to it, a
``session.updated`` the client did not ask for, is not forwarded), and each client
``session.update`` and ``response.create`` is parsed and shaped (not the update of a GA
transcription session, ``"type": "transcription"``, which has none of the parameters).
Without rules no frame is parsed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson

from relaygate.errors import InvalidRequest, RelayError
from relaygate.providers.base import Usage
from relaygate.services.shaping_realtime import initial_session, shape_response, shape_session

__all__ = ["ClientFrames", "event_id", "realtime_usage"]

Rules = dict[str, Any]


def event_id(prefix: str = "event_") -> str:
    return prefix + os.urandom(10).hex()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def realtime_usage(event: dict[str, Any]) -> Usage:
    """The usage of a ``response.done`` event (zero when it reports none): input and output
    tokens, cached input tokens, and the audio tokens of each (``input_token_details`` /
    ``output_token_details`` ``audio_tokens``; the audio input tokens that were cache reads,
    ``cached_tokens_details.audio_tokens``, are left out of the fresh audio count)."""
    response = event.get("response")
    raw = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(raw, dict):
        return Usage()
    prompt = _int(raw.get("input_tokens"))
    completion = _int(raw.get("output_tokens"))
    details = raw.get("input_token_details")
    details = details if isinstance(details, dict) else {}
    cached = min(_int(details.get("cached_tokens")), prompt)
    cached_details = details.get("cached_tokens_details")
    cached_audio = (
        _int(cached_details.get("audio_tokens")) if isinstance(cached_details, dict) else 0
    )
    audio_in = max(_int(details.get("audio_tokens")) - cached_audio, 0)
    out_details = raw.get("output_token_details")
    audio_out = _int(out_details.get("audio_tokens")) if isinstance(out_details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        audio_prompt_tokens=min(audio_in, prompt - cached),
        audio_completion_tokens=min(audio_out, completion),
    )


def _not_object(text: str) -> RelayError | None:
    """An error when ``text`` is not a JSON object (only frames not starting with ``{``
    are parsed)."""
    if text.startswith("{"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return InvalidRequest(
            "The client event is not valid JSON; send one JSON object per text frame.",
            code="invalid_event",
        )
    if isinstance(value, dict):
        return None
    return InvalidRequest(
        "A client event must be a JSON object with a `type`.", code="invalid_event"
    )


class ClientFrames:
    """One session's client text frames on their way upstream (see the module docstring)."""

    __slots__ = ("beta", "initial_id", "rules")

    def __init__(self, rules: Sequence[Rules], beta: bool) -> None:
        self.rules = tuple(r for r in rules if r)
        self.beta = beta
        #: the event id of the gateway's own session.update, until its answer passed
        self.initial_id: str | None = None

    def initial(self) -> str | None:
        """The gateway's first ``session.update`` (text), or None when no rule sets
        anything a session starts with."""
        if not self.rules:
            return None
        session = initial_session(self.rules, beta=self.beta)
        if session is None:
            return None
        self.initial_id = event_id("event_relaygate_")
        event = {"type": "session.update", "event_id": self.initial_id, "session": session}
        return orjson.dumps(event).decode()

    def check(self, text: str) -> tuple[str, RelayError | None]:
        """The frame to send upstream (shaped when rules apply), or the error to answer
        the client with instead."""
        error = _not_object(text)
        if error is not None:
            return text, error
        if self.rules and ('"session.update"' in text or '"response.create"' in text):
            return self._shaped(text), None
        return text, None

    def _shaped(self, text: str) -> str:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text  # the upstream answers it
        if not isinstance(event, dict):
            return text
        kind = event.get("type")
        if kind == "session.update":
            session = event.get("session")
            if isinstance(session, dict) and session.get("type") != "transcription":
                event["session"] = shape_session(session, self.rules, beta=self.beta)
                return orjson.dumps(event).decode()
        elif kind == "response.create":
            response = event.get("response")
            if isinstance(response, dict):
                event["response"] = shape_response(response, self.rules, beta=self.beta)
                return orjson.dumps(event).decode()
        return text

    def hides(self, text: str) -> bool:
        """Whether an upstream text frame answers the gateway's own ``session.update``
        and is not for the client (its ``session.updated``); an ``error`` about it is
        forwarded (and ends the wait)."""
        if self.initial_id is None:
            return False
        if '"session.updated"' in text:
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                return False
            if isinstance(event, dict) and event.get("type") == "session.updated":
                self.initial_id = None
                return True
        elif '"error"' in text and self.initial_id in text:
            self.initial_id = None
        return False
