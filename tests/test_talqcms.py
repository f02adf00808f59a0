"""The fake TALQ CMS the gateway's tests run against: real HTTPS with mutual TLS on
loopback, requests checked against the TALQ 2.7.1 OpenAPI files."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from specs import NO_TALQ, TALQ
from talqpki import Pki, make_pki

if TALQ is None:
    pytest.skip(NO_TALQ, allow_module_level=True)

from talqcms import NIL, Cms, body_pointer  # noqa: E402 (needs the spec files)

GATEWAY_DEVICE = "5f0c3c1e-9b1a-4d61-8d0e-2a7f3c9e4b10"
LAMP = "0d7e6a2b-3c4f-4a8e-9b1d-6e5f4a3b2c1d"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def gateway_cert(pki: Pki) -> tuple[Path, Path]:
    return pki.issue("gateway", server_hosts=("127.0.0.1",), client=True)


@pytest.fixture
def cms(pki: Pki) -> Iterator[Cms]:
    c = Cms(pki, gateway_ca=pki.ca).start()
    try:
        yield c
    finally:
        c.stop()


def context(pki: Pki, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(*map(str, cert))
    return ctx


def call(
    cms: Cms,
    ctx: ssl.SSLContext,
    method: str,
    path: str,
    body: Any = None,
    *,
    client: str | None = None,
    version: str | None = "2.7.1",
    query: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request as a gateway would send it -> (status, headers, parsed body)."""
    u = urllib.parse.urlsplit(cms.url)
    q = {"clientAddress": client or cms.gateway_address or NIL, "talqRequestId": str(uuid.uuid4())}
    q.update(query or {})
    headers = {"Content-Type": "application/json"}
    if version is not None:
        headers["talq-api-version"] = version
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, f"{path}?{urllib.parse.urlencode(q)}", data, headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def gateway_device(cms: Cms, gw: str = NIL, cms_addr: str = NIL) -> dict[str, Any]:
    return {
        "address": GATEWAY_DEVICE,
        "name": "lanterna-talq-gateway",
        "class": "lanterna-gateway",
        "functions": [
            {
                "id": "gateway",
                "type": "GatewayFunction",
                "cmsUri": {"type": "AttributeUri", "value": cms.url + "/"},
                "cmsAddress": {"type": "AttributeString", "value": cms_addr},
                "gatewayUri": {"type": "AttributeUri", "value": "https://127.0.0.1:8443/"},
                "gatewayAddress": {"type": "AttributeString", "value": gw},
            }
        ],
    }


def lamp(level: int = 100) -> dict[str, Any]:
    return {
        "address": LAMP,
        "name": "pole-1",
        "class": "lanterna-lamp",
        "functions": [
            {
                "id": "basic",
                "type": "BasicFunction",
                "serial": {"type": "AttributeString", "value": "A1"},
            },
            {
                "id": "actuator",
                "type": "LampActuatorFunction",
                "cloEnabled": {"type": "AttributeBoolean", "value": False},
                "maintenanceFactor": {"type": "AttributePercent", "value": level},
            },
        ],
    }


def event_report(**data: Any) -> dict[str, Any]:
    entry = {"type": "EventLogData", "srcAddress": f"{LAMP}/actuator", "eventType": "lampFailure"}
    entry.update({"timestamp": "2026-12-03T18:04:00Z", "startEndFlag": True}, **data)
    return {
        "address": "logger-1",
        "entries": [{"data": {k: v for k, v in entry.items() if v is not None}}],
    }


