# The pole's network link (issue 14, docs/firmware.md "Network link"): the WLAN station
# or the Ethernet PHY that config "network" names, brought up and kept up by one asyncio
# task. The lighting loop never awaits it, and nothing here resets the node: a link that
# is down for a night leaves the lamp on its schedule and the link retrying.
# Retries: exponential backoff with full jitter (a random wait in [0, min(cap, base*2^n))),
# and a random delay before the first try, because a whole feeder powers up (or loses its
# AP) at once: Tasmota moved to a random 15-45 s retry after ~15 devices retried in
# lockstep. The port's driver makes one try per connect() (hal: reconnects=0), so every
# retry is ours. Times are node time (lamp.clock): at warp the sim runs an outage of
# hours in seconds. The interface itself is the hal's (stock network API on the pole,
# lamp.hal.simnet on the sim); status codes are the port's, named here.
import os

from lamp import clock, log

try:
    import asyncio

    from micropython import const
except ImportError:  # CPython: mypy, the controller's docs
    import asyncio

    def const(x):  # type: ignore[misc]
        return x


_FIRST_MS = const(10000)  # the first try within [0, 10 s) of boot
_BASE_MS = const(30000)  # first retry window; doubles per failed try ...
_CAP_MS = const(300000)  # ... up to 5 min: a link back after an outage is found in that
_JOIN_MS = const(45000)  # one try: association and DHCP (a slow DHCP server is waited for)
_POLL_MS = const(1000)  # status while joining, up, or waiting to retry
_GOT_IP = const(1010)  # network.STAT_GOT_IP
_ETH_GOT_IP = const(5)  # network.ETH_GOT_IP

# The port's status codes (ports/esp32/network_wlan.c status(), network_lan.c; the values
# as micropython-esp32-stubs has them, tests/test_netif_contract.py holds them equal):
# each reported by its constant's name, lower case, without STAT_; Ethernet's with eth_.
# A WIFI_REASON the port passes through unnamed is reported as reason_<n>.
_NAMES = {
    1000: "idle",
    1001: "connecting",
    1010: "got_ip",
    200: "beacon_timeout",
    201: "no_ap_found",
    202: "wrong_password",  # also WIFI_REASON_CONNECTION_FAIL (network_wlan.c)
    203: "connect_fail",  # = STAT_ASSOC_FAIL
    204: "handshake_timeout",
    210: "no_ap_found_w_compatible_security",
    211: "no_ap_found_in_authmode_threshold",
    212: "no_ap_found_in_rssi_threshold",
    0: "eth_initialized",
    1: "eth_started",
    2: "eth_stopped",
    3: "eth_connected",  # the cable is up, no address yet
    4: "eth_disconnected",  # no carrier
    5: "got_ip",
}


def status_name(code):
    if code is None:
        return "down"
    n = _NAMES.get(code)
    return n if n is not None else "reason_%d" % code


def jitter_ms(n):
    # A uniform wait in [0, n) ms. os.urandom: no seed shared by nodes booted together.
    r = os.urandom(3)
    return (r[0] << 16 | r[1] << 8 | r[2]) % n


class Netif:
    def __init__(self, hal, net, node_id, on_change):
        # net: config "network" as lamp.config checked it; on_change(payload) gets each
        # link event (the app publishes it and tells the MQTT client).
        b = hal.board
        self.kind = "lan" if net.get("lan") else "wlan"
        if b["chip"] != "sim" and b["network"] != self.kind:
            raise ValueError(
                'config: network: %s, but board %s has %s (its "network")'
                % (self.kind, b["name"], b["network"])
            )
        w = net.get("wlan") or {}
        self._ssid = w.get("ssid")
        self._key = w.get("password")
        self._hal = hal
        self._name = node_id
        self._on = on_change
        self.up = asyncio.Event()  # set while the link has an address (lamp.net.mqtt waits)
        self.status = "down"  # the port's last status, named
        self.tries = 0  # tries since the link was last up
        self.ups = 0  # times the link came up since boot
        self._told = None  # the last failure reported: one event per new reason
        self._down = clock.mono_ms()  # node ms since when the link is down
        self._why = None  # why the link last went down (told again when it is back)

    def report(self):
        # Telemetry's "link" (docs/protocol.md): what the link does now.
        return {"if": self.kind, "status": self.status, "up": self.up.is_set(), "tries": self.tries}

    def rssi(self):
        return self._hal.net_rssi() if self.up.is_set() else None

    def _event(self, up, **kw):
        d = {"if": self.kind, "up": up, "status": self.status, "tries": self.tries}
        d.update(kw)
        try:
            self._on(d)
        except Exception as e:  # noqa: BLE001 -- a report must not stop the link
            log.error("link", "report: %r", e)

    def _poll(self):
        # -> True when the interface has an address; keeps self.status current.
        hal = self._hal
        up = hal.net_up()
        code = hal.net_status()
        self.status = status_name(code)
        if up and code not in (_GOT_IP, _ETH_GOT_IP):
            self.status = "got_ip"  # isconnected() is the port's word for it
        return up

    async def _wait(self, ms, want):
        # Poll for up to `ms` (None: for ever) until _poll() == want; -> whether it came.
        left = ms
        while True:
            if self._poll() == want:
                return True
            if left is not None and left <= 0:
                return False
            step = _POLL_MS if left is None else min(_POLL_MS, left)
            await clock.sleep_ms(step)
            if left is not None:
                left -= step

    async def run(self):
        hal = self._hal
        await clock.sleep_ms(jitter_ms(_FIRST_MS))
        hal.net_open(self.kind, self._name)
        log.info("link", "%s started as %s", self.kind, self._name)
        while True:
            if not self._poll():
                self.tries += 1
                try:
                    hal.net_connect(self._ssid, self._key)  # the key is never logged
                    ok = await self._wait(_JOIN_MS, True)
                except OSError as e:  # the driver refused the call: a failed try
                    log.warn("link", "connect: %r", e)
                    ok = False
                if not ok:
                    if self.status != self._told:
                        self._told = self.status
                        self._event(False)
                    win = min(_CAP_MS, _BASE_MS << min(self.tries - 1, 8))
                    ms = jitter_ms(win)
                    log.warn(
                        "link",
                        "%s: %s; try %d in %d ms",
                        self.kind,
                        self.status,
                        self.tries + 1,
                        ms,
                    )
                    # A LAN whose cable comes back gets its address meanwhile by itself.
                    await self._wait(ms, True)
                    continue
            self.ups += 1
            down_s = (clock.mono_ms() - self._down) // 1000
            self.up.set()
            # The outage whole in one event: a long one's own events may have left the
            # bounded MQTT outbox (oldest dropped) before the broker was back.
            self._event(True, ip=hal.net_ip(), rssi=hal.net_rssi(), down_s=down_s, lost=self._why)
            log.info("link", "%s %s after %d tries", self.kind, self.status, self.tries)
            self.tries = 0
            self._told = None
            await self._wait(None, False)
            self.up.clear()
            self._down = clock.mono_ms()
            self._told = self._why = self.status
            self._event(False)
            log.warn("link", "%s down: %s", self.kind, self.status)
            # Lost with the rest of the feeder (the AP rebooted): the first retry jittered.
            self.tries = 0
            await self._wait(jitter_ms(_BASE_MS), True)
