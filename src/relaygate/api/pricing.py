"""``GET /v1/pricing`` (and ``/api/pricing``): the public price catalogue, seed 000's
模型说明 table. No key needed.

Lists the priced models that an enabled channel serves: model, provider, input, output and
cached-input prices in the operator currency as exact decimal strings, per 1K tokens
(``?per=1m`` for per 1M), context window, most output tokens and description::

    {"object": "list", "currency": "CNY", "data": [{"model": "gpt-4o-mini",
      "provider": "openai", "input_price": "0.00108", "output_price": "0.00432",
      "cached_input_price": "0.00054", "per": "1k", "context_window": 128000,
      "max_output": 16384, "description": "..."}]}

A model with media prices also carries them (only those it has): ``training_price`` (per
``per`` tokens), ``request_price``, ``image_price``, ``image_prices`` (``{"1024x1792/hd":
"0.864", ...}``), ``second_price`` and ``character_price``, in the operator currency per
request, image, second and character (``PriceTable.catalogue``).

The worker's price table (``state.prices``) is rebuilt here when the configuration
revision moved since it was loaded (:func:`fresh_prices`), so a price changed through
another worker shows within the refresh interval.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from relaygate.asgi import Request, ok_body, send_json
from relaygate.billing.prices import PER, PriceTable
from relaygate.errors import InvalidRequest, RelayError, send_error
from relaygate.state import AppState

__all__ = ["fresh_prices", "handle_pricing", "reload_prices"]

log = logging.getLogger("relaygate.billing")


async def reload_prices(state: AppState) -> PriceTable:
    """Rebuild ``state.prices`` from the database now, in place (after an admin write)."""
    s = state.settings
    revision = await state.repo.revision()
    table = await PriceTable.load(
        state.repo.prices, currency=s.currency, usd_rate=s.usd_rate, revision=revision
    )
    state.prices.update_from(table)
    return state.prices


async def fresh_prices(state: AppState) -> PriceTable:
    """``state.prices``, rebuilt first when the configuration revision this worker has
    loaded (``state.catalog.revision``) is not the one the table was built at."""
    table = state.prices
    revision = state.catalog.revision
    if table.revision != revision:
        s = state.settings
        try:
            new = await PriceTable.load(
                state.repo.prices, currency=s.currency, usd_rate=s.usd_rate, revision=revision
            )
        except Exception:  # the database is away: keep serving the prices already loaded
            log.warning("reloading prices failed; serving the last loaded ones", exc_info=True)
        else:
            table.update_from(new)
    return table


def _per(req: Request) -> str:
    query = parse_qs(req.scope.get("query_string", b"").decode("latin-1"))
    values = query.get("per")
    if not values:
        return "1k"
    per = str(values[-1]).strip().lower()
    if per not in PER:
        raise InvalidRequest(
            f"`per` must be one of {', '.join(PER)}, not {values[-1]!r}.", param="per"
        )
    return per


async def handle_pricing(state: AppState, req: Request) -> None:
    s = state.settings
    try:
        per = _per(req)
        table = await fresh_prices(state)
        catalog = state.catalog
        data = table.catalogue(lambda model: catalog.channels_for(model) is not None, per)
        body = ok_body({"object": "list", "currency": table.currency, "data": data}, s.envelope)
        await send_json(req.send, 200, body, req.request_id)
    except RelayError as err:
        await send_error(
            req.send,
            err,
            req.request_id,
            envelope=s.envelope,
            openai_statuses=s.openai_status_codes,
        )
