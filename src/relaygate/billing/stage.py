"""The billing stage: reserve before the upstream call, charge what was delivered.

``reserve(ctx, body)`` (after routing, before the call) prices the worst case — the
prompt's tokens (counted locally) plus ``max_tokens`` (or the model's default output
budget) — and promises it from the first source that covers it, in this order of use:
an unlimited plan covering the model (no charge; its fair-use limits apply), a counts
package (counts per request), a credit package (money of the period), then the
balance (and the key's spending cap, if it has one). Nothing covers it: 403
``insufficient_quota`` and no upstream call. Promises come from this worker's budget
leases (``billing/book.py``) — memory, not the database, on the hot path.

``settle(ctx)`` (called by ``record()`` just before the request-log row is recorded,
so the row carries the charge) prices what was actually delivered: the upstream's
usage when the answer was complete, else the prompt plus the completion tokens
counted as the stream was delivered. A request that delivered nothing costs nothing.
The charge travels in the request-log row (spooled before the answer's last bytes);
the writer commits it with the row (``storage/charges.py``).

While a stream runs, ``progress(ctx)`` builds a provisional row with what will have been
delivered once the chunks at hand are written, and ``spool(line)`` appends it right after
they are: if the worker is killed, the next start charges the last one. A kill between
the two (one syscall apart) leaves at most that one chunk uncharged, never overcharged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relaygate.billing.book import Book
from relaygate.billing.media import Measure, media_cost
from relaygate.billing.prices import ModelPrice, PriceTable, token_cost
from relaygate.billing.tokens import StreamMeter, count_prompt, count_value
from relaygate.context import RelayContext, Slot
from relaygate.errors import QuotaExceeded, RelayError, ServiceUnavailable
from relaygate.providers.base import Usage
from relaygate.stages import PLAN_LIMITS, PlanLimits
from relaygate.storage.plans import PackageRecord, PlanStore

__all__ = ["FEE_NAMES", "MEASURE", "METER", "SURCHARGES", "Billing", "Reservation"]

log = logging.getLogger("relaygate.billing")

#: the running count of a stream's delivered completion tokens
METER: Slot[StreamMeter] = Slot("billing.meter")
#: what a non-token request (images, audio, video, training) consumes: set by the relay
#: before ``reserve`` to the worst case, replaced after the answer with what was delivered
MEASURE: Slot[Measure] = Slot("billing.measure")
#: endpoints whose answer is generated text bounded by ``max_tokens``
_GENERATING = ("chat", "completions")

PACKAGES_TTL = 5.0  # seconds a user's package list is served from memory
COUNTS_LEASE = 50  # counts a worker leases of a package at once


@dataclass(slots=True)
class Reservation:
    how: str  # balance | counts | credit | unlimited | free
    price: ModelPrice | None
    mult: tuple[int, int]
    prompt_tokens: int  # counted locally
    amount: int = 0  # units (balance, credit) or counts promised
    key_amount: int = 0  # units promised from the key's cap
    package_id: int | None = None
    counts: int = 0  # counts a request of this model uses (counts packages)
    settled: bool = False
    fee: int = 0  # surcharges (SURCHARGES) reserved, in units


RESERVATION: Slot[Reservation] = Slot("billing.reservation")
#: extra fees of a request, by price-catalogue name (each row's ``per_request``, times the
#: group multiplier), reserved with the request and charged with its answer while the slot
#: still holds them: ``online/stage.py`` puts the web-search fee here and takes it out again
#: when no search ran. Paid from the balance or a credit package; a counts or unlimited
#: package covers them.
SURCHARGES: Slot[tuple[str, ...]] = Slot("billing.surcharges")
#: the catalogue names of the fees the gateway knows (a price may be set for them though no
#: channel lists them): ``web-search``, one online request's search (docs/online.md)
FEE_NAMES: tuple[str, ...] = ("web-search",)

ProvisionalLine = Callable[[RelayContext, Usage], bytes | None]


def _charges_anything(price: ModelPrice) -> bool:
    return any(
        getattr(price, name)
        for name in (
            "input", "output", "per_request", "per_image", "per_second", "per_character",
            "training", "audio_input", "audio_output",
        )
    ) or bool(price.image_prices)  # fmt: skip


class Billing:
    """The billing stage of one worker."""

    def __init__(
        self,
        prices: PriceTable,
        plans: PlanStore,
        book: Book,
        *,
        default_max_output: int = 4096,
        lease_units: int = 10_000_000,
    ) -> None:
        self.prices = prices
        self._plans = plans
        self.book = book
        self._default_out = default_max_output
        self._lease_units = lease_units
        self._packages: dict[int, tuple[float, list[PackageRecord]]] = {}
        # set by the app: the request-log writer's hooks (requestlog/writer.py)
        self.provisional_line: ProvisionalLine | None = None
        self.spool_line: Callable[[bytes], None] | None = None
        #: the models that serve a model (``Catalog.chain``): an alias without a price of
        #: its own is charged at the first priced model it stands for
        self.chain: Callable[[str], tuple[str, ...]] | None = None

    async def config_changed(
        self, revision: int, reload: Callable[[], Awaitable[PriceTable]]
    ) -> None:
        """The configuration changed (any worker): reload prices, forget package lists."""
        self._packages.clear()
        if revision != self.prices.revision:
            self.prices.update_from(await reload())  # in place: state.prices is this table

    def forget_packages(self, user_id: int | None = None) -> None:
        """Drop cached package lists (after a grant, a redemption, an admin change)."""
        if user_id is None:
            self._packages.clear()
        else:
            self._packages.pop(user_id, None)

    async def _user_packages(self, user_id: int) -> list[PackageRecord]:
        now = time.monotonic()
        hit = self._packages.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self._plans.active_packages(user_id, datetime.now(UTC))
        self._packages[user_id] = (now + PACKAGES_TTL, found)
        return found

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price; an alias without one of its own is charged at the first
        priced model it stands for."""
        price = self.prices.get(model)
        if price is None and self.chain is not None:
            for served in self.chain(model)[1:]:
                price = self.prices.get(served)
                if price is not None:
                    break
        return price

    # ---- reserve -----------------------------------------------------------------------
    def _max_output(self, body: dict[str, Any], price: ModelPrice | None) -> int:
        for field in ("max_completion_tokens", "max_tokens"):
            v = body.get(field)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
        cap = price.max_output if price is not None and price.max_output else None
        return min(cap, self._default_out) if cap else self._default_out

    async def reserve(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        try:
            await self._reserve(ctx, body)
        except RelayError:
            raise
        except Exception as exc:  # the database behind the leases or packages failed
            res = ctx.get(RESERVATION)
            if res is not None and res.key_amount and ctx.key is not None:
                self.book.settle(("k", ctx.key.id), res.key_amount, 0)  # nothing held
                res.key_amount = 0
            log.error(
                "billing could not reserve", exc_info=exc, extra={"request_id": ctx.request_id}
            )
            raise ServiceUnavailable(
                "Billing is unavailable for a moment (its database did not answer); retry shortly."
            ) from None

    async def _reserve(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        assert ctx.user is not None and ctx.key is not None and ctx.model is not None
        model = ctx.model
        price = self.price_of(model)
        mult = self.prices.multiplier(ctx.user.group_name)
        endpoint = ctx.endpoint
        prompt = (
            count_value(body.get("prompt")) if endpoint == "completions" else count_prompt(body)
        )
        if endpoint in _GENERATING:
            n = body.get("n")
            choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
            best_of = body.get("best_of")  # completions: best_of answers are generated
            if isinstance(best_of, int) and not isinstance(best_of, bool) and best_of > choices:
                choices = best_of
            out = self._max_output(body, price) * choices
        else:
            out = 0
        worst = 0
        fee = 0
        if price is not None:
            worst = token_cost(price, Usage(prompt_tokens=prompt, completion_tokens=out), mult)
            estimate = ctx.get(MEASURE)
            if estimate is not None:
                worst += media_cost(price, estimate, mult)
            fee = self._surcharge(ctx, mult)
            worst += fee
        res = Reservation("free", price, mult, prompt, fee=fee)
        ctx.put(RESERVATION, res)
        if ctx.stream:
            ctx.put(METER, StreamMeter())

        for pkg in await self._user_packages(ctx.user.id):
            if not pkg.covers(model):
                continue
            if pkg.kind == "unlimited":
                res.how, res.package_id = "unlimited", pkg.id
                if pkg.rpm_limit or pkg.tpm_limit or pkg.daily_requests:
                    ctx.put(
                        PLAN_LIMITS,
                        PlanLimits(
                            pkg.plan_id,
                            pkg.rpm_limit,
                            pkg.tpm_limit,
                            pkg.daily_requests,
                            pkg.plan_name,
                        ),
                    )
                return
            if pkg.kind == "counts":
                need = pkg.counts_for(model)
                if await self.book.reserve(("p", pkg.id), need, max(need, COUNTS_LEASE)):
                    res.how, res.package_id, res.amount, res.counts = "counts", pkg.id, need, need
                    return
            elif (
                pkg.kind == "credit"
                and worst > 0
                and await self.book.reserve(("p", pkg.id), worst, self._lease_units)
            ):
                res.how, res.package_id, res.amount = "credit", pkg.id, worst
                return
        if price is None:
            res.how = "unpriced"
            return
        if worst == 0:
            if not _charges_anything(price):
                res.how = "free"
                return
            # priced, but its size is only known from the answer (a transcription whose
            # length could not be read here): promise a unit, charge what is reported
            worst = 1
        key = ctx.key
        if key.spend_limit is not None:
            if not await self.book.reserve(("k", key.id), worst, self._lease_units):
                raise QuotaExceeded(
                    "This key has reached its spending cap; raise the cap or use another key."
                )
            res.key_amount = worst
        if not await self.book.reserve(("u", ctx.user.id), worst, self._lease_units):
            if res.key_amount:
                self.book.settle(("k", key.id), res.key_amount, 0)
                res.key_amount = 0
            raise QuotaExceeded(
                "Your balance is too low for this request"
                f" (it may cost up to {worst / 1_000_000:.6f}); top up or redeem a code."
            )
        res.how, res.amount = "balance", worst

    def _surcharge(self, ctx: RelayContext, mult: tuple[int, int]) -> int:
        """The request's extra fees (SURCHARGES) in units; an unpriced name costs nothing."""
        names = ctx.get(SURCHARGES)
        if not names:
            return 0
        total = 0
        for name in names:
            fee = self.price_of(name)
            if fee is not None and fee.per_request:
                total += token_cost(fee, Usage(), mult)
        return total

    def _fee(self, ctx: RelayContext, res: Reservation) -> int:
        """The surcharges still due (the slot still holds them)."""
        due = ctx.get(SURCHARGES)
        return res.fee if due else 0

    # ---- settle --------------------------------------------------------------------------
    def _delivered(self, ctx: RelayContext, res: Reservation) -> Usage | None:
        """What to charge for: None when nothing was delivered."""
        meter = ctx.get(METER)
        usage = ctx.usage
        if not ctx.started_response or (ctx.status >= 400 and meter is None):
            return None  # no answer reached the client
        complete = ctx.status < 400 and not ctx.client_disconnected and ctx.error_code is None
        if usage is not None and complete:
            return usage
        if meter is not None:
            if meter.tokens == 0 and meter.chunks == 0:
                return None
            prompt = usage.prompt_tokens if usage is not None else res.prompt_tokens
            return Usage(prompt_tokens=prompt, completion_tokens=meter.tokens)
        return usage

    def settle(self, ctx: RelayContext) -> None:
        """Fix the request's charge (``ctx.cost``/``counts``) and end its promise.
        Idempotent; never raises."""
        res = ctx.get(RESERVATION)
        if res is None or res.settled:
            return
        res.settled = True
        try:
            self._settle(ctx, res)
        except Exception:  # pragma: no cover - a bug here must not fail the request
            log.exception("settling a request failed", extra={"request_id": ctx.request_id})

    def _settle(self, ctx: RelayContext, res: Reservation) -> None:
        usage = self._delivered(ctx, res)
        ctx.billing = res.how
        ctx.package_id = res.package_id
        if usage is not None and ctx.usage is None:
            ctx.usage = usage  # locally counted: the log row shows it
        measure = ctx.get(MEASURE) if ctx.started_response and ctx.status < 400 else None
        if usage is None and measure is not None:
            usage = Usage()  # delivered, and measured in images, seconds or characters
        cost = 0
        if usage is not None and res.price is not None:
            cost = token_cost(res.price, usage, res.mult) + self._fee(ctx, res)
            if measure is not None:
                cost += media_cost(res.price, measure, res.mult)
        assert ctx.user is not None and ctx.key is not None
        if res.how == "balance":
            ctx.cost = cost
            self.book.settle(("u", ctx.user.id), res.amount, cost)
            if res.key_amount:
                self.book.settle(("k", ctx.key.id), res.key_amount, cost)
        elif res.how == "counts":
            ctx.counts = res.counts if usage is not None else 0
            self.book.settle(("p", res.package_id or 0), res.amount, ctx.counts)
        elif res.how == "credit":
            ctx.counts = cost  # credit used, in units
            self.book.settle(("p", res.package_id or 0), res.amount, cost)

    # ---- deferred charges -------------------------------------------------------------------
    async def require_funds(self, ctx: RelayContext) -> None:
        """Before starting work that is charged when it is done (a run, a fine-tuning job, a
        batch, a video): the balance, and the key's spending cap if it has one, must still
        cover something. 403 ``insufficient_quota`` otherwise, and nothing is started."""
        assert ctx.user is not None and ctx.key is not None
        budgets = [("u", ctx.user.id)]
        if ctx.key.spend_limit is not None:
            budgets.append(("k", ctx.key.id))
        for budget in budgets:
            if not await self.book.reserve(budget, 1, self._lease_units):
                raise QuotaExceeded(
                    "Your balance is used up; this work is charged from the balance when it "
                    "is done. Top up or redeem a code."
                    if budget[0] == "u"
                    else "This key has reached its spending cap; raise the cap or use another key."
                )
            self.book.settle(budget, 1, 0)

    async def charge_deferred(
        self, ctx: RelayContext, model: str, usage: Usage | None, measure: Measure | None
    ) -> None:
        """Charge, with this request's log row, work an upstream job reported done only
        now (a fine-tuning job's training tokens, a run's or a batch's tokens, a video's
        seconds): from the balance, without a reservation, since its size was not known
        when the job was created (the balance may go below zero by it). The caller has
        claimed the object's charge (``storage/objects.py``) so it is made once."""
        assert ctx.user is not None
        price = self.price_of(model)
        mult = self.prices.multiplier(ctx.user.group_name)
        await self.book.reserve(("u", ctx.user.id), 0, self._lease_units)
        res = Reservation("balance" if price is not None else "unpriced", price, mult, 0)
        old = ctx.get(RESERVATION)
        if old is not None and not old.settled:
            self.settle(ctx)  # end the request's own promise first (nothing was held)
        ctx.put(RESERVATION, res)
        ctx.model = model
        ctx.usage = usage if usage is not None else Usage()
        if measure is not None:
            ctx.put(MEASURE, measure)

    # ---- streams: provisional charge ---------------------------------------------------------
    def progress(self, ctx: RelayContext) -> bytes | None:
        """The provisional row of a running stream (the caller has fed the meter with the
        chunks about to be written): what it will have delivered, priced. The caller
        writes the chunks, then hands the line to :meth:`spool` — charged if the worker
        dies. None when there is nothing to record."""
        res = ctx.get(RESERVATION)
        meter = ctx.get(METER)
        hook = self.provisional_line
        if res is None or meter is None or hook is None:
            return None
        if res.how in ("free", "unpriced", "unlimited"):
            return None
        usage = Usage(prompt_tokens=res.prompt_tokens, completion_tokens=meter.tokens)
        cost = 0
        if res.price is not None:
            cost = token_cost(res.price, usage, res.mult) + self._fee(ctx, res)
        ctx.billing = res.how
        ctx.package_id = res.package_id
        if res.how == "balance":
            ctx.cost = cost
        elif res.how == "counts":
            ctx.counts = res.counts
        else:
            ctx.counts = cost
        return hook(ctx, usage)

    def spool(self, line: bytes) -> None:
        hook = self.spool_line
        if hook is not None:
            hook(line)
