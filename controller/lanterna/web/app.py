"""The console's ASGI application: pages, the JSON API, the live feed, and the checks
every request passes (session, CSRF, role, size), then headers on every answer.

The API's handlers are plain functions run in Starlette's thread pool, each thread with
its own store connection (SQLite connections stay in their thread; PostgreSQL's are not
shared either). Errors are lanterna.errors exceptions, answered as JSON
``{"error": ..., "where": ...}`` with the status docs/web.md lists.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lanterna.context import Ctx
from lanterna.errors import EXIT_BROKER, EXIT_MALFORMED, EXIT_STORE, EXIT_UNKNOWN, LanternaError
from lanterna.operators import Operators
from lanterna.store import Store
from lanterna.store.db import StoreError, UnknownGroup, UnknownNode
from lanterna.web import live, reads, writes
from lanterna.web.auth import COOKIE, Limiter, Sessions
from lanterna.web.writes import Conflict, Forbidden, Invalid, Operator

log = logging.getLogger("lanterna.web")

STATIC = Path(__file__).parent / "static"
PAGES = ("/", "/signin", "/schedules", "/energy", "/faults", "/rollouts", "/audit")
MAX_BODY = 1 << 20  # a schedule is a few KB; nothing the console sends comes near 1 MiB
SAFE = ("GET", "HEAD")


def csp(tiles: str | None) -> str:
    img = "'self' data:"
    if tiles:
        u = urlsplit(tiles)
        img += f" {u.scheme}://{u.netloc}"
    return (
        f"default-src 'self'; img-src {img}; style-src 'self'; script-src 'self';"
        " connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none';"
        " form-action 'self'; object-src 'none'"
    )


class Console:
    """What the application shares between requests."""

    def __init__(self, target: Path | str, broker_url: str | None, tiles: str | None,
                 tls: bool, prefix: str) -> None:  # fmt: skip
        self.target, self.broker_url, self.tiles, self.tls = target, broker_url, tiles, tls
        self.sessions = Sessions()
        self.limiter = Limiter()
        self._local = threading.local()
        self.writer = writes.Writer(self.store, self.ctx, prefix)
        self.headers = {
            "Content-Security-Policy": csp(tiles),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        if tls:
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    def ctx(self) -> Ctx:
        c = getattr(self._local, "ctx", None)
        if c is None:
            c = self._local.ctx = Ctx(self.target, self.broker_url)
        return c

    def store(self) -> Store:
        return self.ctx().store()


def _status_of(e: Exception) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"error": str(e)}
    if isinstance(e, Forbidden):
        return 403, body
    if isinstance(e, Conflict):
        return 409, body
    if isinstance(e, Invalid):
        return 400, {"error": e.message, "where": e.where}
    if isinstance(e, UnknownNode | UnknownGroup):
        return 404, body
    if isinstance(e, LanternaError):
        body = {"error": e.message}
        code = {EXIT_MALFORMED: 400, EXIT_UNKNOWN: 404, EXIT_BROKER: 503, EXIT_STORE: 503}
        return code.get(e.exit_code, 422), body
    if isinstance(e, StoreError):
        msg = str(e)
        return (404 if msg.startswith("unknown ") else 503), {"error": f"store: {msg}"}
    raise e


def build(
    target: Path | str,
    broker_url: str | None = None,
    tiles: str | None = None,
    tls: bool = False,
    prefix: str = "lanterna/v1",
) -> Starlette:
    c = Console(target, broker_url, tiles, tls, prefix)

    def session_of(request: Request):
        return c.sessions.get(request.cookies.get(COOKIE))

    def api(fn: Callable[..., Any], write: bool = False, body: bool = False, raw: bool = False):
        """A JSON endpoint: signed in; a write with the session's CSRF token and the
        operator's current role (read from the store: a demoted operator is demoted now)."""

        async def endpoint(request: Request) -> Response:
            s = session_of(request)
            if s is None:
                return JSONResponse({"error": "not signed in"}, 401)
            if request.method not in SAFE:
                if not s.csrf_ok(request.headers.get("x-csrf-token")):
                    return JSONResponse({"error": "CSRF token missing or wrong"}, 403)
                if not _same_origin(request):
                    return JSONResponse({"error": "cross-origin request refused"}, 403)
            data: dict[str, Any] = {}
            if body:
                data_or_error = await _json_body(request)
                if isinstance(data_or_error, Response):
                    return data_or_error
                data = data_or_error

            def run() -> Any:
                op = Operator(s.user, s.role)
                if write:
                    ops = Operators(c.store())
                    now = ops.get(s.user) if ops.exists(s.user) else None
                    if now is None:
                        c.sessions.end_user(s.user)
                        raise Forbidden(s.role, "act: the operator no longer exists")
                    op = Operator(s.user, now["role"])
                    s.role = now["role"]
                return fn(op, request, data)

            try:
                out = await run_in_threadpool(run)
            except Exception as e:  # lanterna's errors become answers; others raise
                code, err = _status_of(e)
                if code >= 500:
                    log.warning("%s %s: %s", request.method, request.url.path, err["error"])
                return JSONResponse(err, code)
            if raw:
                return out
            if isinstance(out, writes.Job):
                return JSONResponse({"job": out.id, "total": out.total}, 202)
            return _json(out, request)

        return endpoint

    def q(request: Request, name: str) -> str | None:
        v = request.query_params.get(name)
        return v if v not in (None, "", "all") else None

    def q_int(request: Request, name: str, default: int, most: int) -> int:
        v = request.query_params.get(name)
        if v is None:
            return default
        if not v.isdigit() or not 1 <= int(v) <= most:
            raise Invalid(f"{name}: an integer from 1 to {most}", name)
        return int(v)

    # -- pages and sign-in -------------------------------------------------------------

    async def page(request: Request) -> Response:
        path = request.url.path
        if path != "/signin" and session_of(request) is None:
            where = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/signin?next={quote(where)}", 303)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def signin(request: Request) -> Response:
        data = await _json_body(request)
        if isinstance(data, Response):
            return data
        user, password = data.get("user"), data.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or not user:
            return JSONResponse({"error": "give user and password", "where": "body"}, 400)
        addr = request.client.host if request.client else "?"
        keys = ("user:" + user.lower(), "addr:" + addr)
        wait = c.limiter.retry_after(*keys)
        if wait > 0:
            return JSONResponse(
                {
                    "error": f"too many failed sign-ins: try again in {int(wait) + 1} s",
                    "retry_after": int(wait) + 1,
                },  # fmt: skip
                429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        role = await run_in_threadpool(lambda: Operators(c.store()).verify(user, password))
        if role is None:
            c.limiter.failed(*keys)
            log.warning("sign-in refused for %r from %s", user[:64], addr)
            return JSONResponse({"error": "wrong user name or password"}, 401)
        c.limiter.succeeded(keys[0])
        s = c.sessions.start(user, role)
        r = JSONResponse(s.public())
        r.set_cookie(COOKIE, s.token, httponly=True, samesite="strict", secure=c.tls, path="/")
        return r

    async def signout(request: Request) -> Response:
        s = session_of(request)
        if s is not None and not s.csrf_ok(request.headers.get("x-csrf-token")):
            return JSONResponse({"error": "CSRF token missing or wrong"}, 403)
        c.sessions.end(request.cookies.get(COOKIE))
        r = Response(status_code=204)
        r.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=c.tls)
        return r

    async def me(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return JSONResponse({"error": "not signed in"}, 401)
        return JSONResponse(s.public())

    async def live_feed(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return JSONResponse({"error": "not signed in"}, 401)
        try:
            cursor = float(request.query_params.get("cursor", "0"))
        except ValueError:
            return JSONResponse({"error": "cursor: a number", "where": "cursor"}, 400)
        token = request.cookies.get(COOKIE)

        async def alive() -> bool:
            return not await request.is_disconnected() and c.sessions.get(token) is not None

        return StreamingResponse(
            live.feed(c.store, cursor, alive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- the API -----------------------------------------------------------------------

    st = c.store

    def node_id(r: Request) -> str:
        return r.path_params["node"]

    routes = [
        Route("/api/signin", signin, methods=["POST"]),
        Route("/api/signout", signout, methods=["POST"]),
        Route("/api/me", me),
        Route("/api/live", live_feed),
        Route("/api/config", api(lambda op, r, d: reads.config(st(), c.tiles))),
        Route(
            "/api/map",
            api(
                lambda op, r, d: reads.map_nodes(
                    st(), q(r, "site"), q(r, "group"), q(r, "state"), q(r, "fault")
                )
            ),  # fmt: skip
        ),
        Route("/api/nodes/{node}", api(lambda op, r, d: reads.node_story(st(), node_id(r)))),
        Route(
            "/api/nodes/{node}/series",
            api(lambda op, r, d: reads.series(st(), node_id(r), r.query_params.get("span", "24h"))),
        ),
        Route(
            "/api/nodes/{node}/events",
            api(lambda op, r, d: reads.events(st(), node_id(r), q_int(r, "limit", 100, 1000))),
        ),
        Route(
            "/api/nodes/{node}/commands",
            api(lambda op, r, d: reads.commands(st(), node_id(r), q_int(r, "limit", 50, 1000))),
        ),
        Route("/api/schedules", api(lambda op, r, d: reads.schedules(st()))),
        Route(
            "/api/schedules/{sid:int}",
            api(
                lambda op, r, d: _found(
                    reads.schedule(st(), r.path_params["sid"]), f"schedule {r.path_params['sid']}"
                )
            ),
        ),
        Route(
            "/api/energy",
            api(
                lambda op, r, d: reads.energy_report(
                    st(), q(r, "site"), q(r, "group"), q(r, "since"), q(r, "until")
                )
            ),  # fmt: skip
        ),
        Route("/api/faults", api(lambda op, r, d: reads.faults(st(), q(r, "site")))),
        Route(
            "/api/faults.csv",
            api(
                lambda op, r, d: PlainTextResponse(
                    reads.faults_csv(reads.faults(st(), q(r, "site"))),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="faults.csv"'},
                ),
                raw=True,
            ),
        ),
        Route("/api/rollouts", api(lambda op, r, d: reads.rollouts(st()))),
        Route("/api/audit", api(lambda op, r, d: _audit(st(), r, q_int(r, "limit", 200, 5000)))),
        Route(
            "/api/jobs/{job}",
            api(
                lambda op, r, d: _found(
                    c.writer.jobs.get(r.path_params["job"]), f"job {r.path_params['job']}"
                ).public()
            ),
        ),
        # writes
        Route(
            "/api/commands",
            api(lambda op, r, d: c.writer.command(op, d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/schedules/validate",
            api(lambda op, r, d: writes.validate(d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/schedules/preview",
            api(lambda op, r, d: writes.preview(st(), d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/schedules/year",
            api(lambda op, r, d: writes.year(st(), d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/schedules/push",
            api(lambda op, r, d: c.writer.schedule_push(op, d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/faults/ack",
            api(lambda op, r, d: c.writer.fault_ack(op, d), True, True),
            methods=["POST"],
        ),  # fmt: skip
        Route(
            "/api/rollouts/{rid:int}/{verb}",
            api(
                lambda op, r, d: c.writer.rollout(op, r.path_params["rid"], r.path_params["verb"]),
                True,
            ),  # fmt: skip
            methods=["POST"],
        ),
        Route("/api/{rest:path}", _no_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *[Route(p, page) for p in PAGES],
        Route("/nodes/{node}", page),
    ]
    app = Starlette(routes=routes)
    headers = list(c.headers.items())

    async def with_headers(scope, receive, send):  # an ASGI middleware: headers on all
        async def send_h(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in headers
                         if k.lower().encode() not in have]  # fmt: skip
                if scope.get("path", "").startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        if scope["type"] == "http" and _too_big(scope):
            body = json.dumps({"error": f"request body over {MAX_BODY} bytes"}).encode()
            await send_h({"type": "http.response.start", "status": 413,
                          "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send_h({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send_h)

    with_headers.console = c  # type: ignore[attr-defined]  # tests reach the sessions
    return with_headers  # type: ignore[return-value]


GZIP_FROM = 32 << 10  # bytes: below it compressing costs more than it saves


def _json(out: Any, request: Request) -> Response:
    """A JSON answer, gzipped when it is big and the browser takes gzip (the map of a
    city is 1.5 MB as JSON for 20,000 nodes, a tenth of it gzipped)."""
    r = JSONResponse(out)
    if len(r.body) >= GZIP_FROM and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(r.body, 5)
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(body, media_type="application/json", headers=headers)
    return r


def _too_big(scope: dict[str, Any]) -> bool:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            return not v.isdigit() or int(v) > MAX_BODY
    return False


async def _no_route(request: Request) -> Response:
    return JSONResponse({"error": f"no such API: {request.method} {request.url.path}"}, 404)


def _found(x: Any, what: str) -> Any:
    if x is None:
        raise LanternaError(f"unknown {what}", EXIT_UNKNOWN)
    return x


def _audit(store: Store, r: Request, limit: int) -> list[dict[str, Any]]:
    from lanterna.audit import Audit
    from lanterna.fleet.energy import parse_when

    since = r.query_params.get("since")
    try:
        t0 = parse_when(since) if since else None
    except ValueError as e:
        raise Invalid(f"since: {e}", "since") from None
    return Audit(store).list(limit=limit, who=r.query_params.get("who") or None, since=t0)


def _same_origin(request: Request) -> bool:
    """A write's Origin, when the browser sends one, is the console's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


async def _json_body(request: Request) -> dict[str, Any] | Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != "application/json":
        return JSONResponse(
            {"error": "the body must be JSON (Content-Type: application/json)", "where": "body"},
            415,
        )
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, 413)
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return JSONResponse({"error": f"body: not valid JSON: {e}", "where": "body"}, 400)
    if not isinstance(data, dict):
        return JSONResponse({"error": "body: a JSON object", "where": "body"}, 400)
    return data
