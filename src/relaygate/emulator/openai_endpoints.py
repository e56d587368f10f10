"""The OpenAI model endpoints beyond chat and embeddings, registered on an emulator's prefix.

``add_model_routes`` is called by ``OpenAIEmulator.add_routes`` for each of its ``prefixes``
(so the OpenAI emulator, DeepSeek and the OpenAI-compatible vendors serve them; Azure has its
own routes). Every endpoint goes through ``Provider.api`` (auth, request log, early errors)
and ``Provider.gate`` (``error-NNN``/``hang`` models, ``fail_*``/``hang*`` knobs), and answers
with the emulator's JSON and stream writers (``latency_ms``, ``first_token_ms``, ``chunks``,
``chunk_interval_ms``, ``cut_after``, ``midstream_error``).
"""

from __future__ import annotations

from aiohttp import web

from relaygate.emulator.openai_audio import transcriptions, translations
from relaygate.emulator.openai_completions import completions
from relaygate.emulator.openai_images import image_edits, image_generations, image_variations
from relaygate.emulator.openai_misc import moderations, rerank
from relaygate.emulator.openai_params import Endpoint, Host, bind
from relaygate.emulator.openai_speech import speech

__all__ = ["JSON_ENDPOINTS", "MULTIPART_ENDPOINTS", "add_model_routes"]

#: path (after the prefix) → endpoint taking a JSON body
JSON_ENDPOINTS: dict[str, Endpoint] = {
    "/completions": completions,
    "/moderations": moderations,
    "/images/generations": image_generations,
    "/audio/speech": speech,
    "/rerank": rerank,
}
#: path (after the prefix) → endpoint taking a multipart form (``bodies.Form``)
MULTIPART_ENDPOINTS: dict[str, Endpoint] = {
    "/images/edits": image_edits,
    "/images/variations": image_variations,
    "/audio/transcriptions": transcriptions,
    "/audio/translations": translations,
}


def add_model_routes(host: Host, app: web.Application, prefix: str) -> None:
    """Serve every model endpoint of ``host`` under ``prefix`` (e.g. ``/v1``)."""
    for path, endpoint in JSON_ENDPOINTS.items():
        app.router.add_post(prefix + path, host.api(bind(host, endpoint)))
    for path, endpoint in MULTIPART_ENDPOINTS.items():
        app.router.add_post(prefix + path, host.api(bind(host, endpoint), multipart=True))
