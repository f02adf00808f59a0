"""The NGSI-LD API calls the bridge makes (ETSI GS CIM 009: batch upsert, 6.31; entity
retrieval, 6.5), over http.client: a persistent connection, verified TLS for https,
the tenant header, the JSON-LD @context in the body (application/ld+json) or as a Link
header (application/json). Answers are classified here, not acted on: the bridge
decides what is retried.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from lanterna.errors import LanternaError

UPSERT = "/ngsi-ld/v1/entityOperations/upsert"
ENTITIES = "/ngsi-ld/v1/entities"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


class PlatformError(LanternaError):
    pass


class Unreachable(Exception):
    """No answer: refused, reset, timed out, TLS failed."""


@dataclass
class Answer:
    status: int
    body: Any = None  # parsed JSON, or None
    text: str = ""
    retry_after: float | None = None
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # 207: id -> problem
    succeeded: list[str] = field(default_factory=list)


def problem_text(p: Any) -> str:
    """A problem detail (RFC 7807, as NGSI-LD uses it) in one line."""
    if not isinstance(p, dict):
        return str(p)[:300]
    kind = str(p.get("type", "")).rsplit("/", 1)[-1]
    parts = [x for x in (kind, p.get("title"), p.get("detail")) if x]
    return ": ".join(str(x) for x in parts)[:500] or json.dumps(p)[:300]


class Client:
    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        context: list[str],
        link: bool = False,
        token: str | None = None,
        cafile: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise PlatformError(f"--url {url!r}: not an http:// or https:// URL")
        if link and len(context) != 1:
            raise PlatformError("--link sends one @context URL in the Link header: give --context")
        self.url = url.rstrip("/")
        self.base = u.path.rstrip("/")
        self.host, self.port = u.hostname, u.port
        self.tls = u.scheme == "https"
        self.tenant = tenant
        self.context = context
        self.link = link
        self.token = token
        self.timeout = timeout
        self.ssl = ssl.create_default_context(cafile=cafile) if self.tls else None
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.tls:
                self._conn = http.client.HTTPSConnection(
                    self.host or "", self.port, timeout=self.timeout, context=self.ssl
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self.host or "", self.port, timeout=self.timeout
                )
        return self._conn

    def headers(self, body: bool) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if body:
            h["Content-Type"] = "application/json" if self.link else "application/ld+json"
        if self.link:
            h["Link"] = f"<{self.context[0]}>; {LINK_REL}"
        if self.tenant:
            h["NGSILD-Tenant"] = self.tenant
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (0, 1):  # a kept-alive connection the server closed: once more
            conn = self._connection()
            try:
                conn.request(
                    method, self.base + path, body=data, headers=self.headers(data is not None)
                )
                r = conn.getresponse()
                raw = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 0:
                    continue
                raise Unreachable(str(e) or type(e).__name__) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise Unreachable(str(e) or type(e).__name__) from None
            if r.getheader("Connection", "").lower() == "close":
                self.close()
            return _answer(r.status, raw, r.getheader("Retry-After"))
        raise AssertionError("unreachable")

    def upsert(self, entities: list[dict[str, Any]]) -> Answer:
        """POST entityOperations/upsert?options=update: each entity created, or its given
        attributes merged into it (the others kept: the bridge sends what changed)."""
        if not self.link:
            entities = [{**e, "@context": self.context} for e in entities]
        a = self.request("POST", UPSERT + "?options=update", entities)
        if a.status == 207 and isinstance(a.body, dict):
            a.succeeded = [str(i) for i in a.body.get("success") or []]
            for err in a.body.get("errors") or []:
                if isinstance(err, dict) and "entityId" in err:
                    a.failed[str(err["entityId"])] = err.get("error") or {}
        return a

    def entity(self, entity_id: str) -> Answer:
        return self.request("GET", f"{ENTITIES}/{urllib.parse.quote(entity_id, safe='')}")


def _answer(status: int, raw: bytes, retry_after: str | None) -> Answer:
    text = raw.decode("utf-8", "replace")
    body = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    wait = None
    if retry_after:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None  # an HTTP date: the bridge's own backoff instead
    return Answer(status, body, text, wait)
