"""Content safety (docs/safety.md): operator word lists with categories and actions per
user group, normalised matching with an Aho–Corasick automaton, checks on every text the
model reads and on answers (streams with a hold-back window, so no listed word reaches the
client however the stream is chunked), an optional moderation model, and an audit log.

``base`` (the shared types), ``normalize`` and ``matcher`` (the compiled policy),
``stream_guard`` (the hold-back window), ``lists`` (validation, import and export, the
reloading holder), ``audit`` (the hit log writer), ``moderation`` (the moderation model).
The relay-side filter is ``filters/safety.py``.
"""
