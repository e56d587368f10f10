"""Translations between the client formats relaygate accepts besides OpenAI's chat
completions (the Responses API, Anthropic Messages, Gemini ``generateContent``) and the
chat-completions shape the relay works in. Pure functions, no I/O, like the adaptors in
``providers/``: tested with literal fixtures."""
