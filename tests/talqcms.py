"""A fake TALQ central management system (CMS) for the gateway's tests: an HTTPS server
on loopback that serves the part of the TALQ 2.7.1 CMS API a gateway calls, and checks
every request against the OpenAPI files themselves (shared/specs/talq), not against what
we think they say: the header, the declared query and path parameters, the body against
the operation's requestBody schema with the data model's `$ref`s resolved. The data
model's types are discriminated (`Function.type`, `Attribute.type`, `LogData.type`,
`Service.name`): each object is validated also against the schema its discriminator
names, and a typed attribute must have the type its function declares for it (a
`cmsUri` is an AttributeUri, not any attribute that happens to hold a string). Without
that, `{"type": "Function", "id": ...}` with anything in it would pass.

Mutual TLS as TALQ asks: the CMS presents a certificate from the test PKI and requires
one from the gateway's CA. A request that does not conform is answered 400 with TALQ
error messages, and recorded with its problems (`nonconforming()`).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
import socket
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4
from specs import TALQ

NIL = "00000000-0000-0000-0000-000000000000"
VERSION = "2.7.1"
API = "talq-api-cms-2-7-1-online.json"
MODEL = "talq-data-model-2-7-1-online.json"
MAX_BODY = 32 << 20
MAX_PROBLEMS = 20
UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
TIME = re.compile(r"\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)?")
URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

# --- the spec ------------------------------------------------------------------------


def _formats() -> FormatChecker:
    # Our own checkers: jsonschema's "uri" needs rfc3987 (not installed, so it would
    # silently pass anything) and Draft 4's set has no "uuid".
    fc = FormatChecker(formats=())

    def check(name: str) -> Callable[[Callable[[str], bool]], Any]:
        def deco(fn: Callable[[str], bool]) -> Any:
            return fc.checks(name, raises=(ValueError,))(lambda v: not isinstance(v, str) or fn(v))

        return deco

    @check("uuid")
    def _uuid(v: str) -> bool:
        return bool(UUID.fullmatch(v))

    @check("date-time")
    def _date_time(v: str) -> bool:
        if not DATE_TIME.fullmatch(v):
            return False
        dt.datetime.fromisoformat(re.sub("[Zz]$", "+00:00", v.replace("t", "T")))
        return True

    @check("date")
    def _date(v: str) -> bool:
        return bool(re.fullmatch(r"\d{4}-\d\d-\d\d", v)) and bool(dt.date.fromisoformat(v))

    @check("time")
    def _time(v: str) -> bool:
        return bool(TIME.fullmatch(v)) and bool(dt.time.fromisoformat(v[:8]))

    @check("uri")
    def _uri(v: str) -> bool:  # absolute: a scheme, and no blanks
        u = urllib.parse.urlsplit(v)
        return bool(URI_SCHEME.fullmatch(u.scheme)) and not re.search(r"\s", v)

    return fc


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema (one use in the data model, in the
    Gateway API's AssignCommand, but a CMS API schema may grow one)."""
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [{"type": "null"}, out]} if node.get("nullable") is True else out


def _bases(schema: dict[str, Any]) -> list[str]:
    return [p["$ref"].rsplit("/", 1)[1] for p in schema.get("allOf", []) if "$ref" in p]


def _narrow(schemas: dict[str, Any]) -> None:
    """A subtype's discriminator property accepts only its own name and its subtypes'
    (OpenAPI's implicit mapping: the value names the schema). The files only give it a
    `default`, so an attribute declared AttributeUri but typed AttributeString, or a
    LampActuatorFunction sent as type "Foo", would pass schema validation."""
    kids: dict[str, set[str]] = {}
    for name, s in schemas.items():
        for b in _bases(s):
            kids.setdefault(b, set()).add(name)

    def below(n: str) -> set[str]:
        return {n}.union(*(below(k) for k in kids.get(n, ())))

    def prop(n: str, seen: frozenset[str] = frozenset()) -> str | None:
        s = schemas.get(n, {})
        if "discriminator" in s:
            return s["discriminator"]["propertyName"]
        return next(
            (p for b in _bases(s) if b not in seen for p in [prop(b, seen | {n})] if p), None
        )

    for name, s in schemas.items():
        p = prop(name) if _bases(s) else None
        for part in s.get("allOf", []) if p else []:
            d = part.get("properties", {}).get(p)
            if isinstance(d, dict) and d.get("default") == name:
                d["enum"] = sorted(below(name))


