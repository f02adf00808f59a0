# lamp.net.link's TLS rule (docs/security.md): mqtt "tls" means verified against the CA
# provisioning wrote beside the config (ca.der), or the node does not start with it; no
# broker: the handshakes against a real mosquitto are tests/test_mqtt_tls.py's.
import os
from binascii import a2b_base64

from fw import fresh, raises, sim_hal
from lamp import app, clock, config
from lamp.net.link import Net, tls_context

MQTT = {"host": "127.0.0.1", "port": 8883, "user": "gw-7", "password": "pw", "tls": True}
# A P-256 CA certificate, DER (made by lanterna.broker.tls for this test; never a key),
# base64 here only to keep the file text.
CA = a2b_base64(
    "MIIBojCCAUigAwIBAgIUHuzGD+ANK0ZnnxAKyknZxHY9UtAwCgYIKoZIzj0EAwIwHTEbMBkGA1UE"
    "AwwSTGFudGVybmEgYnJva2VyIENBMB4XDTI2MTIwMjE3MDkyNloXDTM2MTEyOTE3MTQyNlowHTEb"
    "MBkGA1UEAwwSTGFudGVybmEgYnJva2VyIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsJ1d"
    "KV+rpP2lho8THFNtKufxVSTaF88K7Xaog7Ggr/tJ2dmFM5UOKTZyvX0qQQSlGEM2/FaYjGRnxcv/"
    "HTtFtKNmMGQwHQYDVR0OBBYEFN7V63pWPE7bdXtTyDOrcTrSBmDDMB8GA1UdIwQYMBaAFN7V63pW"
    "PE7bdXtTyDOrcTrSBmDDMBIGA1UdEwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/BAQDAgEGMAoGCCqG"
    "SM49BAMCA0gAMEUCIQDaS8C5iurC+pDmK1Lpap9ghhU5KapEiyqqTQL6GMOiUAIgE5MENrPq+eAW"
    "QiajkQGn5U+kxPTHTRALTqqkGdqlBGA="
)


def _node(name, mqtt):
    clock.setup(start=1795624200, manual=True)
    cfg = config.build({"log_level": "error", "node": "gw-7", "mqtt": mqtt})
    return app.Node(sim_hal(), cfg, root=fresh(name) + "-"), cfg


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_tls_without_its_ca_is_refused_at_boot_naming_the_file():
    node, cfg = _node("noca", MQTT)
    e = raises(ValueError, Net, node, cfg)
    assert "tls needs the broker's CA" in str(e) and node.root + "ca.der" in str(e), e


def test_a_ca_file_that_is_not_a_certificate_is_refused_naming_it():
    node, cfg = _node("badca", MQTT)
    for bad in (b"-----BEGIN CERTIFICATE-----\n", CA[:-9], CA + b"\x30", b"\x30\x82\x00"):
        _write(node.root + "ca.der", bad)
        e = raises(ValueError, Net, node, cfg)
        assert "is not a DER certificate" in str(e) and node.root + "ca.der" in str(e), e
    os.remove(node.root + "ca.der")


def test_the_ca_file_is_the_config_s_ca_key_beside_the_node_s_files():
    m = dict(MQTT)
    m["ca"] = "broker-ca.der"
    node, cfg = _node("named", m)
    e = raises(ValueError, Net, node, cfg)
    assert node.root + "broker-ca.der" in str(e), e


def test_the_context_verifies_the_broker():
    import ssl

    path = fresh("ctx.der")
    _write(path, CA + CA)  # two back to back: a rotation's old and new CA
    try:
        ctx = tls_context(path)
    finally:
        os.remove(path)
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_plain_mqtt_needs_no_ca():
    m = dict(MQTT)
    m["tls"] = False
    node, cfg = _node("plain", m)
    assert Net(node, cfg).mq._ssl is False


async def test_a_tls_link_waits_for_the_clock_before_its_first_handshake():
    # mbedTLS checks a certificate's dates against the clock: no handshake before it
    # is set (NTP, an RTC), and then at once.
    import asyncio

    node, cfg = _node("clock", MQTT)
    _write(node.root + "ca.der", CA)
    net = Net(node, cfg)
    os.remove(node.root + "ca.der")
    runs = []

    async def run():
        runs.append(clock.mono_ms())

    net.mq.run = run
    clock.get().valid = False
    t0 = clock.mono_ms()
    task = asyncio.create_task(net._mqtt(net.mq))
    for _ in range(50):
        await asyncio.sleep_ms(0)
    assert not runs, "a handshake before the clock was set"
    clock.set_time(1795624300, "ntp")
    for _ in range(50):
        if runs:
            break
        await asyncio.sleep_ms(0)
    assert runs and runs[0] - t0 >= 1000, runs
    await task
