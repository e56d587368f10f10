"""The one list of adaptor classes, and the registry built from it.

``ADAPTORS`` is the single place a provider is added: ``relaygate.providers.PROVIDERS``
(storage validation, the CLI's ``--provider`` choice) and :class:`AdaptorRegistry`
(the relay) are derived from it (``docs/adding-a-provider.md``).
"""

from __future__ import annotations

from relaygate.errors import ServiceUnavailable
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.baidu import BaiduAdaptor
from relaygate.providers.base import Adaptor, LocalTokenSource, TokenSource
from relaygate.providers.gemini import GeminiAdaptor
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.providers.spark_ws import SparkWSAdaptor
from relaygate.providers.tencent import TencentAdaptor

__all__ = ["ADAPTORS", "AdaptorRegistry", "native_profiles", "provider_names"]

#: every native adaptor class; adaptors are stateless and built once per worker
ADAPTORS: tuple[type[Adaptor], ...] = (
    OpenAICompatAdaptor,
    AnthropicAdaptor,
    GeminiAdaptor,
    BaiduAdaptor,
    TencentAdaptor,
    SparkWSAdaptor,
)


def provider_names() -> tuple[str, ...]:
    return tuple(cls.name for cls in ADAPTORS)


def native_profiles(provider: str) -> tuple[str, ...]:
    """The profiles a native adaptor accepts (its class's ``profiles``; default: its name)."""
    for cls in ADAPTORS:
        if cls.name == provider:
            return tuple(getattr(cls, "profiles", (cls.name,)))
    return (provider,)


class AdaptorRegistry:
    def __init__(self, adaptors: tuple[type[Adaptor], ...] = ADAPTORS) -> None:
        self._adaptors: dict[str, Adaptor] = {}
        for cls in adaptors:
            self.register(cls())

    def register(self, adaptor: Adaptor) -> None:
        if adaptor.name in self._adaptors:
            raise ValueError(f"two adaptors are named {adaptor.name!r}")
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

    def token_source(self, provider: str) -> TokenSource | LocalTokenSource | None:
        """The adaptor's token hook, if it has one (checked by its methods)."""
        adaptor = self.get(provider)
        if isinstance(adaptor, LocalTokenSource | TokenSource):
            return adaptor
        return None
