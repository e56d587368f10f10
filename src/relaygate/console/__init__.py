"""The web console (docs/console.md): accounts and server-side sessions (``accounts.py``,
``sessions.py``, ``passwords.py``, ``totp.py``), its JSON API under ``/console/api``
(``routes.py``, ``kit.py``) and the single-page app served from ``static/`` at
``/console`` (``app.py``)."""
