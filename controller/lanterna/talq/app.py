"""The Gateway API over HTTP (Starlette): the routes of the TALQ 2.7.1 Gateway OpenAPI
that the gateway implements, each answering as the OpenAPI file says (status, body,
TALQErrorMessage arrays for every refusal).

Authentication is TALQ's: TLS with a client certificate issued by the city's CA (the
server refuses the handshake without one: lanterna.cli.talq), and every request names
its sender in `clientAddress`, which must be the CMS's address once it is known (the
bootstrap, or --cms-address). `talq-api-version` must be present and of major version 2;
a write must carry a `talqRequestId` (a UUID).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lanterna.errors import LanternaError
from lanterna.talq.collect import Collector
from lanterna.talq.gateway import Gateway
from lanterna.talq.model import VERSION, TalqError, payload_error

log = logging.getLogger("lanterna.talq")
MAX_BODY = 32 * 1024 * 1024
DEFAULT_LIMIT = 1000
PAGE = 1000
HEADERS = {"talq-api-version": VERSION}


def _uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return len(v) == 36


class Api:
    def __init__(self, gw: Gateway, collector: Collector, cms_address: Callable[[], str | None]):
        self.gw = gw
        self.collector = collector
        self.cms_address = cms_address

    def check(self, request: Request, write: bool) -> str:
        """The TALQ request parameters every operation has; -> who (for the audit)."""
        v = request.headers.get("talq-api-version")
        if v is None:
            raise TalqError(400, "headerMissing", "header talq-api-version: missing")
        if v.split(".")[0].strip() != VERSION.split(".")[0]:
            raise TalqError(
                400,
                "headerValueNotValid",
                f"header talq-api-version {v!r}: this gateway speaks {VERSION}",
            )
        ca = request.query_params.get("clientAddress")
        if ca is None:
            raise TalqError(400, "parameterMissing", "clientAddress: missing")
        if not _uuid(ca):
            raise TalqError(400, "parameterValueNotValid", f"clientAddress {ca!r}: not a UUID")
        known = self.cms_address()
        if known is not None and ca.lower() != known.lower():
            raise TalqError(
                400,
                "parameterValueNotValid",
                f"clientAddress {ca}: not the CMS this gateway serves",
            )
        if write:
            rid = request.query_params.get("talqRequestId")
            if rid is None:
                raise TalqError(400, "parameterMissing", "talqRequestId: missing")
            if not _uuid(rid):
                raise TalqError(400, "parameterValueNotValid", f"talqRequestId {rid!r}: not a UUID")
            origin = request.query_params.get("talqOriginRequestId")
            if origin is not None and not _uuid(origin):
                raise TalqError(
                    400, "parameterValueNotValid", f"talqOriginRequestId {origin!r}: not a UUID"
                )
        return "cms:" + ca.lower()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status, headers={**HEADERS, **(headers or {})})


def _empty(status: int) -> Response:
    return Response(status_code=status, headers=HEADERS)


def _error(e: TalqError) -> Response:
    return _json(e.body(), e.status)


Handler = Callable[[Request, str, Any], Any]


def route(
    api: Api, write: bool, fn: Handler, body: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            who = api.check(request, write)
            data: Any = None
            if body:
                raw = await request.body()
                if len(raw) > MAX_BODY:
                    raise payload_error(f"body of {len(raw)} bytes: at most {MAX_BODY}")
                ctype = request.headers.get("content-type", "application/json").split(";")[0]
                if ctype.strip().lower() not in ("application/json", ""):
                    raise payload_error(f"Content-Type {ctype!r}: expected application/json")
                try:
                    data = json.loads(raw)
                except ValueError as e:
                    raise payload_error(f"body: not JSON ({e})") from None
            out = await run_in_threadpool(fn, request, who, data)
        except TalqError as e:
            return _error(e)
        except LanternaError as e:  # no broker for a write, a store error
            status = 503 if "broker" in str(e).lower() else 422
            return _error(TalqError(status if status != 503 else 422, "genericError", str(e)))
        except Exception as e:
            log.exception("talq %s %s", request.method, request.url.path)
            return _error(TalqError(500, "genericError", f"{type(e).__name__}: {e}"))
        if isinstance(out, Response):
            return out
        if isinstance(out, int) and not isinstance(out, bool) and out in (200, 201, 202):
            return _empty(out)
        return _json(out)

    return endpoint


def _int_param(request: Request, name: str) -> int | None:
    v = request.query_params.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise TalqError(400, "parameterValueNotValid", f"{name} {v!r}: not an integer") from None


def _classes(request: Request) -> list[str] | None:
    vals = request.query_params.getlist("deviceClasses")
    out = [c for v in vals for c in v.split(",") if c]
    return out or None


def build(gw: Gateway, collector: Collector, cms_address: Callable[[], str | None]) -> Starlette:
    api = Api(gw, collector, cms_address)
    p = lambda r, k: r.path_params[k]  # noqa: E731
    rid = lambda r: r.query_params.get("talqRequestId")  # noqa: E731

    def get_devices(r: Request, who: str, _: Any) -> Any:
        classes = _classes(r)
        offset, limit = _int_param(r, "offset"), _int_param(r, "limit")
        if offset is None and limit is None:
            return _stream(gw, classes)
        if limit is None:
            limit = DEFAULT_LIMIT
        total = gw.count(classes)
        out = gw.devices(classes, offset or 0, limit)
        return _json(
            out,
            headers={
                "pagination-count": str(len(out)),
                "pagination-offset": str(offset or 0),
                "pagination-totalCount": str(total),
                "pagination-defaultLimit": str(DEFAULT_LIMIT),
            },
        )

    def no_create(r: Request, who: str, body: Any) -> Any:
        raise TalqError(
            422,
            "resourceConflict",
            "devices are poles provisioned with their keys (`lanterna provision`, "
            "docs/provisioning.md): a CMS cannot add, replace or delete them",
        )

    def patch_device(r: Request, who: str, body: Any) -> Any:
        return gw.patch_devices(body, who, rid(r), address=p(r, "deviceAddress"))

    def delete_device(r: Request, who: str, body: Any) -> Any:
        gw.node_of(p(r, "deviceAddress"))
        return no_create(r, who, body)

    def objects(kind: str) -> dict[str, Handler]:
        return {
            "list": lambda r, w, b: (
                gw.objects(kind) + (gw.lanterna_calendars() if kind == "calendar" else [])
            ),
            "count": lambda r, w, b: len(gw.objects(kind)),
            "post": lambda r, w, b: _json(gw.put_objects(kind, b, True, w, rid(r)), 201),
            "put": lambda r, w, b: gw.put_objects(kind, b, False, w, rid(r)),
            "get": lambda r, w, b: gw.object(kind, p(r, "oid")),
            "put1": lambda r, w, b: gw.put_object(kind, p(r, "oid"), b, w, rid(r)),
            "delete": lambda r, w, b: gw.delete_object(kind, p(r, "oid")),
        }

    routes = [
        Route("/devices", route(api, False, get_devices), methods=["GET"]),
        Route(
            "/devices",
            route(api, True, lambda r, w, b: gw.patch_devices(b, w, rid(r)), True),
            methods=["PATCH"],
        ),
        Route("/devices", route(api, True, no_create, True), methods=["POST", "PUT"]),
        Route(
            "/devices/count",
            route(api, False, lambda r, w, b: gw.count(_classes(r))),
            methods=["GET"],
        ),
        Route(
            "/devices/{deviceAddress}",
            route(api, False, lambda r, w, b: gw.device(p(r, "deviceAddress"))),
            methods=["GET"],
        ),
        Route("/devices/{deviceAddress}", route(api, True, patch_device, True), methods=["PATCH"]),
        Route("/devices/{deviceAddress}", route(api, True, delete_device), methods=["DELETE"]),
        Route(
            "/devices/{deviceAddress}/{functionId}",
            route(
                api, False, lambda r, w, b: gw.function(p(r, "deviceAddress"), p(r, "functionId"))
            ),
            methods=["GET"],
        ),
        Route(
            "/devices/{deviceAddress}/{functionId}",
            route(
                api,
                True,
                lambda r, w, b: gw.patch_function(
                    p(r, "deviceAddress"), p(r, "functionId"), b, w, rid(r)
                ),
                True,
            ),
            methods=["PATCH"],
        ),
        Route(
            "/devices/{deviceAddress}/{functionId}/{attributeName}",
            route(
                api,
                False,
                lambda r, w, b: gw.attribute(
                    p(r, "deviceAddress"), p(r, "functionId"), p(r, "attributeName")
                ),
            ),
            methods=["GET"],
        ),
        Route(
            "/devices/{deviceAddress}/{functionId}/{attributeName}",
            route(
                api,
                True,
                lambda r, w, b: gw.patch_attribute(
                    p(r, "deviceAddress"), p(r, "functionId"), p(r, "attributeName"), b, w, rid(r)
                ),
                True,
            ),
            methods=["PATCH"],
        ),
        Route(
            "/device-classes",
            route(api, False, lambda r, w, b: gw.device_classes()),
            methods=["GET"],
        ),
        Route(
            "/device-classes/count",
            route(api, False, lambda r, w, b: len(gw.device_classes())),
            methods=["GET"],
        ),
        Route(
            "/device-classes/{className}",
            route(api, False, lambda r, w, b: gw.device_class(p(r, "className"))),
            methods=["GET"],
        ),
        Route("/groups", route(api, False, lambda r, w, b: gw.groups()), methods=["GET"]),
        Route(
            "/groups",
            route(api, True, lambda r, w, b: _json(gw.put_groups(b, True), 201), True),
            methods=["POST"],
        ),
        Route(
            "/groups",
            route(api, True, lambda r, w, b: gw.put_groups(b, False), True),
            methods=["PUT"],
        ),
        Route(
            "/groups/count", route(api, False, lambda r, w, b: len(gw.groups())), methods=["GET"]
        ),
        Route(
            "/groups/{groupAddress}",
            route(api, False, lambda r, w, b: gw.group(p(r, "groupAddress"))),
            methods=["GET"],
        ),
        Route(
            "/groups/{groupAddress}",
            route(api, True, lambda r, w, b: gw.put_group(p(r, "groupAddress"), b), True),
            methods=["PUT"],
        ),
        Route(
            "/groups/{groupAddress}",
            route(api, True, lambda r, w, b: gw.delete_group(p(r, "groupAddress"))),
            methods=["DELETE"],
        ),
        Route(
            "/groups/{groupAddress}/members",
            route(api, True, lambda r, w, b: gw.put_members(p(r, "groupAddress"), b), True),
            methods=["PUT"],
        ),
        Route(
            "/groups/{groupAddress}/members/count",
            route(api, False, lambda r, w, b: gw.member_count(p(r, "groupAddress"))),
            methods=["GET"],
        ),
        Route(
            "/groups/{groupAddress}/members/{memberResource}/{memberAddress}",
            route(
                api,
                True,
                lambda r, w, b: gw.delete_member(
                    p(r, "groupAddress"), p(r, "memberResource"), p(r, "memberAddress")
                ),
            ),
            methods=["DELETE"],
        ),
        Route(
            "/assign-commands",
            route(
                api,
                False,
                lambda r, w, b: [gw.object("assign", i) for i in sorted(gw.state().ids("assign"))],
            ),
            methods=["GET"],
        ),
        Route(
            "/assign-commands",
            route(api, True, lambda r, w, b: gw.assign(b, w, rid(r)), True),
            methods=["POST"],
        ),
        Route(
            "/override-commands",
            route(api, True, lambda r, w, b: gw.override(b, w, rid(r)), True),
            methods=["POST"],
        ),
        Route(
            "/logger-configs",
            route(api, True, lambda r, w, b: (collector.put(b, True), 201)[1], True),
            methods=["POST"],
        ),
        Route(
            "/logger-configs/{oid}",
            route(api, False, lambda r, w, b: collector.get(p(r, "oid"))),
            methods=["GET"],
        ),
        Route(
            "/logger-configs/{oid}",
            route(api, True, lambda r, w, b: (collector.put(b, False, p(r, "oid")), 200)[1], True),
            methods=["PUT"],
        ),
        Route(
            "/logger-configs/{oid}",
            route(api, True, lambda r, w, b: collector.delete(p(r, "oid"))),
            methods=["DELETE"],
        ),
        Route(
            "/log-reports/count",
            route(api, False, lambda r, w, b: collector.count()),
            methods=["GET"],
        ),
        Route(
            "/log-reports/{oid}",
            route(api, False, lambda r, w, b: collector.take_report(p(r, "oid"))),
            methods=["GET"],
        ),
        Route("/services", route(api, False, lambda r, w, b: gw.services()), methods=["GET"]),
        Route(
            "/services/{name}",
            route(api, False, lambda r, w, b: gw.service(p(r, "name"))),
            methods=["GET"],
        ),
        Route("/data-packages", route(api, False, lambda r, w, b: []), methods=["GET"]),
        Route("/data-packages", route(api, True, _no_packages, True), methods=["PUT"]),
    ]
    for kind, res, key in (
        ("calendar", "calendars", "calendarAddress"),
        ("program", "control-programs", "controlProgramAddress"),
    ):
        h = objects(kind)
        routes += [
            Route(f"/{res}", route(api, False, h["list"]), methods=["GET"]),
            Route(f"/{res}", route(api, True, h["post"], True), methods=["POST"]),
            Route(f"/{res}", route(api, True, h["put"], True), methods=["PUT"]),
            Route(f"/{res}/count", route(api, False, h["count"]), methods=["GET"]),
            Route(f"/{res}/{{oid}}", route(api, False, h["get"]), methods=["GET"]),
            Route(f"/{res}/{{oid}}", route(api, True, h["put1"], True), methods=["PUT"]),
            Route(f"/{res}/{{oid}}", route(api, True, h["delete"]), methods=["DELETE"]),
        ]
        del key
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return _error(
                TalqError(
                    405,
                    "genericError",
                    f"{request.method} {request.url.path}: not an operation of this gateway",
                )
            )
        return _error(
            TalqError(
                404,
                "resourceNotFound",
                f"{request.url.path}: not a resource of this gateway "
                "(docs/talq.md lists what it implements)",
            )
        )

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return app


def _no_packages(r: Request, who: str, body: Any) -> Any:
    if not isinstance(body, list):
        raise payload_error("expected a list of DataPackage objects")
    raise TalqError(
        422,
        "resourceConflict",
        "the Data Package service is not offered: firmware reaches the poles as "
        "signed bundles through `lanterna ota` (docs/ota.md)",
    )


def _stream(gw: Gateway, classes: list[str] | None) -> Response:
    """The whole list, a page at a time (each page rendered in a worker thread, on its
    store): a quarter of a million devices never sit in memory at once."""
    ids = gw._ids_of_classes(classes)

    def page(part: list[str]) -> bytes:
        return b",".join(
            json.dumps(d, separators=(",", ":")).encode() for pg in gw._pages(part) for d in pg
        )

    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for i in range(0, len(ids), PAGE):
            body = await run_in_threadpool(page, ids[i : i + PAGE])
            yield (b"," if i else b"") + body
        yield b"]"

    return StreamingResponse(chunks(), media_type="application/json", headers=HEADERS)
