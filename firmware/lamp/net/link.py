# The connected node: MQTT (status, state, telemetry, events, commands and their acks)
# and CoAP (direct reads; authenticated PUT /dim and /schedule), both behind the one
# command handler (lamp.cmd.handler). docs/protocol.md owns the topics and payloads.
# Nothing here is awaited by the lighting loop: a network outage never delays dimming,
# and never reboots the node (the outbox keeps what it can and counts what it drops).
import json

from lamp import VERSION, clock, log, unload
from lamp import numbers as N

# mqtt section of the node config; host and credentials come from provisioning (no
# defaults: an empty value is refused when the section is present).
SPEC = {
    "host": ("", str),
    "port": (1883, 1, 65535),
    "user": ("", str),
    "password": ("", str),
    "prefix": (N.PREFIX, str),
    "tls": (False, bool),
    # With tls: the file (beside config.json) holding the broker's CA as `lanterna
    # provision` writes it from `lanterna broker config --tls`: DER, one certificate or
    # several back to back (the old and the new CA while a rotation reaches the fleet).
    # DER, not PEM: the unix port's mbedTLS has no PEM parser, and DER is smaller.
    "ca": ("ca.der", str),
    "keepalive": (60, 10, 3600),
    "outbox_count": (64, 1, 1000),
    "outbox_bytes": (8192, 512, 65536),
}
# CoAP response codes (RFC 7252 sec. 12.1.2) this module answers with.
_CHANGED, _CONTENT = 0x44, 0x45
_BAD_REQUEST, _UNAUTHORIZED, _NOT_FOUND, _METHOD = 0x80, 0x81, 0x84, 0x85
_JSON = 50  # application/json (RFC 7252 sec. 12.3)
_GET, _PUT = 1, 3
RESOURCES = (
    ("/state", 'rt="lanterna.state";ct=50'),
    ("/sensors", 'rt="lanterna.sensors";ct=50'),
    ("/evse", 'rt="lanterna.evse";ct=50'),
    ("/dim", 'rt="lanterna.cmd.dim";ct=50'),
    ("/schedule", 'rt="lanterna.cmd.schedule";ct=50'),
)
# An ack error that means "who are you": 4.01 on CoAP; any other error is 4.00.
_AUTH_ERRORS = (N.E_BAD_MAC, N.E_REPLAY, N.E_WRONG_NODE)


def _dumps(obj):
    return json.dumps(obj)  # str: the MQTT client sends it as it is, no bytes copy


