"""``online`` web search: a request asks for fresh web results (``online: true``,
``web_search_options``, a ``:online`` model suffix, or a model the operator made always
online); the gateway searches, puts numbered sources before the conversation, and returns
citations as ``annotations``. See docs/online.md.

Modules: ``base`` (the hit, the backend interface, the settings), one module per backend
(``searxng``, ``tavily``, ``bocha``, ``google_pse``, ``ddgs_backend``, ``local_index``),
``fetch`` (pages, refusing private addresses) and ``extract`` (main text), ``rank``
(dedupe, order, trim to a token budget), ``query`` (what to search for), ``inject`` and
``citations`` (the sources in, the annotations out), ``stage`` (the request's flow).
"""
