"""Model routes: aliases, fallback chains and per-model hedging (docs/admin-api.md).

A route ``{"name": n, "fallbacks": [f1, f2, …], "hedge_after_ms": t}`` says how a request
for the public model ``n`` is served:

1. by ``n``'s own channels (the enabled channels that list ``n``), if there are any;
2. then by each fallback in order. A fallback that has a route itself expands to its own
   channels, then its fallbacks (depth first), so ``gpt-3.5-turbo-16k → [1106, 0613]``
   tries the 1106 channels, then the 0613 ones.

An *alias* is a route whose name no channel serves: its requests are served by its fallbacks
only. ``hedge_after_ms`` (50..60000, or null for none) is the hedging threshold for requests
of this model: when the first byte has not arrived after that many milliseconds, the same
request starts on the next candidate and the first to answer is kept. ``shaping`` (an object,
or null for none) holds the request-shaping rules of requests for ``n``
(``services/shaping_rules.py`` checks them; docs/request-shaping.md). A route may hold only
shaping rules: ``{"name": "gpt-4o", "shaping": {…}}`` for a model some channel serves, with
no fallbacks, changes nothing about how it is served.

What a save refuses, each with a :class:`ValidationError` naming the field and saying why:

* ``name`` empty, longer than 128 characters, or with whitespace;
* ``fallbacks`` not an array of 0..16 distinct, non-empty strings without whitespace;
* a fallback equal to the name (an alias that names itself);
* a cycle through other routes (the message shows the path, ``a → b → a``);
* a fallback that no channel serves (in any status) and no route defines: probably a typo,
  refused unless the body says ``"force": true`` (not stored);
* a route whose name no channel serves and that has no fallbacks (it would serve nothing);
* ``hedge_after_ms`` out of range; ``shaping`` rules ``shaping_rules`` refuses; unknown
  fields.

A patch is checked as a whole: the stored route with the change applied, against the other
stored routes. Deleting a route that another route names as a fallback is refused when no
channel serves its name (the other route's chain would point at nothing).

The checks run against what is stored when the write starts; two concurrent writes could
still close a cycle between them, so the router also stops at a name it has already visited.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from relaygate.errors import NotFound
from relaygate.services.admin import ConflictError
from relaygate.services.fields import (
    Field,
    Schema,
    ValidationError,
    boolean,
    integer,
    nullable,
    string,
    string_list,
)
from relaygate.services.shaping_rules import shaping_rules
from relaygate.storage.base import Conflict
from relaygate.storage.records import ModelRouteRecord
from relaygate.storage.repo import Repository

__all__ = [
    "FALLBACKS_MAX",
    "HEDGE_MAX_MS",
    "HEDGE_MIN_MS",
    "ROUTE",
    "RouteService",
    "check_route",
    "find_cycle",
    "validate_route_create",
    "validate_route_patch",
]

FALLBACKS_MAX = 16
HEDGE_MIN_MS = 50
HEDGE_MAX_MS = 60_000

_model_name = string(1, 128, no_space=True)


def _shaping(name: str, value: Any) -> dict[str, Any] | None:
    """The rules, or None when they do nothing (``{}``)."""
    return shaping_rules(name, value) or None


ROUTE = Schema(
    "model route",
    {
        "name": Field(_model_name, required=True, patchable=False),
        "fallbacks": Field(string_list(0, _model_name, max_items=FALLBACKS_MAX), default=[]),
        "hedge_after_ms": Field(nullable(integer(HEDGE_MIN_MS, HEDGE_MAX_MS)), default=None),
        "description": Field(string(0, 512), default=""),
        "shaping": Field(nullable(_shaping), default=None),
    },
)


def _split_force(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``force`` is an instruction, not a field of the route: taken out before the schema."""
    if not isinstance(body, Mapping) or "force" not in body:
        return body, False
    force = boolean("force", body["force"])
    return {k: v for k, v in body.items() if k != "force"}, force