def parse_key(text):
    # The config's command key: 64 hex digits -> 32 bytes; ValueError names the key.
    import binascii

    if text is None:
        return None
    try:
        key = binascii.unhexlify(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("config: key: expected 64 hex digits")
    return key


def tls_context(path):
    # A verifying client context (CERT_REQUIRED: the port's client default is CERT_NONE)
    # with the broker's CA from `path`; ValueError names the file. Made once at boot
    # and kept: its parsed CA outlives the file's bytes, which go here.
    import ssl

    try:
        with open(path, "rb") as f:
            ca = f.read()
    except OSError:
        raise ValueError("config: mqtt: tls needs the broker's CA in %s (none there)" % path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # verify_mode is in the port's ssl (docs/library/ssl.rst), not in the stubs' SSLContext
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    i = 0
    try:
        while i < len(ca):
            # One DER certificate at a time (mbedTLS takes one DER per call and adds it
            # to the chain): a SEQUENCE whose length is in the 2-4 bytes after it.
            n = ca[i + 1]
            if ca[i] != 0x30 or not 0x81 <= n <= 0x83:
                raise ValueError
            end = i + 2 + (n & 0x7F) + int.from_bytes(ca[i + 2 : i + 2 + (n & 0x7F)], "big")
            ctx.load_verify_locations(cadata=ca[i:end])
            i = end
        if not i:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError("config: mqtt: ca: %s is not a DER certificate" % path)
    return ctx


class Net:
    def __init__(self, node, cfg, config_path=None):
        # Without a command key (config "key") every command is refused with bad_mac:
        # there is nothing to verify it against.
        self.node = node
        self.node_id = cfg["node"]
        self.key = parse_key(cfg["key"])
        self.config_path = config_path
        self.mq = None
        self.coap = None
        self.base = ""  # the topic prefix of this node, "prefix/site/node/"
        self.fetch = None  # lamp.ota.fetch.Fetch while an update downloads
        m = cfg["mqtt"]
        if m is not None:
            from lamp.check import checked  # at boot only: unloaded after

            m = checked("mqtt", SPEC, m)
            # TLS is verified or not used: no CA, no start (the error names the file).
            tls = tls_context(node.root + m["ca"]) if m["tls"] else False
            from lamp.net.mqtt import MQTTClient

            self.base = "%s/%s/%s/" % (m["prefix"], cfg["site"], cfg["node"])
            self.mq = MQTTClient(
                cfg["node"],
                m["host"],
                m["port"],
                m["user"],
                m["password"],
                m["keepalive"],
                tls,
                will=(self.base + N.STATUS, N.OFFLINE, 1, True),
                outbox_count=m["outbox_count"],
                outbox_bytes=m["outbox_bytes"],
                on_message=self._on_message,
                on_connect=self._on_connect,
            )
            self.mq.subscribe(self.base + N.CMD, 1)
            self.mq.subscribe(self.base + N.OTA_DATA, 1)  # chunks of an offered update
        if cfg["coap_port"]:
            from lamp.net.coap import CoapServer

            self.coap = CoapServer(self._coap, RESOURCES, cfg["coap_port"])

    # MQTT
    def _pub(self, leaf, payload, retain=False):
        if self.mq is not None:
            self.mq.publish(self.base + leaf, payload, 1, retain)

    def _on_connect(self):
        self._pub(N.STATUS, N.ONLINE, True)
        self.state()
        mq = self.mq
        if mq is not None and mq.untrusted is not None:
            # What the node refused while it could not say so: a broker at this address
            # whose certificate did not verify (another CA, another name).
            u, mq.untrusted = mq.untrusted, None
            b = "%s:%d" % (mq._host, mq._port)
            self.event("broker_untrusted", {"broker": b, "refused": u[0], "reason": u[1]})

    def _on_message(self, topic, payload):
        if topic == self.base + N.CMD:
            self._pub(N.ACK, _dumps(self.handle(payload)))
        elif topic == self.base + N.OTA_DATA and self.fetch is not None:
            self.fetch.data(payload)  # no download running: ignored

    def handle(self, raw):
        # One command: the handler (lamp.cmd.handler, with its counter on flash) and what
        # applies it (lamp.cmd.control) are loaded for it and dropped after.
        if self.key is None:
            return self._refused(N.E_BAD_MAC, "no command key on this node")
        if not raw or raw[0] != 0x7B and raw[:1] != "{":
            # Not even a JSON object: answered without loading the handler (a flood of
            # garbage on the cmd topic costs the node next to nothing).
            return self._refused(N.E_MALFORMED, "not a JSON object")
        from lamp.cmd.control import CONFIG_KEYS, Control
        from lamp.cmd.handler import Commands

        apply = Control(self.node, self.config_path).apply
        ack = Commands(
            self.node_id, self.key, self.node.root + "cmdctr", apply, CONFIG_KEYS
        ).handle(raw)
        del Commands, Control, apply
        unload("cmd")  # the whole package: handler, canon, args, control
        unload("check")  # the argument checker came with them
        unload("config")  # and config_set's
        return ack

    def _refused(self, error, detail):
        # An ack refused before the handler is loaded: the same fields as its own.
        return {
            "v": N.SCHEMA,
            "id": None,
            "node": self.node_id,
            "ok": False,
            "error": error,
            "detail": detail,
        }

    def state(self):
        self._pub(N.STATE, _dumps(self.payload()), True)

    def payload(self):
        # The state topic's payload (schema state): what the lamp does and why.
        node = self.node
        ov = node.arbiter.override
        plan = node.arbiter.plan
        return {
            "v": N.SCHEMA,
            "ts": clock.iso(),
            "level": node.dimmer.level,
            "mode": node.dimmer.reason,
            "schedule": plan.schedule.id if plan is not None else None,
            "override": None
            if ov is None
            else {"level": ov[0], "until": None if ov[1] == N.FOREVER else clock.iso(ov[1])},
            "fw": VERSION,
            "clock": clock.source() if clock.valid() else None,
            "faults": node.faults.status(),
        }

    def event(self, name, payload):
        d = {"v": N.SCHEMA, "ts": clock.iso(), "event": name}
        d.update(payload)
        self._pub(N.EVENT, _dumps(d))

    def tele(self, snap):
        snap["mqtt_dropped"] = self.mq.dropped if self.mq is not None else 0
        self._pub(N.TELE, _dumps(snap))

    # CoAP
    def _coap(self, method, path, payload, content_format, accept, query):
        node = self.node
        if path in ("/dim", "/schedule"):
            if method != _PUT:
                return _METHOD, b"", None
            ack = self._coap_command(path[1:], payload)
            if ack["ok"]:
                code = _CHANGED
            else:
                code = _UNAUTHORIZED if ack["error"] in _AUTH_ERRORS else _BAD_REQUEST
            return code, _dumps(ack), _JSON
        if method != _GET:
            return (_METHOD if path in ("/state", "/sensors", "/evse") else _NOT_FOUND), b"", None
        if path == "/state":
            body = self.payload()
        elif path == "/sensors":
            body = node.sensors.window(False) if node.sensors is not None else {}
        elif path == "/evse":
            body = node.evse.status() if node.evse is not None else None
        else:
            return _NOT_FOUND, b"", None
        return _CONTENT, _dumps({"v": N.SCHEMA, path[1:]: body}), _JSON

    def _coap_command(self, want, payload):
        # The body is a signed command envelope; its cmd must be the resource's.
        try:
            cmd = json.loads(payload).get("cmd")
        except (ValueError, AttributeError):
            cmd = None
        if cmd != want:
            return self._refused(N.E_MALFORMED, "cmd is not %s, as the resource" % want)
        ack = self.handle(payload)
        self._pub(N.ACK, _dumps(ack))  # the controller sees CoAP commands too
        return ack

    def start(self, guard):
        # guard(name, fn): the app's restart-on-failure wrapper for background tasks.
        import asyncio

        if self.mq is not None:
            asyncio.create_task(guard("mqtt", self._mqtt, self.mq))
        if self.coap is not None:
            asyncio.create_task(guard("coap", self.coap.run))

    async def _mqtt(self, mq):
        # A certificate is checked against the wall clock (mbedTLS compares its dates
        # with the RTC): before NTP or an RTC has set the clock a verified handshake can
        # only fail, so the link waits for it (the sim's clock is valid from the start).
        if mq._ssl and not clock.valid():
            log.info("mqtt", "TLS: waiting for the clock to check the broker's certificate")
            while not clock.valid():
                await clock.sleep_ms(1000)
        await mq.run()
