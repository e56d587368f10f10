"""Candidates for (model, key) and the target of one attempt."""

from __future__ import annotations

from relaygate.catalog import Catalog
from relaygate.errors import ModelNotFound, ServiceUnavailable
from relaygate.providers.base import Target
from relaygate.routing.keys import KeyRotation
from relaygate.storage.records import ChannelRecord, KeyRecord

__all__ = ["Router"]


class Router:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.keys = KeyRotation()

    def candidates(self, model: str, key: KeyRecord) -> list[ChannelRecord]:
        """The channels that may serve ``model`` for ``key``, in the order to try them
        (today: priority, highest first, then channel id). Never empty: raises
        ``ModelNotFound`` or ``ServiceUnavailable`` instead."""
        if key.models is not None and model not in key.models:
            raise ModelNotFound(
                f"The model `{model}` is not allowed for this API key.", param="model"
            )
        chans = self._catalog.channels_for(model)
        if not chans:
            if self._catalog.is_known(model):
                raise ServiceUnavailable(
                    f"No channel is available for the model `{model}` right now; retry later."
                )
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        return chans

    def target(self, channel: ChannelRecord, model: str) -> Target:
        """Where one attempt on ``channel`` goes, with the channel's next key."""
        return Target(
            channel_id=channel.id,
            provider=channel.provider,
            profile=channel.profile,
            base_url=channel.base_url,
            api_key=self.keys.next(channel),
            upstream_model=channel.model_mapping.get(model, model),
            config=channel.config,
        )
