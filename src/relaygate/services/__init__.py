"""Services: the layer above storage where administrative writes are validated and made.

``validation`` (pure field and entity rules), ``fields`` (the checker kit they are built
from), ``admin`` (``AdminService``, used by the CLI and the admin API), ``throttle`` and
``passwords`` (argon2id hashing and the password rule, for the console and the admin API).
"""
