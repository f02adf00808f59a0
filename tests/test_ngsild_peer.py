"""The NGSI-LD test peer (tests/ngsild_peer.py) checked on its own, over plain http.client,
so that a bridge test failing against it says something about the bridge."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Any

import pytest
from ngsild_peer import (
    BAD_REQUEST_DATA,
    CORE_CONTEXT,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    JSONLD_REL,
    NONEXISTENT_TENANT,
    RESOURCE_NOT_FOUND,
    UPSERT_PATH,
    Peer,
)

TIMEOUT = 5.0
USER_CONTEXT = "https://smartdatamodels.org/context.jsonld"
LINK = f'<{USER_CONTEXT}>; rel="{JSONLD_REL}"; type="application/ld+json"'


@pytest.fixture
def peer():
    with Peer(max_batch=3) as p:
        yield p


def lamp(n: int, **attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Streetlight:gr-{n:03d}",
        "type": "Streetlight",
        "powerState": {"type": "Property", "value": "on"},
    }
    entity.update(attrs)
    return entity


def call(
    peer: Peer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, Any]:
    port = urllib.parse.urlsplit(peer.url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, resp.headers, json.loads(text) if text else None
    finally:
        conn.close()


def upsert(peer: Peer, entities: Any, options: str | None = None, **kw: Any):
    path = UPSERT_PATH + (f"?options={options}" if options else "")
    return call(peer, "POST", path, entities, **kw)


def entity_path(eid: str) -> str:
    return "/ngsi-ld/v1/entities/" + urllib.parse.quote(eid, safe="")


# --- upsert: create, replace, update ------------------------------------------------------


def test_upsert_of_new_entities_answers_201_with_their_ids(peer):
    status, headers, body = upsert(peer, [lamp(1), lamp(2)])
    assert status == 201
    assert headers["Content-Type"] == "application/json"
    assert body == [lamp(1)["id"], lamp(2)["id"]]
    assert peer.entities() == {lamp(1)["id"]: lamp(1), lamp(2)["id"]: lamp(2)}
    [seen] = peer.upserts()
    assert seen["status"] == 201 and seen["entities"] == [lamp(1), lamp(2)]
    assert seen["options"] is None and seen["content_type"] == "application/json"


def test_upsert_of_existing_entities_answers_204_and_replaces_them_whole(peer):
    dim = {"type": "Property", "value": 40, "unitCode": "P1"}
    upsert(peer, [lamp(1, illuminanceLevel=dim)])
    status, headers, body = upsert(peer, [lamp(1, powerState={"type": "Property", "value": "off"})])
    assert (status, body) == (204, None)
    assert "Content-Length" not in headers
    stored = peer.entities()[lamp(1)["id"]]
    assert stored["powerState"]["value"] == "off"
    assert "illuminanceLevel" not in stored  # replace (the default) drops what is not sent


def test_upsert_with_options_update_merges_attributes(peer):
    upsert(peer, [lamp(1, illuminanceLevel={"type": "Property", "value": 40})])
    new_state = {"type": "Property", "value": "off"}
    moved = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-0.0, 51.48]}}
    status, _, _ = upsert(
        peer,
        [{"id": lamp(1)["id"], "type": "Streetlight", "powerState": new_state, "location": moved}],
        options="update",
    )
    assert status == 204
    stored = peer.entities()[lamp(1)["id"]]
    assert stored["illuminanceLevel"]["value"] == 40  # kept
    assert stored["powerState"] == new_state  # replaced
    assert stored["location"] == moved  # added
    assert peer.upserts()[-1]["options"] == "update"


def test_upsert_creating_some_and_updating_others_answers_201_with_the_created_ids(peer):
    # The batch upsert answers: 201 when the entities that did not exist were created and the others
    # updated; 204 only when all of them existed.
    upsert(peer, [lamp(1)])
    status, _, body = upsert(peer, [lamp(1), lamp(2)])
    assert (status, body) == (201, [lamp(2)["id"]])


def test_unknown_options_value_is_rejected(peer):
    status, _, body = upsert(peer, [lamp(1)], options="append")
    assert status == 400 and body["type"] == BAD_REQUEST_DATA and "append" in body["detail"]
    assert peer.entities() == {}


# --- content types and the JSON-LD context ------------------------------------------------


def test_json_ld_body_carries_its_context_and_get_gives_it_back(peer):
    entity = {**lamp(1), "@context": [USER_CONTEXT, CORE_CONTEXT]}
    status, _, _ = upsert(peer, [entity], headers={"Content-Type": "application/ld+json"})
    assert status == 201
    assert "@context" not in peer.entities()[lamp(1)["id"]]
    status, headers, body = call(
        peer, "GET", entity_path(lamp(1)["id"]), headers={"Accept": "application/ld+json"}
    )
    assert status == 200 and headers["Content-Type"] == "application/ld+json"
    assert body == entity


def test_json_body_takes_its_context_from_the_link_header(peer):
    upsert(peer, [lamp(1)], headers={"Link": LINK})
    upsert(peer, [lamp(2)])
    _, headers, body = call(peer, "GET", entity_path(lamp(1)["id"]))
    assert body == lamp(1) and USER_CONTEXT in headers["Link"]
    _, headers, _ = call(peer, "GET", entity_path(lamp(2)["id"]))
    assert CORE_CONTEXT in headers["Link"]  # no Link header: the core context


@pytest.mark.parametrize(
    "headers, entity",
    [
        ({"Content-Type": "text/plain"}, lamp(1)),
        (
            {"Content-Type": "application/ld+json", "Link": LINK},
            {**lamp(1), "@context": CORE_CONTEXT},
        ),
        ({"Content-Type": "application/json"}, {**lamp(1), "@context": CORE_CONTEXT}),
    ],
    ids=["text-plain", "ld+json-with-link", "json-with-context-in-body"],
)
def test_wrong_media_type_or_context_placement_is_415(peer, headers, entity):
    status, resp_headers, body = upsert(peer, [entity], headers=headers)
    assert status == 415
    assert resp_headers["Content-Type"] == "application/json"
    assert body["status"] == 415 and body["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    assert body["title"] and body["detail"]
    assert peer.entities() == {}
    assert peer.upserts()[-1]["status"] == 415


@pytest.mark.parametrize(
    "raw, type_, word",
    [
        (b"[{not json", INVALID_REQUEST, "JSON"),
        (json.dumps(lamp(1)).encode(), BAD_REQUEST_DATA, "array"),
        (b"[]", BAD_REQUEST_DATA, "empty"),
        (json.dumps([lamp(i) for i in range(4)]).encode(), BAD_REQUEST_DATA, "3"),
    ],
    ids=["not-json", "not-an-array", "empty", "over-max-batch"],
)
def test_bad_batch_is_400_and_changes_nothing(peer, raw, type_, word):
    status, _, body = call(peer, "POST", UPSERT_PATH, raw=raw)
    assert status == 400
    assert body["type"] == type_ and body["status"] == 400 and word in body["detail"]
    assert peer.entities() == {}


# --- per-entity rejections ----------------------------------------------------------------


BAD_ENTITIES = {
    "id-with-space": {"id": "urn:ngsi-ld:Streetlight:gr 001", "type": "Streetlight"},
    "id-without-scheme": {"id": "Streetlight-gr-001", "type": "Streetlight"},
    "id-not-a-string": {"id": 17, "type": "Streetlight"},
    "id-urn-without-local-part": {"id": "urn:ngsi-ld:Streetlight:", "type": "Streetlight"},
    "type-missing": {"id": "urn:ngsi-ld:Streetlight:x"},
    "attribute-without-type": {**lamp(9), "powerState": {"value": "on"}},
    "attribute-not-an-object": {**lamp(9), "powerState": "on"},
    "property-without-value": {**lamp(9), "powerState": {"type": "Property"}},
    "relationship-without-object": {**lamp(9), "refGroup": {"type": "Relationship"}},
    "relationship-object-not-uri": {
        **lamp(9),
        "refGroup": {"type": "Relationship", "object": "group one"},
    },
    "observedAt-not-utc": {
        **lamp(9),
        "powerState": {
            "type": "Property",
            "value": "on",
            "observedAt": "2026-12-03T06:00:00+01:00",
        },
    },
    "observedAt-not-a-date": {
        **lamp(9),
        "powerState": {"type": "Property", "value": "on", "observedAt": "2026-13-03T06:00:00Z"},
    },
    "point-latitude-out-of-range": {
        **lamp(9),
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [51.5, -120]},
        },
    },
    "geoproperty-not-geojson": {**lamp(9), "location": {"type": "GeoProperty", "value": [0, 51]}},
    "sub-property-without-value": {
        **lamp(9),
        "powerState": {"type": "Property", "value": "on", "source": {"type": "Property"}},
    },
    "null-value": {**lamp(9), "powerState": {"type": "Property", "value": None}},
}


@pytest.mark.parametrize("bad", list(BAD_ENTITIES.values()), ids=list(BAD_ENTITIES))
def test_a_bad_entity_fails_alone_in_a_207(peer, bad):
    status, _, body = upsert(peer, [lamp(1), bad])
    assert status == 207
    assert body["success"] == [lamp(1)["id"]]
    [error] = body["errors"]
    assert error["entityId"] == (bad["id"] if isinstance(bad["id"], str) else "")
    assert error["error"]["type"] == BAD_REQUEST_DATA and error["error"]["status"] == 400
    assert error["error"]["detail"]
    assert list(peer.entities()) == [lamp(1)["id"]]


def test_valid_attribute_forms_are_accepted(peer):
    entity = lamp(
        1,
        powerState={
            "type": "Property",
            "value": "on",
            "observedAt": "2026-12-03T05:00:00.250Z",
            "unitCode": "P1",
            "source": {"type": "Property", "value": "photocell"},
        },
        refGroup={"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:gr-a"},
        location={
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-0.0098, 51.4826]},
        },
        description={"type": "LanguageProperty", "languageMap": {"en": "pole 1", "it": "palo 1"}},
    )
    status, _, body = upsert(peer, [entity])
    assert status == 201, body
    assert peer.entities()[entity["id"]] == entity


def test_json_ld_entity_without_context_fails_alone(peer):
    with_ctx = {**lamp(1), "@context": CORE_CONTEXT}
    status, _, body = upsert(
        peer, [with_ctx, lamp(2)], headers={"Content-Type": "application/ld+json"}
    )
    assert status == 207
    assert body["success"] == [lamp(1)["id"]]
    assert [e["entityId"] for e in body["errors"]] == [lamp(2)["id"]]
    assert "@context" in body["errors"][0]["error"]["detail"]


# --- retrieval ----------------------------------------------------------------------------


def test_get_entity_by_encoded_id_and_404_for_unknown(peer):
    upsert(peer, [lamp(1)])
    status, headers, body = call(
        peer, "GET", entity_path(lamp(1)["id"]), headers={"Accept": "application/json"}
    )
    assert (status, body) == (200, lamp(1))
    assert headers["Content-Type"] == "application/json"
    status, _, body = call(peer, "GET", entity_path("urn:ngsi-ld:Streetlight:nope"))
    assert status == 404 and body["type"] == RESOURCE_NOT_FOUND


def test_query_by_type_with_limit_and_offset(peer):
    group = {"id": "urn:ngsi-ld:StreetlightGroup:a", "type": "StreetlightGroup"}
    upsert(peer, [lamp(1), lamp(2), group])
    upsert(peer, [lamp(3)])
    status, _, body = call(peer, "GET", "/ngsi-ld/v1/entities?type=Streetlight")
    assert status == 200 and [e["id"] for e in body] == [lamp(i)["id"] for i in (1, 2, 3)]
    _, _, body = call(peer, "GET", "/ngsi-ld/v1/entities?type=Streetlight&limit=1&offset=1")
    assert [e["id"] for e in body] == [lamp(2)["id"]]
    status, _, body = call(peer, "GET", "/ngsi-ld/v1/entities")
    assert status == 400 and body["type"] == BAD_REQUEST_DATA
    status, _, body = call(peer, "GET", "/ngsi-ld/v1/entities?type=Streetlight&limit=-1")
    assert status == 400 and "limit" in body["detail"]


def test_tenants_are_kept_apart(peer):
    greenwich = {"NGSILD-Tenant": "greenwich"}
    upsert(peer, [lamp(1)], headers=greenwich)
    upsert(peer, [lamp(2)])
    assert list(peer.entities("greenwich")) == [lamp(1)["id"]]
    assert list(peer.entities()) == [lamp(2)["id"]]
    assert peer.upserts()[0]["tenant"] == "greenwich" and peer.upserts()[1]["tenant"] is None
    status, _, _ = call(peer, "GET", entity_path(lamp(1)["id"]), headers=greenwich)
    assert status == 200
    status, _, body = call(peer, "GET", entity_path(lamp(1)["id"]))
    assert status == 404 and body["type"] == RESOURCE_NOT_FOUND
    status, _, body = call(
        peer, "GET", entity_path(lamp(1)["id"]), headers={"NGSILD-Tenant": "milan"}
    )
    assert status == 404 and body["type"] == NONEXISTENT_TENANT


def test_unknown_path_is_404_and_wrong_method_is_405(peer):
    status, _, body = call(peer, "GET", "/ngsi-ld/v1/nothing")
    assert status == 404 and body["type"] == RESOURCE_NOT_FOUND
    status, headers, body = call(peer, "GET", UPSERT_PATH)
    assert status == 405 and headers["Allow"] == "POST" and body["status"] == 405
    status, headers, _ = call(peer, "DELETE", entity_path(lamp(1)["id"]))
    assert status == 405 and headers["Allow"] == "GET"


# --- failure injection --------------------------------------------------------------------


def test_down_refuses_and_up_accepts_on_the_same_port_with_entities_kept(peer):
    upsert(peer, [lamp(1)])
    url = peer.url
    peer.down()
    with pytest.raises(ConnectionRefusedError):
        upsert(peer, [lamp(2)])
    peer.up()
    assert peer.url == url
    status, _, body = call(peer, "GET", entity_path(lamp(1)["id"]))
    assert (status, body) == (200, lamp(1))


def test_down_cuts_a_kept_alive_connection(peer):
    conn = http.client.HTTPConnection(
        "127.0.0.1", urllib.parse.urlsplit(peer.url).port, timeout=TIMEOUT
    )
    try:
        conn.request("GET", entity_path(lamp(1)["id"]))
        conn.getresponse().read()
        peer.down()
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", entity_path(lamp(1)["id"]))
            conn.getresponse().read()
    finally:
        conn.close()


def test_fail_twice_then_success(peer):
    peer.fail(503, times=2)
    for _ in range(2):
        status, headers, body = upsert(peer, [lamp(1)])
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert body["type"] == INTERNAL_ERROR and body["status"] == 503
    assert upsert(peer, [lamp(1)])[0] == 201
    assert [u["status"] for u in peer.upserts()] == [503, 503, 201]


def test_fail_can_send_retry_after(peer):
    peer.fail(503, times=1, retry_after=7)
    status, headers, _ = upsert(peer, [lamp(1)])
    assert (status, headers["Retry-After"]) == (503, "7")
    status, headers, _ = upsert(peer, [lamp(1)])
    assert status == 201 and "Retry-After" not in headers


def test_fail_until_clear_applies_to_every_request(peer):
    peer.fail(500)
    assert call(peer, "GET", entity_path(lamp(1)["id"]))[0] == 500
    assert upsert(peer, [lamp(1)])[0] == 500
    peer.clear()
    assert upsert(peer, [lamp(1)])[0] == 201


def test_stall_holds_a_request_until_the_event_is_set(peer):
    release = peer.stall()
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(upsert(peer, [lamp(1)])[0]))
    worker.start()
    try:
        assert peer.wait_for(lambda p: p.held() == 1, TIMEOUT)
        assert answers == [] and peer.entities() == {}
    finally:
        release.set()
        worker.join(TIMEOUT)
    assert answers == [201]
    assert peer.held() == 0


def test_stop_releases_a_stalled_request_unanswered_and_closes_the_socket():
    peer = Peer().start()
    peer.stall()
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(outcome, lambda: upsert(peer, [lamp(1)])))
    worker.start()
    assert peer.wait_for(lambda p: p.held() == 1, TIMEOUT)
    peer.stop()
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError), outcome
    assert peer.entities() == {}  # what was held is not applied after the peer stopped
    with pytest.raises(ConnectionRefusedError):
        call(peer, "GET", entity_path(lamp(1)["id"]))


def _catch(outcome: list[BaseException], fn) -> None:
    try:
        fn()
    except Exception as e:  # the test looks at what it was
        outcome.append(e)


def test_fail_entities_gives_exactly_those_ids_in_the_errors(peer):
    peer.fail_entities({lamp(2)["id"], lamp(3)["id"]}, status=409)
    status, _, body = upsert(peer, [lamp(1), lamp(2), lamp(3)])
    assert status == 207
    assert body["success"] == [lamp(1)["id"]]
    assert sorted(e["entityId"] for e in body["errors"]) == [lamp(2)["id"], lamp(3)["id"]]
    assert {e["error"]["status"] for e in body["errors"]} == {409}
    assert list(peer.entities()) == [lamp(1)["id"]]
    peer.clear()
    assert upsert(peer, [lamp(2)])[0] == 201


def test_wait_for_wakes_on_a_request_and_times_out_otherwise(peer):
    assert not peer.wait_for(lambda p: len(p.upserts()) == 1, 0.05)
    worker = threading.Thread(target=lambda: upsert(peer, [lamp(1)]))
    worker.start()
    assert peer.wait_for(lambda p: lamp(1)["id"] in p.entities(), TIMEOUT)
    worker.join(TIMEOUT)