@pytest.fixture
def booted(cms: Cms, pki: Pki, gateway_cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = context(pki, gateway_cert)
    status, _, _ = call(cms, ctx, "POST", "/devices", [gateway_device(cms)], client=NIL)
    assert status == 201 and cms.gateway_address
    return ctx


def test_bootstrap_assigns_the_gateway_and_cms_addresses(cms: Cms, pki: Pki, gateway_cert) -> None:
    ctx = context(pki, gateway_cert)
    status, headers, body = call(cms, ctx, "POST", "/devices", [gateway_device(cms)], client=NIL)
    assert status == 201, body
    assert headers["talq-api-version"] == "2.7.1"
    (f,) = body[0]["functions"]
    assert f["gatewayAddress"] == {"type": "AttributeString", "value": cms.gateway_address}
    assert f["cmsAddress"] == {"type": "AttributeString", "value": cms.address}
    assert uuid.UUID(cms.gateway_address).version == 4 and cms.gateway_address != cms.address
    assert (
        cms.devices[GATEWAY_DEVICE]["functions"][0]["gatewayAddress"]["value"]
        == cms.gateway_address
    )
    # the answer itself is what the spec says a 201 of addDevices holds
    assert not cms.spec.problems(body_pointer("/devices", "post", "responses/201"), body)
    assert cms.answer_problems == [] and cms.nonconforming() == []


def test_bootstrap_with_an_address_other_than_nil_is_refused(
    cms: Cms, pki: Pki, gateway_cert
) -> None:
    ctx = context(pki, gateway_cert)
    status, _, body = call(
        cms, ctx, "POST", "/devices", [gateway_device(cms)], client=str(uuid.uuid4())
    )
    assert status == 400 and body[0]["key"] == "parameterValueNotValid"
    assert cms.gateway_address is None and cms.devices == {}


@pytest.mark.parametrize("cert", ["none", "foreign", "server_only"])
def test_a_client_without_a_certificate_from_the_gateway_ca_fails_the_handshake(
    cms: Cms, pki: Pki, tmp_path: Path, cert: str
) -> None:
    foreign = make_pki(tmp_path / "foreign")
    chosen = {
        "none": None,
        "foreign": foreign.issue("intruder", client=True),
        "server_only": pki.issue("not-a-client", server_hosts=("127.0.0.1",)),  # no clientAuth
    }[cert]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(cms, context(pki, chosen), "POST", "/devices", [gateway_device(cms)], client=NIL)
    assert cms.wait(lambda c: len(c.tls_refusals) == 1, timeout=10)
    assert cms.requests == [] and cms.gateway_address is None


def test_the_gateway_refuses_a_cms_certificate_from_another_ca(
    cms: Cms, pki: Pki, tmp_path, gateway_cert
) -> None:
    other = make_pki(tmp_path / "other")
    ctx = context(other, gateway_cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        call(cms, ctx, "POST", "/devices", [gateway_device(cms)], client=NIL)


def test_a_request_with_a_wrong_client_address_is_refused(cms: Cms, booted: ssl.SSLContext) -> None:
    status, _, body = call(cms, booted, "POST", "/devices", [lamp()], client=str(uuid.uuid4()))
    assert status == 400 and [m["key"] for m in body] == ["parameterValueNotValid"]
    assert LAMP not in cms.devices
    assert [r.status for r in cms.nonconforming()] == [400]
    status, _, body = call(cms, booted, "POST", "/devices", [lamp()])
    assert status == 201 and cms.devices[LAMP]["name"] == "pole-1"
    assert len(cms.nonconforming()) == 1


@pytest.mark.parametrize(
    "version, query, key",
    [
        (None, {}, "headerMissing"),
        ("3.0.0", {}, "headerValueNotValid"),
        ("2.7.1", {"talqRequestId": "not-a-uuid"}, "parameterValueNotValid"),
        ("2.7.1", {"colour": "red"}, "parameterValueNotValid"),
    ],
)
def test_header_and_parameters_are_checked(cms: Cms, booted, version, query, key) -> None:
    status, headers, body = call(
        cms, booted, "POST", "/log-reports", event_report(), version=version, query=query
    )
    assert status == 400 and body[0]["key"] == key, body
    assert headers["talq-api-version"] == "2.7.1"
    assert cms.log_reports == [] and len(cms.nonconforming()) == 1


def test_a_missing_request_id_is_a_missing_parameter(cms: Cms, booted) -> None:
    u = urllib.parse.urlsplit(cms.url)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=booted, timeout=10)
    try:
        path = f"/log-reports?clientAddress={cms.gateway_address}"
        body = json.dumps(event_report()).encode()
        conn.request(
            "POST", path, body, {"talq-api-version": "2.7.1", "Content-Type": "application/json"}
        )
        r = conn.getresponse()
        assert r.status == 400 and json.loads(r.read())[0]["key"] == "parameterMissing"
    finally:
        conn.close()


def test_an_event_log_report_is_accepted(cms: Cms, booted) -> None:
    status, _, body = call(cms, booted, "POST", "/log-reports", event_report())
    assert (status, body) == (201, None)
    assert cms.log_reports == [event_report()]
    assert cms.nonconforming() == []


@pytest.mark.parametrize(
    "report, where",
    [
        (event_report(eventType=None), "body/entries/0/data: 'eventType' is a required property"),
        (event_report(eventType="lampOnFire"), "body/entries/0/data/eventType"),
        (event_report(timestamp="yesterday"), "body/entries/0/data/timestamp"),
        (event_report(type="NoSuchLogData"), "body/entries/0/data/type"),
    ],
)
def test_a_malformed_log_report_is_refused(cms: Cms, booted, report, where: str) -> None:
    status, _, body = call(cms, booted, "POST", "/log-reports", report)
    assert status == 400 and body[0]["key"] == "payloadError"
    (bad,) = cms.nonconforming()
    assert any(p.startswith(where) for p in bad.problems), bad.problems
    assert cms.log_reports == []


@pytest.mark.parametrize(
    "function, attribute, where",
    [
        (
            "actuator",
            {"cloEnabled": {"type": "AttributeBoolean", "value": "yes"}},
            "cloEnabled/value",
        ),
        (
            "actuator",
            {"cloEnabled": {"type": "AttributeString", "value": "yes"}},
            "cloEnabled/type",
        ),
        (
            "actuator",
            {"maintenanceFactor": {"type": "AttributePercent", "value": 150}},
            "maintenanceFactor/value",
        ),
        (
            "basic",
            {"installationDate": {"type": "AttributeDateTime", "value": "3 Dec"}},
            "installationDate/value",
        ),
    ],
)
def test_a_function_whose_attribute_does_not_match_its_declared_type_is_refused(
    cms: Cms, booted, function: str, attribute: dict[str, Any], where: str
) -> None:
    device = lamp()
    next(f for f in device["functions"] if f["id"] == function).update(attribute)
    status, _, body = call(cms, booted, "POST", "/devices", [device])
    assert status == 400 and body[0]["key"] == "payloadError"
    (bad,) = cms.nonconforming()
    assert any(where in p for p in bad.problems), bad.problems
    assert LAMP not in cms.devices


def test_a_gateway_function_with_a_uri_typed_as_a_string_is_refused(
    cms: Cms, pki, gateway_cert
) -> None:
    device = gateway_device(cms)
    device["functions"][0]["gatewayUri"]["type"] = "AttributeString"
    status, _, body = call(
        cms, context(pki, gateway_cert), "POST", "/devices", [device], client=NIL
    )
    assert status == 400 and "gatewayUri/type" in body[0]["description"]
    assert cms.gateway_address is None


def test_patch_merges_functions_by_id_and_attributes_by_name(cms: Cms, booted) -> None:
    assert call(cms, booted, "POST", "/devices", [lamp()])[0] == 201
    patch = {
        "address": LAMP,
        "name": "pole-1",
        "class": "lanterna-lamp",
        "functions": [
            {
                "id": "actuator",
                "type": "LampActuatorFunction",
                "cloEnabled": {"type": "AttributeBoolean", "value": True},
            },
            {
                "id": "monitor",
                "type": "LampMonitorFunction",
                "lampFailure": {"type": "AttributeBoolean", "value": True},
            },
        ],
    }
    status, _, body = call(cms, booted, "PATCH", f"/devices/{LAMP}", patch)
    assert (status, body) == (200, None)
    f = {f["id"]: f for f in cms.devices[LAMP]["functions"]}
    assert f["actuator"]["cloEnabled"]["value"] is True
    assert f["actuator"]["maintenanceFactor"]["value"] == 100  # untouched
    assert f["monitor"]["lampFailure"]["value"] is True and "basic" in f
    assert call(cms, booted, "PATCH", "/devices", [patch])[0] == 200


def test_an_update_of_an_unknown_device_is_404_and_changes_nothing(cms: Cms, booted) -> None:
    assert call(cms, booted, "POST", "/devices", [lamp()])[0] == 201
    other = dict(lamp(), address=str(uuid.uuid4()))
    status, _, body = call(cms, booted, "PATCH", "/devices", [lamp(50), other])
    assert status == 404 and body[0]["key"] == "resourceNotFound"
    assert cms.devices[LAMP]["functions"][1]["maintenanceFactor"]["value"] == 100
    status, _, _ = call(cms, booted, "PUT", f"/devices/{other['address']}", other)
    assert status == 404
    status, _, body = call(cms, booted, "PUT", f"/devices/{LAMP}", lamp(50))
    assert status == 200 and body["address"] == LAMP
    assert cms.devices[LAMP]["functions"][1]["maintenanceFactor"]["value"] == 50


def test_device_classes_and_services_are_kept(cms: Cms, booted) -> None:
    cls = {
        "name": "lanterna-lamp",
        "functions": [{"functionId": "actuator", "type": "LampActuatorFunction"}],
    }
    assert call(cms, booted, "POST", "/device-classes", [cls])[0] == 201
    assert call(cms, booted, "POST", "/device-classes", [cls])[0] == 409
    assert call(cms, booted, "PUT", "/device-classes/lanterna-lamp", cls)[0] == 200
    services = [{"name": "ControlService"}, {"name": "DataCollectService"}]
    assert call(cms, booted, "POST", "/services", services)[0] == 201
    assert cms.device_classes == {"lanterna-lamp": cls} and cms.services == services
    assert call(cms, booted, "POST", "/services", [{"name": "WeatherService"}])[0] == 400
    assert cms.answer_problems == []


def test_an_operation_outside_the_cms_api_is_404(cms: Cms, booted) -> None:
    status, _, body = call(cms, booted, "POST", "/lamps", [])
    assert status == 404 and body[0]["key"] == "resourceNotFound"
    status, _, body = call(cms, booted, "GET", "/devices")  # in the API, not served here
    assert status == 404
    assert len(cms.nonconforming()) == 2


def test_an_outage_answers_503_then_the_cms_takes_requests_again(cms: Cms, booted) -> None:
    cms.down()
    status, headers, _ = call(cms, booted, "POST", "/log-reports", event_report())
    assert status == 503 and headers["retry-after"] == "1"
    assert cms.requests[-1].outcome == "refused_outage" and cms.log_reports == []
    cms.up()
    status, _, _ = call(cms, booted, "POST", "/log-reports", event_report())
    assert status == 201 and cms.requests[-1].outcome == "accepted"
    assert len(cms.log_reports) == 1


def test_wait_returns_false_on_timeout_and_true_once_it_holds(cms: Cms, booted) -> None:
    assert cms.wait(lambda c: len(c.log_reports) == 1, timeout=0.2) is False
    call(cms, booted, "POST", "/log-reports", event_report())
    assert cms.wait(lambda c: len(c.log_reports) == 1, timeout=5) is True


def test_stop_closes_idle_keep_alive_connections(pki: Pki, gateway_cert) -> None:
    cms = Cms(pki, gateway_ca=pki.ca).start()
    u = urllib.parse.urlsplit(cms.url)
    ctx = context(pki, gateway_cert)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
    q = urllib.parse.urlencode({"clientAddress": NIL, "talqRequestId": str(uuid.uuid4())})
    head = {"talq-api-version": "2.7.1", "Content-Type": "application/json"}
    try:
        conn.request("POST", f"/devices?{q}", json.dumps([gateway_device(cms)]).encode(), head)
        r = conn.getresponse()
        assert r.status == 201 and r.read() and not r.will_close  # HTTP/1.1 keep-alive
    finally:
        cms.stop()  # the connection is still open: its thread must end, not hold stop()
    try:
        with pytest.raises((OSError, http.client.HTTPException)):
            conn.request("POST", f"/log-reports?{q}", b"{}", head)
            conn.getresponse()
    finally:
        conn.close()


def test_without_tls_it_serves_plain_http(pki: Pki) -> None:
    with Cms(pki, gateway_ca=pki.ca, tls=False) as cms:
        assert cms.url.startswith("http://127.0.0.1:")
        u = urllib.parse.urlsplit(cms.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            q = urllib.parse.urlencode({"clientAddress": NIL, "talqRequestId": str(uuid.uuid4())})
            body = json.dumps([gateway_device(cms)]).encode()
            conn.request("POST", f"/devices?{q}", body, {"talq-api-version": "2.7.1"})
            r = conn.getresponse()
            # no Content-Type: the spec's body is application/json
            assert r.status == 400 and json.loads(r.read())[0]["key"] == "headerValueNotValid"
        finally:
            conn.close()
