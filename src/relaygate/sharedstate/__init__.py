"""State shared by every request of a worker today, and by every worker and node once
a Redis implementation is plugged in: counters with expiry, atomic reservations,
sliding-window rate limits and a small key-value cache.

Callers depend only on :class:`~relaygate.sharedstate.base.SharedState`.
"""
