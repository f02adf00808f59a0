"""The gateway as a client of the CMS API (`--cms-url`): bootstrap, then everything the
CMS is told goes through a durable outbox (``talq_outbox``), in order.

**Bootstrap** (TALQ's first step): the gateway POSTs /devices with its own device, a
GatewayFunction giving its URI (gatewayUri) and the CMS's (cmsUri), its address the nil
UUID and `clientAddress` the nil UUID; the CMS answers with the addresses it assigned
(gatewayAddress, and its own cmsAddress), which the store keeps (settings
``talq.gateway_address``, ``talq.cms_address``, ``talq.cms_url``): a restart does not
bootstrap again. From then on every request carries ``clientAddress`` = gatewayAddress,
and every request from the CMS must carry its cmsAddress. The gateway then announces its
services (POST /services), its device classes (POST /device-classes) and its devices
(POST /devices, 200 a request).

**Delivery**: the outbox is sent oldest first, one request at a time, each with its own
``talqRequestId`` (the same on every retry of it). 2xx: taken. 400/404/409/422: refused
for good, logged with the CMS's TALQ error, and the next one goes (a device it already
has is a 409). 401, 403, 408, 429, 5xx, no answer: nothing is taken; delivery pauses and
resumes after a backoff (1 s doubling to 60 s, or the CMS's Retry-After), so a CMS outage
loses nothing, however long, and across gateway restarts.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanterna.errors import EXIT_FAILED, LanternaError
from lanterna.store import Store
from lanterna.talq.model import NAMESPACE, NIL, VENDOR, VERSION, gateway_device_address
from lanterna.talq.state import State

log = logging.getLogger("lanterna.talq")
RETRY = {401, 403, 408, 425, 429}
DEVICES_PER_REQUEST = 200


class CmsError(LanternaError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_FAILED)


class Unreachable(Exception):
    pass


@dataclass
class Answer:
    status: int
    body: Any
    retry_after: float | None = None


def error_text(body: Any) -> str:
    """A TALQErrorMessage array in one line."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return "; ".join(f"{m.get('key')}: {m.get('description', '')}".strip() for m in body)[:500]
    return str(body)[:300]


