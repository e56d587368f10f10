"""Provider adaptors. ``PROVIDERS`` names every native adaptor; it is derived from
``registry.ADAPTORS``, the one list of adaptor classes, and read by storage
validation and the CLI."""

from relaygate.providers.registry import provider_names

PROVIDERS = provider_names()

__all__ = ["PROVIDERS"]
