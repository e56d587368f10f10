"""Provider adaptors. ``PROVIDERS`` names every native adaptor; the registry,
storage validation and the CLI all read it."""

PROVIDERS = ("openai_compat", "anthropic")

__all__ = ["PROVIDERS"]
