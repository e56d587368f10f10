"""Adaptor registry: provider name -> adaptor instance (adaptors are stateless)."""

from __future__ import annotations

from relaygate.errors import ServiceUnavailable
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Adaptor
from relaygate.providers.openai_compat import OpenAICompatAdaptor

__all__ = ["AdaptorRegistry"]


class AdaptorRegistry:
    def __init__(self) -> None:
        self._adaptors: dict[str, Adaptor] = {}
        self.register(OpenAICompatAdaptor())
        self.register(AnthropicAdaptor())

    def register(self, adaptor: Adaptor) -> None:
        self._adaptors[adaptor.name] = adaptor

    def get(self, provider: str) -> Adaptor:
        try:
            return self._adaptors[provider]
        except KeyError:
            raise ServiceUnavailable(
                "This model's channel uses a provider this gateway does not support."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._adaptors)
