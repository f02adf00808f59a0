"""A small NGSI-LD context broker for the tests, written from ETSI GS CIM 009 (v1.6 and later).

The bridge (controller/lanterna/bridge/) is tested against this peer instead of a mock: it
speaks HTTP/1.1 on a loopback port and checks what a broker checks for the subset the
bridge uses: batch upsert (POST /entityOperations/upsert, options update or replace),
entity retrieval (6.5.3.1) and a query by type (5.7.2, 6.4.3.2), per tenant (the
NGSILD-Tenant header), with ProblemDetails errors (the types of table 6.3.4-1).

A batch that creates some entities and updates others is answered 201 with the ids
created, as the spec's answer table says (204 only when every entity existed). A JSON-LD
context in the wrong place (ld+json with a context Link header, json with @context in the
body) is refused whole with 415; brokers differ here (some answer 400 BadRequestData), and a
client that treats both as "this request will never succeed" is right against either.

The test drives the failures a real platform shows: down()/up() (connections refused, then
accepted on the same port with the entities kept), fail() (every request answered with a
status, e.g. 503, a number of times), stall() (requests held until an event is set),
fail_entities() (chosen ids fail inside a 207). It waits on what the peer saw with
wait_for(), which wakes on every request, never polling.

Only the Python standard library: the peer must not depend on what it tests.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = "/ngsi-ld/v1"
UPSERT_PATH = API + "/entityOperations/upsert"
ENTITIES_PATH = API + "/entities"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
TENANT_HEADER = "NGSILD-Tenant"
JSON = "application/json"
JSONLD = "application/ld+json"

# Table 6.3.4-1: the error types and the HTTP status each comes with.
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
INVALID_REQUEST = ERR + "InvalidRequest"
BAD_REQUEST_DATA = ERR + "BadRequestData"
ALREADY_EXISTS = ERR + "AlreadyExists"
OPERATION_NOT_SUPPORTED = ERR + "OperationNotSupported"
RESOURCE_NOT_FOUND = ERR + "ResourceNotFound"
INTERNAL_ERROR = ERR + "InternalError"
TOO_MANY_RESULTS = ERR + "TooManyResults"
NONEXISTENT_TENANT = ERR + "NonexistentTenant"
_TYPE_FOR_STATUS = {
    400: BAD_REQUEST_DATA,
    403: TOO_MANY_RESULTS,
    404: RESOURCE_NOT_FOUND,
    409: ALREADY_EXISTS,
    422: OPERATION_NOT_SUPPORTED,
}
_TITLES = {
    INVALID_REQUEST: "The request associated to the operation is syntactically invalid",
    BAD_REQUEST_DATA: "The request includes input data which does not meet the requirements",
    ALREADY_EXISTS: "The referred element already exists",
    OPERATION_NOT_SUPPORTED: "The operation is not supported",
    RESOURCE_NOT_FOUND: "The referred resource has not been found",
    INTERNAL_ERROR: "There has been an error during the operation execution",
    TOO_MANY_RESULTS: "The query associated to the operation is producing so many results",
    NONEXISTENT_TENANT: "The addressed tenant does not exist",
}

ATTRIBUTE_TYPES = ("Property", "Relationship", "GeoProperty", "LanguageProperty")
NGSI_LD_NULL = "urn:ngsi-ld:null"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20

# Members of an attribute that are not sub-attributes (clause 4.5.2, 4.5.3, 4.5.18).
_ATTR_MEMBERS = {
    "type", "value", "object", "languageMap", "observedAt", "unitCode", "datasetId",
    "instanceId", "objectType", "createdAt", "modifiedAt", "deletedAt", "lang",
}  # fmt: skip
_SYSTEM_MEMBERS = {"createdAt", "modifiedAt", "deletedAt"}  # set by the broker, ignored in input
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
# GeoJSON (RFC 7946): how deep positions nest for each geometry type.
_GEO_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
              "Polygon": 2, "MultiPolygon": 3}  # fmt: skip


class Problem(Exception):
    """An NGSI-LD error: the HTTP status and the ProblemDetails it is answered with."""

    def __init__(self, status: int, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": _TITLES.get(self.type, "Error"),
            "detail": self.detail,
            "status": self.status,
        }


def problem_for_status(status: int, detail: str) -> Problem:
    type_ = _TYPE_FOR_STATUS.get(status, INTERNAL_ERROR if status >= 500 else INVALID_REQUEST)
    return Problem(status, type_, detail)


# --- validation of the normalized representation (clause 4.5) -------------------------


def is_uri(value: Any) -> bool:
    if not isinstance(value, str) or not _URI.match(value):
        return False
    if value.lower().startswith("urn:ngsi-ld:"):
        # urn:ngsi-ld:<Type>:<local id>: both parts non-empty
        parts = value.split(":", 3)
        return len(parts) == 4 and parts[2] != "" and parts[3] != ""
    return True


def is_utc_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not _UTC.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])
    except ValueError:
        return False
    return True


def _bad(where: str, what: str) -> Problem:
    return Problem(400, BAD_REQUEST_DATA, f"{where}: {what}")


def _check_position(pos: Any, where: str) -> None:
    if not isinstance(pos, list) or len(pos) not in (2, 3):
        raise _bad(where, "a position is [longitude, latitude] (optionally altitude)")
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in pos):
        raise _bad(where, "coordinates must be numbers")
    lon, lat = pos[0], pos[1]
    if not -180 <= lon <= 180 or not -90 <= lat <= 90:
        raise _bad(where, f"position {pos!r} out of range (longitude first, then latitude)")


def _check_coords(coords: Any, depth: int, where: str) -> None:
    if depth == 0:
        _check_position(coords, where)
        return
    if not isinstance(coords, list) or not coords:
        raise _bad(where, "coordinates must be a non-empty array")
    for c in coords:
        _check_coords(c, depth - 1, where)


def check_geometry(geo: Any, where: str) -> None:
    if not isinstance(geo, dict) or not isinstance(geo.get("type"), str):
        raise _bad(where, "a GeoProperty value must be a GeoJSON geometry object")
    kind = geo["type"]
    if kind == "GeometryCollection":
        parts = geo.get("geometries")
        if not isinstance(parts, list):
            raise _bad(where, "a GeometryCollection needs 'geometries'")
        for part in parts:
            check_geometry(part, where)
        return
    if kind not in _GEO_DEPTH:
        raise _bad(where, f"{kind!r} is not a GeoJSON geometry type")
    coords: Any = geo.get("coordinates")
    _check_coords(coords, _GEO_DEPTH[kind], where)
    if kind == "LineString" and len(coords) < 2:
        raise _bad(where, "a LineString needs two positions or more")
    rings = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    for polygon in rings:
        for ring in polygon:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise _bad(where, "a polygon ring needs 4 positions or more, first = last")


def check_attribute(name: str, attr: Any, where: str) -> None:
    where = f"{where} '{name}'"
    if isinstance(attr, list):  # multi-attribute (4.5.5): instances told apart by datasetId
        if not attr:
            raise _bad(where, "an attribute array must not be empty")
        for instance in attr:
            check_attribute(name, instance, where.rsplit(" ", 1)[0])
        return
    if not isinstance(attr, dict):
        raise _bad(where, "must be an object with a 'type' (normalized representation)")
    kind = attr.get("type")
    if kind not in ATTRIBUTE_TYPES:
        raise _bad(where, f"'type' must be one of {'/'.join(ATTRIBUTE_TYPES)}, not {kind!r}")
    if kind in ("Property", "GeoProperty"):
        if "value" not in attr:
            raise _bad(where, f"a {kind} needs a 'value'")
        if attr["value"] is None or attr["value"] == NGSI_LD_NULL:
            raise _bad(where, "null is not a value (5.2.1)")
        if kind == "GeoProperty":
            check_geometry(attr["value"], where)
    elif kind == "Relationship":
        if "object" not in attr:
            raise _bad(where, "a Relationship needs an 'object'")
        if not is_uri(attr["object"]) or attr["object"] == NGSI_LD_NULL:
            raise _bad(where, f"'object' must be a URI, not {attr['object']!r}")
    else:
        lmap = attr.get("languageMap")
        if not isinstance(lmap, dict) or not lmap:
            raise _bad(where, "a LanguageProperty needs a non-empty 'languageMap' object")
        for lang, text in lmap.items():
            ok = isinstance(text, str) or (
                isinstance(text, list) and all(isinstance(t, str) for t in text)
            )
            if not ok:
                raise _bad(where, f"languageMap '{lang}' must be a string or strings")
    if "observedAt" in attr and not is_utc_datetime(attr["observedAt"]):
        raise _bad(
            where,
            f"'observedAt' {attr['observedAt']!r} is not a UTC DateTime"
            " (YYYY-MM-DDThh:mm:ss[.sss]Z)",
        )
    if "unitCode" in attr and not (isinstance(attr["unitCode"], str) and attr["unitCode"]):
        raise _bad(where, "'unitCode' must be a non-empty string")
    if "datasetId" in attr and not is_uri(attr["datasetId"]):
        raise _bad(where, "'datasetId' must be a URI")
    for sub, value in attr.items():
        if sub not in _ATTR_MEMBERS:
            check_attribute(sub, value, where + " sub-attribute")


def check_entity(entity: Any, jsonld: bool) -> None:
    if not isinstance(entity, dict):
        raise _bad("entity", "must be a JSON object")
    eid = entity.get("id")
    if not is_uri(eid):
        raise _bad("entity 'id'", f"{eid!r} is not an absolute URI")
    where = f"entity {eid}"
    etype = entity.get("type")
    if not isinstance(etype, str) or not etype or any(c.isspace() for c in etype):
        raise _bad(where, f"'type' must be a non-empty string, not {etype!r}")
    if jsonld and "@context" not in entity:
        raise _bad(where, "Content-Type is application/ld+json but the entity has no @context")
    scope = entity.get("scope")
    if scope is not None and not (
        isinstance(scope, str)
        or (isinstance(scope, list) and all(isinstance(s, str) for s in scope))
    ):
        raise _bad(where, "'scope' must be a string or an array of strings")
    for name, attr in entity.items():
        if name in ("id", "type", "@context", "scope") or name in _SYSTEM_MEMBERS:
            continue
        check_attribute(name, attr, where + " attribute")


def stored_form(entity: dict[str, Any]) -> dict[str, Any]:
    return {
        k: copy.deepcopy(v)
        for k, v in entity.items()
        if k != "@context" and k not in _SYSTEM_MEMBERS
    }


# --- HTTP headers ------------------------------------------------------------------------


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def context_links(headers: list[str]) -> list[str]:
    """The URLs of the Link headers whose rel is the JSON-LD context (JSON-LD 1.1)."""
    urls = []
    for header in headers:
        for link in re.findall(r"<[^>]*>[^,]*", header):
            url, _, params = link.partition(">")
            rels = re.findall(r';\s*rel\s*=\s*"?([^";]+)"?', params)
            if JSONLD_REL in " ".join(rels).split():
                urls.append(url[1:].strip())
    return urls


# --- the peer ----------------------------------------------------------------------------


class Peer:
    def __init__(self, max_batch: int = 100) -> None:
        self.max_batch = max_batch
        self._cond = threading.Condition(threading.RLock())
        self._tenants: dict[str, dict[str, dict[str, Any]]] = {"": {}}
        self._contexts: dict[str, dict[str, Any]] = {"": {}}  # tenant -> id -> @context
        self._upserts: list[dict[str, Any]] = []
        self._fail: tuple[int, int | None, int | None] | None = None  # status, left, retry
        self._fail_ids: dict[str, int] = {}
        self._stall: threading.Event | None = None
        self._held = 0
        self._requests = 0
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.url = ""

    # lifecycle
    def start(self) -> Peer:
        self.up()
        return self

    def __enter__(self) -> Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        with self._cond:
            if self._stall is not None:
                self._stall.set()
            self._cond.notify_all()
        self.down()

    def up(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.peer = self
        self._port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self._port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        # Persistent connections would outlive the listening socket: cut them, so that a
        # peer that is down is down for a client holding a keep-alive connection too.
        with self._cond:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # failure injection
    def fail(
        self, status: int = 503, times: int | None = None, *, retry_after: int | None = None
    ) -> None:
        # retry_after: seconds, sent as Retry-After (RFC 9110, 10.2.3) with each failure
        with self._cond:
            self._fail = (status, times, retry_after)

    def stall(self) -> threading.Event:
        with self._cond:
            if self._stall is not None:
                self._stall.set()
            self._stall = threading.Event()
            return self._stall

    def fail_entities(self, ids: set[str], status: int = 400) -> None:
        with self._cond:
            self._fail_ids.update({i: status for i in ids})

    def clear(self) -> None:
        with self._cond:
            self._fail = None
            self._fail_ids.clear()
            if self._stall is not None:
                self._stall.set()
                self._stall = None
            self._cond.notify_all()

    # what the peer holds and saw
    def entities(self, tenant: str | None = None) -> dict[str, dict]:
        with self._cond:
            return copy.deepcopy(self._tenants.get(tenant or "", {}))

    def upserts(self) -> list[dict]:
        with self._cond:
            return copy.deepcopy(self._upserts)

    def held(self) -> int:
        """How many requests stall() is holding now."""
        with self._cond:
            return self._held

    def requests(self) -> int:
        """How many requests arrived (whatever their answer)."""
        with self._cond:
            return self._requests

    def wait_for(self, pred: Callable[[Peer], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self), timeout)

    # request handling (called from the handler threads)
    def _arrive(self, server: _Server) -> bool:
        # False: the peer went down while the request was held, so it gets no answer
        with self._cond:
            self._requests += 1
            stall = self._stall
            if stall is not None:
                self._held += 1
            self._cond.notify_all()
        if stall is not None:
            stall.wait()
            with self._cond:
                self._held -= 1
                self._cond.notify_all()
        return self._server is server

    def _injected_failure(self) -> Problem | None:
        with self._cond:
            if self._fail is None:
                return None
            status, remaining, retry_after = self._fail
            if remaining is not None:
                self._fail = (status, remaining - 1, retry_after) if remaining > 1 else None
            p = problem_for_status(status, f"failure injected by the test ({status})")
            if retry_after is not None:
                p.headers["Retry-After"] = str(retry_after)
            return p

    def _record(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self._upserts.append(entry)
            self._cond.notify_all()

    def _tenant_entities(self, tenant: str) -> dict[str, dict[str, Any]]:
        if tenant not in self._tenants:
            raise Problem(404, NONEXISTENT_TENANT, f"tenant {tenant!r} does not exist")
        return self._tenants[tenant]

    def upsert(
        self, entities: list[Any], tenant: str, options: str, jsonld: bool, link: str | None
    ) -> tuple[int, Any]:
        """Batch upsert, entity by entity: 201 with the ids created when
        none failed and at least one was created, 204 when all existed, 207 otherwise."""
        success: list[str] = []
        errors: list[dict[str, Any]] = []
        created: list[str] = []
        with self._cond:
            for entity in entities:
                eid = entity.get("id") if isinstance(entity, dict) else None
                try:
                    check_entity(entity, jsonld)
                    eid = entity["id"]
                    if eid in self._fail_ids:
                        raise problem_for_status(
                            self._fail_ids[eid], f"entity {eid}: failure injected by the test"
                        )
                except Problem as p:
                    errors.append(
                        {"entityId": eid if isinstance(eid, str) else "", "error": p.body()}
                    )
                    continue
                store = self._tenants.setdefault(tenant, {})
                contexts = self._contexts.setdefault(tenant, {})
                new = stored_form(entity)
                old = store.get(eid)
                if old is None:
                    created.append(eid)
                    store[eid] = new
                elif options == "update":
                    old.update(new)
                else:
                    store[eid] = new
                contexts[eid] = entity["@context"] if jsonld else (link or CORE_CONTEXT)
                success.append(eid)
            self._cond.notify_all()
        if errors:
            return 207, {"success": success, "errors": errors}
        if created:
            return 201, created
        return 204, None

    def get_entity(self, tenant: str, eid: str) -> tuple[dict[str, Any], Any]:
        if not is_uri(eid):
            raise Problem(400, BAD_REQUEST_DATA, f"entity id {eid!r} is not a URI")
        with self._cond:
            store = self._tenant_entities(tenant)
            if eid not in store:
                raise Problem(404, RESOURCE_NOT_FOUND, f"no entity {eid}")
            return copy.deepcopy(store[eid]), copy.deepcopy(self._contexts[tenant][eid])

    def query(self, tenant: str, query: dict[str, list[str]]) -> list[tuple[dict, Any]]:
        types = _csv(query.get("type"))
        ids = _csv(query.get("id"))
        if not types and not ids:
            raise Problem(400, BAD_REQUEST_DATA, "a query needs 'type' or 'id' (5.7.2)")
        limit = _nonneg(query, "limit", DEFAULT_LIMIT)
        offset = _nonneg(query, "offset", 0)
        if limit > MAX_LIMIT:
            raise Problem(403, TOO_MANY_RESULTS, f"limit {limit} is over {MAX_LIMIT}")
        with self._cond:
            store = self._tenant_entities(tenant)
            found = [
                (copy.deepcopy(e), copy.deepcopy(self._contexts[tenant][eid]))
                for eid, e in store.items()
                if (not types or e["type"] in types) and (not ids or eid in ids)
            ]
        return found[offset : offset + limit]


def _csv(values: list[str] | None) -> set[str]:
    return {v for value in values or [] for v in value.split(",") if v}


def _nonneg(query: dict[str, list[str]], name: str, default: int) -> int:
    if name not in query:
        return default
    raw = query[name][-1]
    if not raw.isdigit():
        raise Problem(
            400, BAD_REQUEST_DATA, f"'{name}' must be a non-negative integer, not {raw!r}"
        )
    return int(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler must not hold up down() or stop()
    peer: Peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer (down(), a test's timeout) is not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ngsild-peer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        with self.peer._cond:
            self.peer._conns.add(self.connection)

    def finish(self) -> None:
        with self.peer._cond:
            self.peer._conns.discard(self.connection)
        super().finish()

    @property
    def peer(self) -> Peer:
        return self.server.peer  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        if not self.peer._arrive(self.server):  # type: ignore[arg-type]
            self.close_connection = True
            return
        try:
            failure = self.peer._injected_failure()
            if failure is not None:
                if self.command == "POST" and self.path.startswith(UPSERT_PATH):
                    self._record_upsert(body, failure.status)
                raise failure
            self._route(body)
        except Problem as p:
            self._send(p.status, p.body(), JSON, headers=p.headers)

    def _route(self, body: bytes) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        tenant = self.headers.get(TENANT_HEADER) or ""
        if path == UPSERT_PATH:
            self._allow("POST")
            status, answer = self._upsert(body, query, tenant)
            self._send(status, answer, JSON)
        elif path == ENTITIES_PATH:
            self._allow("GET")
            accept = self._accept()
            found = self.peer.query(tenant, query)
            # With application/json the Link header names the context the terms are meant
            # in: the query's own (its Link header) or the core one.
            asked = context_links(self.headers.get_all("Link") or [])
            listed = [self._render(e, ctx, accept) for e, ctx in found]
            self._send(200, listed, accept, asked[0] if asked else CORE_CONTEXT)
        elif path.startswith(ENTITIES_PATH + "/") and "/" not in path[len(ENTITIES_PATH) + 1 :]:
            self._allow("GET")
            accept = self._accept()
            eid = urllib.parse.unquote(path[len(ENTITIES_PATH) + 1 :])
            entity, ctx = self.peer.get_entity(tenant, eid)
            self._send(200, self._render(entity, ctx, accept), accept, ctx)
        else:
            raise Problem(404, RESOURCE_NOT_FOUND, f"no resource {url.path}")

    def _allow(self, method: str) -> None:
        if self.command != method:
            p = Problem(405, INVALID_REQUEST, f"{self.command} is not allowed on {self.path}")
            p.headers["Allow"] = method
            raise p

    def _accept(self) -> str:
        accept = self.headers.get("Accept") or "*/*"
        for item in accept.split(","):
            kind = media_type(item)
            if kind == JSONLD:
                return JSONLD
            if kind in (JSON, "application/*", "*/*"):
                return JSON
        raise Problem(
            406, INVALID_REQUEST, f"cannot answer in {accept!r} (application/json or ld+json)"
        )

    @staticmethod
    def _render(entity: dict[str, Any], ctx: Any, accept: str) -> dict[str, Any]:
        return {**entity, "@context": ctx} if accept == JSONLD else entity

    def _record_upsert(self, body: bytes, status: int, query: dict | None = None) -> None:
        try:
            entities = json.loads(body)
        except ValueError:
            entities = None
        if query is None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        options = query.get("options")
        self.peer._record({
            "tenant": self.headers.get(TENANT_HEADER),
            "options": options[-1] if options else None,
            "content_type": self.headers.get("Content-Type"),
            "entities": entities if isinstance(entities, list) else [],
            "status": status,
        })  # fmt: skip

    def _upsert(self, body: bytes, query: dict[str, list[str]], tenant: str) -> tuple[int, Any]:
        try:
            status, answer = self._upsert_checked(body, query, tenant)
        except Problem as p:
            self._record_upsert(body, p.status, query)
            raise
        self._record_upsert(body, status, query)
        return status, answer

    def _upsert_checked(
        self, body: bytes, query: dict[str, list[str]], tenant: str
    ) -> tuple[int, Any]:
        kind = media_type(self.headers.get("Content-Type"))
        links = context_links(self.headers.get_all("Link") or [])
        if kind not in (JSON, JSONLD):
            raise Problem(
                415,
                INVALID_REQUEST,
                f"Content-Type {kind!r}: application/json or application/ld+json",
            )
        if kind == JSONLD and links:
            raise Problem(
                415,
                INVALID_REQUEST,
                "application/ld+json carries its @context in the body, not in a Link header",
            )
        if len(links) > 1:
            raise Problem(400, BAD_REQUEST_DATA, "more than one JSON-LD context Link header")
        options = (query.get("options") or ["replace"])[-1]
        if options not in ("update", "replace"):
            raise Problem(400, BAD_REQUEST_DATA, f"options={options!r}: update or replace")
        try:
            entities = json.loads(body)
        except ValueError as e:
            raise Problem(400, INVALID_REQUEST, f"the body is not JSON: {e}") from None
        if not isinstance(entities, list):
            raise Problem(400, BAD_REQUEST_DATA, "the body must be a JSON array of entities")
        if not entities:
            raise Problem(400, BAD_REQUEST_DATA, "the array of entities is empty")
        if len(entities) > self.peer.max_batch:
            raise Problem(
                400,
                BAD_REQUEST_DATA,
                f"{len(entities)} entities, more than {self.peer.max_batch} in one batch",
            )
        if kind == JSON and any(isinstance(e, dict) and "@context" in e for e in entities):
            raise Problem(
                415,
                INVALID_REQUEST,
                "application/json must not carry @context in the body:"
                " use application/ld+json or a Link header",
            )
        return self.peer.upsert(
            entities, tenant, options, kind == JSONLD, links[0] if links else None
        )

    def _send(
        self,
        status: int,
        body: Any,
        content_type: str,
        link_ctx: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status == 204:
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_header("Content-Type", content_type)
        if content_type == JSON and isinstance(link_ctx, str) and status == 200:
            self.send_header("Link", f'<{link_ctx}>; rel="{JSONLD_REL}"; type="{JSONLD}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