class Spec:
    """The CMS API and its data model, as one validator factory and a router."""

    def __init__(self, folder: Path) -> None:
        self.api = json.loads((folder / API).read_text())
        model = _nullable(json.loads((folder / MODEL).read_text()))
        self.schemas: dict[str, Any] = model["components"]["schemas"]
        _narrow(self.schemas)
        self.registry = Registry().with_resources(
            [(API, DRAFT4.create_resource(self.api)), (MODEL, DRAFT4.create_resource(model))]
        )
        self.formats = _formats()
        self.validator_class = jsonschema.validators.extend(
            jsonschema.Draft4Validator, {"discriminator": self._discriminator}
        )
        self._active = threading.local()
        self.routes: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []
        self.templates: dict[str, str] = {}  # operationId -> its path in the API file
        for path, ops in self.api["paths"].items():
            rx = re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))
            for method, op in ops.items():
                self.routes.append((method.upper(), rx, op))
                self.templates[op["operationId"]] = path

    def _discriminator(self, validator: Any, value: Any, instance: Any, schema: Any) -> Iterator:
        # the object again against the schema its discriminator names, once per object
        # and name (that schema's allOf leads back to this base and this keyword)
        name = instance.get(value.get("propertyName")) if isinstance(instance, dict) else None
        if not isinstance(name, str) or name not in self.schemas:
            return
        active = self._active.__dict__.setdefault("seen", set())
        key = (id(instance), name)
        if key in active:
            return
        active.add(key)
        try:
            errors = list(
                validator.descend(instance, {"$ref": f"{MODEL}#/components/schemas/{name}"})
            )
        finally:
            active.discard(key)
        yield from errors

    def route(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        for m, rx, op in self.routes:
            hit = rx.fullmatch(path)
            if hit and m == method:
                return op, {k: urllib.parse.unquote(v) for k, v in hit.groupdict().items()}
        return None

    def problems(self, pointer: str, instance: Any) -> list[str]:
        """What is wrong with `instance` against the schema at `pointer` in the API file
        (or "Name" for a data model schema), one line each, where first."""
        ref = pointer if "#" in pointer else f"{MODEL}#/components/schemas/{pointer}"
        v = self.validator_class({"$ref": ref}, registry=self.registry, format_checker=self.formats)
        out = []
        for e in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            where = "/" + "/".join(map(str, e.absolute_path))
            out.append(f"body{where if where != '/' else ''}: {e.message[:300]}")
        return list(dict.fromkeys(out))[:MAX_PROBLEMS]  # a base and its subtype say it twice


def body_pointer(op_path: str, method: str, part: str) -> str:
    esc = op_path.replace("~", "~0").replace("/", "~1")
    return f"{API}#/paths/{esc}/{method.lower()}/{part}/content/application~1json/schema"


@functools.cache
def spec(folder: Path | None = TALQ) -> Spec:
    if folder is None:
        raise RuntimeError("the TALQ 2.7.1 OpenAPI files are not here: set LANTERNA_SPECS")
    return Spec(folder)


# --- the server ----------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, or None
    status: int = 0
    problems: list[str] = field(default_factory=list)  # why it does not conform
    outcome: str = ""  # "accepted", "refused", "refused_outage"
    operation: str = ""  # the operationId it matched


class Refused(Exception):
    def __init__(self, status: int, key: str, problems: list[str], record: bool = True) -> None:
        super().__init__(problems)
        self.status, self.key, self.problems, self.record = status, key, problems, record


def errors(key: str, problems: list[str]) -> list[dict[str, str]]:
    return [{"key": key, "description": p} for p in problems]


def _is_bootstrap(body: Any) -> bool:
    return any(_gateway_function(d) is not None for d in body) if isinstance(body, list) else False


def _gateway_function(device: Any) -> dict[str, Any] | None:
    """The device's GatewayFunction when it asks for an address (gatewayAddress nil)."""
    for f in device.get("functions", []) if isinstance(device, dict) else []:
        a = f.get("gatewayAddress") if isinstance(f, dict) else None
        if f.get("type") == "GatewayFunction" and isinstance(a, dict) and a.get("value") == NIL:
            return f
    return None


def _merge(device: dict[str, Any], patch: dict[str, Any]) -> None:
    # TALQ's partial update: functions matched by id, within them attributes by name
    functions = {f["id"]: f for f in device.setdefault("functions", [])}
    for k, v in patch.items():
        if k != "functions":
            device[k] = copy.deepcopy(v)
    for f in patch.get("functions", []):
        if f["id"] in functions:
            functions[f["id"]].update(copy.deepcopy(f))
        else:
            device["functions"].append(copy.deepcopy(f))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def _any(self) -> None:
        self.server.cms._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded in Cms.requests


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread

    def __init__(self, cms: Cms, ctx: ssl.SSLContext | None) -> None:
        self.cms, self.ctx = cms, ctx
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the TLS handshake here, in the connection's thread, not in the accept loop
        conn = request
        self.cms._conns.add(request)
        try:
            request.settimeout(_Handler.timeout)
            if self.ctx is not None:
                try:
                    conn = self.ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.cms._tls_refused(str(e))
                    return
                self.cms._conns.add(conn)
            super().finish_request(conn, client_address)
        finally:
            self.cms._conns.discard(request)
            self.cms._conns.discard(conn)
            conn.close()


class Cms:
    def __init__(self, pki: Any, *, gateway_ca: Path, tls: bool = True) -> None:
        self.spec = spec()
        self.address = str(uuid.uuid4())
        tag = self.address[:8]
        self.server_cert = pki.issue(f"cms-{tag}", server_hosts=("127.0.0.1", "localhost"))
        self.client_cert: tuple[Path, Path] = pki.issue(f"cms-client-{tag}", client=True)
        self.ca = pki.ca
        self.gateway_ca, self.tls = gateway_ca, tls
        self.gateway_address: str | None = None
        self.devices: dict[str, dict[str, Any]] = {}
        self.device_classes: dict[str, dict[str, Any]] = {}
        self.services: list[dict[str, Any]] = []
        self.log_reports: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.tls_refusals: list[str] = []  # handshakes that failed, why
        self.answer_problems: list[str] = []  # this fake's own answers that break the spec
        self.url = ""
        self._cond = threading.Condition()
        self._down = False
        self._conns: set[Any] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> Cms:
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(*self.server_cert)
            ctx.verify_mode = ssl.CERT_REQUIRED  # TALQ: the gateway shows its certificate
            ctx.load_verify_locations(cafile=str(self.gateway_ca))
        self._server = _Server(self, ctx)
        port = self._server.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        for c in list(self._conns):  # idle keep-alive connections would hold their threads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Cms:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def down(self) -> None:
        with self._cond:
            self._down = True

    def up(self) -> None:
        with self._cond:
            self._down = False

    def wait(self, pred: Callable[[Cms], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: pred(self), timeout))

    def nonconforming(self) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.problems]

    def _tls_refused(self, why: str) -> None:
        with self._cond:
            self.tls_refusals.append(why)
            self._cond.notify_all()

    # one request

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(h.path)
        pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = Request(h.command, split.path, dict(pairs), headers, None)
        raw, problems = self._read(h)
        twice = sorted({k for k, _ in pairs if [p for p, _ in pairs].count(k) > 1})
        with self._cond:
            try:
                if twice:
                    raise Refused(400, "parameterValueNotValid", [f"query: {twice} twice"])
                status, body = self._answer(req, raw, problems)
                req.outcome = "accepted"
            except Refused as e:
                status, body = e.status, errors(e.key, e.problems)
                req.problems += e.problems if e.record else []
                req.outcome = "refused"
            extra = {}
            if self._down:
                status, body, extra = 503, None, {"Retry-After": "1"}
                req.outcome = "refused_outage"
            req.status = status
            self.requests.append(req)
            self._cond.notify_all()
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("talq-api-version", VERSION)
        for k, v in extra.items():
            h.send_header(k, v)
        if body is not None:
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    @staticmethod
    def _read(h: BaseHTTPRequestHandler) -> tuple[bytes, list[str]]:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while n := int(h.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += h.rfile.read(n)
                h.rfile.readline()
                if len(out) > MAX_BODY:
                    h.close_connection = True
                    return b"", [f"body: more than {MAX_BODY} bytes"]
            while h.rfile.readline().strip():
                pass
            return out, []
        try:
            n = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            h.close_connection = True
            return b"", ["header Content-Length: not a number"]
        if n > MAX_BODY:
            h.close_connection = True
            return b"", [f"body: {n} bytes, more than {MAX_BODY}"]
        return h.rfile.read(n), []

    def _answer(self, req: Request, raw: bytes, read_problems: list[str]) -> tuple[int, Any]:
        hit = self.spec.route(req.method, req.path)
        if hit is None:
            raise Refused(404, "resourceNotFound", [f"{req.method} {req.path}: not in the CMS API"])
        op, params = hit
        req.operation = op["operationId"]
        handler = getattr(self, f"_op_{req.operation}", None)
        if handler is None:
            why = f"{req.method} {req.path}: {req.operation} is not served by this fake CMS"
            raise Refused(404, "resourceNotFound", [why])
        if read_problems:
            raise Refused(400, "payloadError", read_problems)
        self._check_header(req)
        self._check_parameters(req, op, params)
        self._check_body(req, op, raw)
        self._check_client(req)
        status, body = self._success(op)
        if self._down:  # checked, recorded, nothing changes
            return status, None
        answer = handler(req, params)
        if body:
            pointer = body_pointer(
                self.spec.templates[op["operationId"]], req.method, f"responses/{status}"
            )
            self.answer_problems += self.spec.problems(pointer, answer)
        return status, answer if body else None

    @staticmethod
    def _success(op: dict[str, Any]) -> tuple[int, bool]:
        code = next(c for c in op["responses"] if c.startswith("2"))
        return int(code), "content" in op["responses"][code]

    @staticmethod
    def _check_header(req: Request) -> None:
        v = req.headers.get("talq-api-version")
        if v is None:
            raise Refused(400, "headerMissing", ["header talq-api-version is missing"])
        m = re.fullmatch(r"(\d+)(\.\d+){0,2}", v.strip())
        if not m or m.group(1) != VERSION.split(".")[0]:
            why = f"header talq-api-version {v!r}: not a TALQ {VERSION.split('.')[0]}.x version"
            raise Refused(400, "headerValueNotValid", [why])

    @staticmethod
    def _check_parameters(req: Request, op: dict[str, Any], path_params: dict[str, str]) -> None:
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        unknown = sorted(set(req.query) - declared)
        if unknown:
            why = f"query: {unknown} not declared by {op['operationId']}"
            raise Refused(400, "parameterValueNotValid", [why])
        for p in op.get("parameters", []):
            if p["in"] not in ("query", "path"):
                continue
            value = (req.query if p["in"] == "query" else path_params).get(p["name"])
            if value is None:
                if p.get("required"):
                    why = f"{p['in']} parameter {p['name']} is missing"
                    raise Refused(400, "parameterMissing", [why])
                continue
            if p.get("schema", {}).get("format") == "uuid" and not UUID.fullmatch(value):
                why = f"{p['in']} parameter {p['name']} {value!r}: not a UUID"
                raise Refused(400, "parameterValueNotValid", [why])

    def _check_body(self, req: Request, op: dict[str, Any], raw: bytes) -> None:
        rb = op.get("requestBody")
        if rb is None:
            if raw:
                raise Refused(400, "payloadError", [f"{op['operationId']} takes no body"])
            return
        if not raw:
            if rb.get("required"):
                raise Refused(400, "payloadError", ["body: missing"])
            return
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            why = f"header Content-Type {ctype!r}: not application/json"
            raise Refused(400, "headerValueNotValid", [why])
        try:
            req.body = json.loads(raw)
        except ValueError as e:  # UnicodeDecodeError too
            raise Refused(400, "payloadError", [f"body: not JSON ({e})"]) from None
        pointer = body_pointer(self.spec.templates[op["operationId"]], req.method, "requestBody")
        problems = self.spec.problems(pointer, req.body)
        if problems:
            raise Refused(400, "payloadError", problems)

    def _check_client(self, req: Request) -> None:
        # TALQ bootstrap: the gateway has no address yet, so it sends the nil UUID, and
        # after it every request carries the address the CMS assigned
        given = req.query.get("clientAddress", "").lower()
        if req.operation == "addDevices" and _is_bootstrap(req.body):
            if given != NIL:
                why = f"clientAddress {given}: a bootstrap request carries the nil UUID"
                raise Refused(400, "parameterValueNotValid", [why])
        elif self.gateway_address is None:
            why = f"clientAddress {given}: no gateway has bootstrapped yet"
            raise Refused(400, "parameterValueNotValid", [why])
        elif given != self.gateway_address:
            why = f"clientAddress {given}: not the gateway's address {self.gateway_address}"
            raise Refused(400, "parameterValueNotValid", [why])

    # operations: each gets a body that passed the schema

    def _known(self, addresses: list[str]) -> None:
        missing = [a for a in addresses if a not in self.devices]
        if missing:
            raise Refused(
                404, "resourceNotFound", [f"device {a} not found" for a in missing], False
            )

    def _same(self, path_value: str, body_value: str, what: str) -> None:
        if path_value != body_value:
            why = f"body {what} {body_value!r} differs from the path's {path_value!r}"
            raise Refused(400, "payloadError", [why])

    @staticmethod
    def _unique(items: list[dict[str, Any]], key: str) -> None:
        seen = [i[key] for i in items]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise Refused(400, "payloadError", [f"body: {key} {v} given twice" for v in twice])

    def _op_addDevices(self, req: Request, _: dict[str, str]) -> list[dict[str, Any]]:
        devices = copy.deepcopy(req.body)
        self._unique(devices, "address")
        boot = [d for d in devices if _gateway_function(d) is not None]
        taken = [d["address"] for d in devices if d["address"] in self.devices and d not in boot]
        if taken:
            why = [f"device {a} already exists" for a in taken]
            raise Refused(409, "resourceConflict", why, False)
        if boot and self.gateway_address is None:
            self.gateway_address = str(uuid.uuid4())
        for d in boot:
            f = _gateway_function(d)
            assert f is not None
            f["gatewayAddress"] = {"type": "AttributeString", "value": self.gateway_address}
            f["cmsAddress"] = {"type": "AttributeString", "value": self.address}
        for d in devices:
            self.devices[d["address"]] = copy.deepcopy(d)
        return devices

    def _op_partialUpdateDevices(self, req: Request, _: dict[str, str]) -> None:
        self._unique(req.body, "address")
        self._known([d["address"] for d in req.body])
        for d in req.body:
            _merge(self.devices[d["address"]], d)

    def _op_updateDevices(self, req: Request, _: dict[str, str]) -> list[dict[str, Any]]:
        self._unique(req.body, "address")
        self._known([d["address"] for d in req.body])
        for d in req.body:
            self.devices[d["address"]] = copy.deepcopy(d)
        return req.body

    def _op_partialUpdateDevice(self, req: Request, p: dict[str, str]) -> None:
        self._same(p["deviceAddress"], req.body["address"], "address")
        self._known([p["deviceAddress"]])
        _merge(self.devices[p["deviceAddress"]], req.body)

    def _op_updateDevice(self, req: Request, p: dict[str, str]) -> dict[str, Any]:
        self._same(p["deviceAddress"], req.body["address"], "address")
        self._known([p["deviceAddress"]])
        self.devices[p["deviceAddress"]] = copy.deepcopy(req.body)
        return req.body

    def _op_addDeviceClasses(self, req: Request, _: dict[str, str]) -> list[dict[str, Any]]:
        self._unique(req.body, "name")
        taken = [c["name"] for c in req.body if c["name"] in self.device_classes]
        if taken:
            why = [f"device class {n} already exists" for n in taken]
            raise Refused(409, "resourceConflict", why, False)
        self.device_classes.update({c["name"]: copy.deepcopy(c) for c in req.body})
        return req.body

    def _op_updateDeviceClasses(self, req: Request, _: dict[str, str]) -> list[dict[str, Any]]:
        self._unique(req.body, "name")
        missing = [c["name"] for c in req.body if c["name"] not in self.device_classes]
        if missing:
            why = [f"device class {n} not found" for n in missing]
            raise Refused(404, "resourceNotFound", why, False)
        self.device_classes.update({c["name"]: copy.deepcopy(c) for c in req.body})
        return req.body

    def _op_updateDeviceClass(self, req: Request, p: dict[str, str]) -> dict[str, Any]:
        self._same(p["className"], req.body["name"], "name")
        self.device_classes[p["className"]] = copy.deepcopy(req.body)  # no 404 in the spec
        return req.body

    def _op_announceServices(self, req: Request, _: dict[str, str]) -> None:
        if req.body is not None:  # the announcement is the whole set: it replaces
            self.services = copy.deepcopy(req.body)

    def _op_sendLogReport(self, req: Request, _: dict[str, str]) -> None:
        self.log_reports.append(copy.deepcopy(req.body))
