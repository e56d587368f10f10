"""The admin API of content safety (docs/safety.md; the rules in
``relaygate.services.safety``):

* ``GET /admin/api/safety/lists`` - every list (with its word count); ``POST`` - create one
  (``{"name", "category", "action", "groups", "enabled", "description", "words"?}``);
* ``GET``/``PATCH``/``DELETE /admin/api/safety/lists/{id}`` - one list (``GET`` with
  ``?words=1`` also shows its words);
* ``POST /admin/api/safety/lists/{id}/words`` - add ``{"words": [...]}``; ``DELETE`` -
  remove ``{"words": [...]}``;
* ``POST /admin/api/safety/lists/{id}/import?format=txt|csv|json[&mode=add|replace]`` -
  the body is the file; ``GET …/export?format=…`` - the list as a file;
* ``POST /admin/api/safety/test`` - ``{"text", "group"?}``: the hits of the saved lists, as
  this worker compiled them;
* ``GET /admin/api/safety/audit`` - hits, newest first (``limit``, ``before_id``,
  ``user_id``, ``list_id``, ``since``, ``until``), with this worker's audit writer's
  ``backlog``, ``written`` and ``dropped`` rows.

The routes are built with the admin app's helpers (``api/admin_kit.AdminKit``):
authentication, error bodies, the 405 of other methods. The admin app reloads this
worker's catalog after every write, which reloads its lists (``ListHolder`` is a catalog
listener); other workers follow within ``RELAYGATE_REFRESH_INTERVAL``. An import body is
read raw, under the admin API's body limit (``RELAYGATE_MAX_BODY_BYTES``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.errors import BodyTooLarge, ServiceUnavailable
from relaygate.services.admin import AdminService
from relaygate.services.safety import SafetyService
from relaygate.state import AppState

__all__ = ["safety_routes"]


def _service(st: AppState) -> SafetyService:
    return SafetyService(st.repo.safety)


async def _raw_body(request: Request, limit: int) -> bytes:
    too_large = BodyTooLarge(
        f"The request body is larger than the {limit // 1024} KiB this gateway accepts; "
        "split the import."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def safety_routes(kit: AdminKit) -> list[Route]:
    respond, body_of = kit.respond, kit.body_of

    def list_id(request: Request) -> str:
        return str(request.path_params["id"])

    async def list_lists(request: Request, _: AdminService, st: AppState) -> Response:
        lists = await _service(st).list_lists()
        return respond({"data": [lst.to_public() for lst in lists]})

    async def create_list(request: Request, _: AdminService, st: AppState) -> Response:
        lst, check = await _service(st).create_list(await body_of(request))
        data = {**lst.to_public(), "duplicates": len(check.duplicates)}
        return respond({"data": data}, 201)

    async def get_list(request: Request, _: AdminService, st: AppState) -> Response:
        svc = _service(st)
        lst = await svc.get_list(list_id(request))
        data = lst.to_public()
        if request.query_params.get("words") in ("1", "true"):
            data["word_list"] = await svc.words(list_id(request))
        return respond({"data": data})

    async def patch_list(request: Request, _: AdminService, st: AppState) -> Response:
        lst = await _service(st).update_list(list_id(request), await body_of(request))
        return respond({"data": lst.to_public()})

    async def delete_list(request: Request, _: AdminService, st: AppState) -> Response:
        await _service(st).delete_list(list_id(request))
        return respond({})

    async def add_words(request: Request, _: AdminService, st: AppState) -> Response:
        got = await _service(st).add_words(list_id(request), await body_of(request))
        return respond({"data": got})

    async def remove_words(request: Request, _: AdminService, st: AppState) -> Response:
        got = await _service(st).remove_words(list_id(request), await body_of(request))
        return respond({"data": got})

    async def import_words(request: Request, _: AdminService, st: AppState) -> Response:
        raw = await _raw_body(request, st.settings.max_body_bytes)
        got = await _service(st).import_words(list_id(request), raw, request.query_params)
        return respond({"data": got})

    async def export_words(request: Request, _: AdminService, st: AppState) -> Response:
        body, kind = await _service(st).export_words(list_id(request), request.query_params)
        return Response(body, 200, media_type=kind)

    async def test_text(request: Request, _: AdminService, st: AppState) -> Response:
        safety = st.safety
        if safety is None:
            raise ServiceUnavailable("Content safety is off on this gateway (RELAYGATE_SAFETY=0).")
        body = await body_of(request)
        return respond({"data": SafetyService.test_text(safety.holder.policy, body)})

    async def audit(request: Request, _: AdminService, st: AppState) -> Response:
        page = await _service(st).audit(request.query_params)
        if st.safety is not None:  # this worker's writer: rows waiting, rows lost
            w = st.safety.audit
            page["writer"] = {"backlog": w.backlog, "written": w.written, "dropped": w.dropped}
        return respond(page)

    return [
        kit.resource("/safety/lists", {"GET": list_lists, "POST": create_list}),
        kit.resource(
            "/safety/lists/{id}", {"GET": get_list, "PATCH": patch_list, "DELETE": delete_list}
        ),
        kit.resource("/safety/lists/{id}/words", {"POST": add_words, "DELETE": remove_words}),
        kit.resource("/safety/lists/{id}/import", {"POST": import_words}),
        kit.resource("/safety/lists/{id}/export", {"GET": export_words}),
        kit.resource("/safety/test", {"POST": test_text}),
        kit.resource("/safety/audit", {"GET": audit}),
    ]