def validate_route_create(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The route's fields (defaults filled in) and ``force``."""
    rest, force = _split_force(body)
    return ROUTE.create(rest), force


def validate_route_patch(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The fields given (at least one) and ``force``."""
    rest, force = _split_force(body)
    return ROUTE.patch(rest), force


def find_cycle(start: str, graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A path from ``start`` back to a name already on the path (``[a, b, a]``), following
    fallbacks that have a route of their own, or None when every chain from ``start`` ends."""
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in on_path:
            return [*path[path.index(name) :], name]
        if name in done or name not in graph:
            return None
        path.append(name)
        on_path.add(name)
        for nxt in graph[name]:
            found = visit(nxt)
            if found is not None:
                return found
        path.pop()
        on_path.discard(name)
        done.add(name)
        return None

    return visit(start)


def check_route(
    name: str,
    fallbacks: Sequence[str],
    *,
    routes: Mapping[str, Sequence[str]],
    served: Collection[str],
    force: bool = False,
) -> None:
    """The rules that need the rest of the configuration. ``routes``: the other stored routes
    (name → fallbacks; an entry for ``name`` itself is replaced); ``served``: every model
    some channel lists, in any status."""
    for i, fb in enumerate(fallbacks):
        if fb == name:
            raise ValidationError(
                "fallbacks",
                f"`fallbacks[{i}]` is the route's own name {name!r}: an alias that names "
                "itself would serve nothing.",
            )
    graph = {**routes, name: list(fallbacks)}
    cycle = find_cycle(name, graph)
    if cycle is not None:
        raise ValidationError(
            "fallbacks",
            f"`fallbacks` would make a cycle: {' → '.join(cycle)}; a fallback chain must end.",
        )
    if not force:
        for i, fb in enumerate(fallbacks):
            if fb not in served and fb not in graph:
                raise ValidationError(
                    "fallbacks",
                    f"`fallbacks[{i}]` is {fb!r}, which no channel serves and no route "
                    'defines; check the name, or send "force": true to save it anyway.',
                )
    if not fallbacks and name not in served:
        raise ValidationError(
            "fallbacks",
            f"No channel serves {name!r} and `fallbacks` is empty: the route would serve "
            "nothing. Give at least one fallback.",
        )


class RouteService:
    """Validated writes of model routes (the admin API's ``/admin/api/model-routes``)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def list_routes(self) -> list[ModelRouteRecord]:
        return await self.repo.model_routes.list()

    async def get_route(self, name: str) -> ModelRouteRecord:
        route = await self.repo.model_routes.get(name)
        if route is None:
            raise NotFound(f"No model route named {name!r}.", param="name")
        return route

    async def create_route(self, body: Mapping[str, Any]) -> ModelRouteRecord:
        fields, force = validate_route_create(body)
        name = fields["name"]
        routes, served = await self._context()
        if name in routes:
            raise ConflictError(f"A model route named {name!r} exists; change it with PATCH.")
        check_route(name, fields["fallbacks"], routes=routes, served=served, force=force)
        try:
            return await self.repo.model_routes.create(**fields)
        except Conflict as exc:  # created concurrently
            raise ConflictError(f"A model route named {name!r} exists.") from exc

    async def update_route(self, name: str, body: Mapping[str, Any]) -> ModelRouteRecord:
        fields, force = validate_route_patch(body)
        current = await self.get_route(name)
        routes, served = await self._context()
        fallbacks = fields.get("fallbacks", list(current.fallbacks))
        # a stored fallback accepted with force stays acceptable; new unknown ones need force
        check_route(
            name,
            fallbacks,
            routes=routes,
            served=served,
            force=force or "fallbacks" not in fields,
        )
        updated = await self.repo.model_routes.update(name, fields)
        if updated is None:
            raise NotFound(f"No model route named {name!r}.", param="name")
        return updated

    async def delete_route(self, name: str) -> None:
        routes, served = await self._context()
        users = sorted(other for other, fbs in routes.items() if other != name and name in fbs)
        if users and name in routes and name not in served:
            names = ", ".join(repr(u) for u in users)
            raise ValidationError(
                "name",
                f"The route {name!r} is a fallback of {names} and no channel serves it: "
                "remove it from their `fallbacks` first.",
            )
        if not await self.repo.model_routes.delete(name):
            raise NotFound(f"No model route named {name!r}.", param="name")

    async def _context(self) -> tuple[dict[str, list[str]], set[str]]:
        """The stored routes (name → fallbacks) and every model some channel lists."""
        routes = {r.name: list(r.fallbacks) for r in await self.repo.model_routes.list()}
        served = {m for ch in await self.repo.channels.list() for m in ch.models}
        return routes, served
