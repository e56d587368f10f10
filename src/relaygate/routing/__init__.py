"""Routing: which channels may serve a request, in which order, with which upstream key.

``Router.candidates`` returns the ordered candidates for (model, key);
``Router.target`` turns one candidate into a :class:`~relaygate.providers.base.Target`
with the channel's next upstream key (``keys.KeyRotation``). The attempt loop in
``relay/attempt.py`` walks the candidates. Weights, health, circuit breakers and
fallback chains belong here (the routing issue).
"""