class Client:
    def __init__(
        self, url: str, cert: Path, key: Path, cafile: Path | None, timeout: float = 10.0
    ) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "https" or not u.hostname:
            raise CmsError(f"--cms-url {url!r}: an https:// URL (TALQ runs over TLS)")
        self.url = url.rstrip("/")
        self.host, self.port = u.hostname, u.port or 443
        self.base = u.path.rstrip("/")
        self.timeout = timeout
        ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as e:
            raise CmsError(f"--tls-cert/--tls-key: {e}") from None
        self.ctx = ctx
        self._conn: http.client.HTTPSConnection | None = None

    def call(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        q = urllib.parse.urlencode(query)
        target = self.base + path + ("&" if "?" in path else "?") + q
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"talq-api-version": VERSION, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):  # a kept-alive connection the CMS closed: once more, fresh
            conn = self._conn or http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.ctx
            )
            try:
                conn.request(method, target, body=data, headers=headers)
                r = conn.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                conn.close()
                self._conn = None
                if attempt == 0 and isinstance(
                    e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    continue
                raise Unreachable(f"{self.url}: {e}") from None
            self._conn = conn
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")[:300]
            ra = r.getheader("Retry-After")
            retry = float(ra) if ra and ra.strip().isdigit() else None
            return Answer(r.status, parsed, retry)
        raise Unreachable(f"{self.url}: no answer")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def attr_of(fn: dict[str, Any], name: str) -> Any:
    a = fn.get(name)
    return a.get("value") if isinstance(a, dict) else None


class Cms:
    def __init__(
        self,
        stores: Callable[[], Store],
        client: Client,
        gateway_url: str,
        max_backoff_s: float = 60.0,
    ) -> None:
        """`stores()`: the calling thread's store."""
        self.stores = stores
        self.client = client
        self.gateway_url = gateway_url
        self.max_backoff_s = max_backoff_s
        self.failures = 0
        self.wait_until = 0.0
        self.lock = threading.Lock()
        st = stores()
        self._addr: tuple[str | None, str | None] = (None, None)
        if st.setting("talq.cms_url") == self.url:
            self._addr = (st.setting("talq.gateway_address"), st.setting("talq.cms_address"))

    @property
    def url(self) -> str:
        return self.client.url

    def addresses(self) -> tuple[str | None, str | None]:
        """(gatewayAddress, cmsAddress) once bootstrapped with this CMS."""
        return self._addr

    def gateway_device(self, gw_addr: str, cms_addr: str) -> dict[str, Any]:
        def s(v: str) -> dict[str, Any]:
            return {"type": "AttributeString", "value": v}

        def u(v: str) -> dict[str, Any]:
            return {"type": "AttributeUri", "value": v}

        return {
            "address": gateway_device_address(),
            "name": "lanterna-talq-gateway",
            "class": "lanterna-gateway",
            "functions": [
                {
                    "id": "gateway",
                    "type": "GatewayFunction",
                    "cmsUri": u(self.url + "/"),
                    "cmsAddress": s(cms_addr),
                    "gatewayUri": u(self.gateway_url),
                    "gatewayAddress": s(gw_addr),
                    "vendor": s(VENDOR),
                }
            ],
        }

    def bootstrap(self) -> tuple[str, str]:
        """Register with the CMS (once per CMS URL); -> (gatewayAddress, cmsAddress)."""
        gw, cms = self.addresses()
        if gw and cms:
            return gw, cms
        q = {"clientAddress": NIL, "talqRequestId": str(uuid.uuid4())}
        try:
            a = self.client.call("POST", "/devices", q, [self.gateway_device(NIL, NIL)])
        except Unreachable as e:
            raise CmsError(f"bootstrap: {e}") from None
        if a.status not in (200, 201):
            raise CmsError(f"bootstrap: the CMS answered {a.status}: {error_text(a.body)}")
        gw = cms = None
        for d in a.body if isinstance(a.body, list) else []:
            for f in d.get("functions", []) if isinstance(d, dict) else []:
                if isinstance(f, dict) and f.get("type") == "GatewayFunction":
                    gw, cms = attr_of(f, "gatewayAddress"), attr_of(f, "cmsAddress")
        try:
            if not (gw and cms and gw != NIL and cms != NIL):
                raise ValueError
            gw, cms = str(uuid.UUID(gw)), str(uuid.UUID(cms))
        except (ValueError, TypeError, AttributeError):
            raise CmsError(
                "bootstrap: the CMS's answer has no gatewayAddress and cmsAddress (UUIDs) "
                "in a GatewayFunction"
            ) from None
        st = self.stores()
        st.set_setting("talq.cms_url", self.url)
        st.set_setting("talq.gateway_address", gw)
        st.set_setting("talq.cms_address", cms)
        self._addr = (gw, cms)
        log.info("bootstrapped with %s: gateway %s, CMS %s", self.url, gw, cms)
        return gw, cms

    def queue(self, db: Any, method: str, path: str, body: Any) -> None:
        """Queue a request inside the caller's transaction `db`."""
        State(None).queue(db, self.url, method, path, body)  # type: ignore[arg-type]

    def announce(
        self,
        services: list[dict[str, Any]],
        classes: list[dict[str, Any]],
        devices: list[dict[str, Any]],
    ) -> None:
        with self.stores().tx() as db:
            self.queue(db, "POST", "/services", services)
            self.queue(db, "POST", "/device-classes", classes)
            for i in range(0, len(devices), DEVICES_PER_REQUEST):
                self.queue(db, "POST", "/devices", devices[i : i + DEVICES_PER_REQUEST])

    def request_id(self, oid: int) -> str:
        return str(uuid.uuid5(NAMESPACE, f"outbox:{self.url}:{oid}"))

    def deliver(self, stop: threading.Event | None = None) -> int:
        """Send what waits until it is all taken, the CMS fails, or `stop`; -> sent."""
        with self.lock:
            if time.monotonic() < self.wait_until:
                return 0
            gw, _ = self.addresses()
            if not gw:
                return 0
            st = State(self.stores())
            sent = 0
            while stop is None or not stop.is_set():
                items = st.queued(self.url, 50)
                if not items:
                    break
                for oid, method, path, body, _tries in items:
                    q = {"clientAddress": gw, "talqRequestId": self.request_id(oid)}
                    try:
                        a = self.client.call(method, path, q, body)
                    except Unreachable as e:
                        st.retried(oid)
                        return self._fail(sent, str(e), None)
                    if 200 <= a.status < 300:
                        st.sent(oid)
                        sent += 1
                        self.failures = 0
                    elif a.status in RETRY or a.status >= 500:
                        st.retried(oid)
                        return self._fail(sent, f"{method} {path}: HTTP {a.status}", a.retry_after)
                    else:
                        log.warning(
                            "the CMS refused %s %s: HTTP %d %s (not retried)",
                            method,
                            path,
                            a.status,
                            error_text(a.body),
                        )
                        st.sent(oid)
            return sent

    def _fail(self, sent: int, why: str, retry_after: float | None) -> int:
        self.failures += 1
        wait = random.uniform(0.5, min(self.max_backoff_s, 2.0 ** (self.failures - 1)))
        if retry_after is not None:
            wait = min(max(wait, retry_after), self.max_backoff_s)
        self.wait_until = time.monotonic() + wait
        log.warning(
            "CMS %s: %s; next try in %.1f s (%d waiting)",
            self.url,
            why,
            wait,
            State(self.stores()).outbox_count(self.url),
        )
        return sent

    def pending(self) -> int:
        return State(self.stores()).outbox_count(self.url)
