"""Real HTTP emulators of upstream LLM providers (OpenAI, DeepSeek, Azure OpenAI, Anthropic).

Used by tests, benchmarks and ``relaygate emulator``. See ``EmulatorServer`` and ``Knobs``.
"""

from relaygate.emulator.base import embedding_base64, embedding_vector, split_text
from relaygate.emulator.knobs import (
    DEFAULT_REASONING,
    DEFAULT_REPLY,
    KNOB_NAMES,
    Knobs,
    RecordedRequest,
    Stats,
    UsageMode,
)
from relaygate.emulator.server import PROVIDERS, EmulatorServer, build_app, run_emulator_cli

__all__ = [
    "DEFAULT_REASONING",
    "DEFAULT_REPLY",
    "KNOB_NAMES",
    "PROVIDERS",
    "EmulatorServer",
    "Knobs",
    "RecordedRequest",
    "Stats",
    "UsageMode",
    "build_app",
    "embedding_base64",
    "embedding_vector",
    "run_emulator_cli",
    "split_text",
]
