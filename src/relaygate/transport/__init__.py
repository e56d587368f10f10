"""The upstream HTTP transport.

Interface in ``base``, backends in ``fast`` and ``aiohttp_client``, the choice in ``factory``.
"""
