# A model of the ESP32 port's `network` module for the sim board (issue 14): the names,
# constants and values of micropython-esp32-stubs (tests/test_netif_contract.py holds them
# equal), and WLAN(STA_IF) and LAN(...) with the methods lamp.hal uses, each returning
# what ports/esp32/network_wlan.c and network_lan.c return. Loaded only when a config
# names a network. What the air and the wire do comes from a scenario (`air`): the AP's
# SSID and key (None: any), whether it is there, how long association and DHCP take, and
# outages; in node time (lamp.clock), so an outage of hours passes at warp in seconds.
# Scenario: LANTERNA_SIM_NET, a JSON object or a file holding one (docs/firmware.md):
#   {"ssid": "pole-net", "password": "...", "ap": true, "assoc_s": 2, "dhcp_s": 3,
#    "scan_s": 3, "down": [[from_s, for_s], ...]}   (times: node seconds since boot)
from lamp import clock

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
ETH_INITIALIZED = 0
ETH_STARTED = 1
ETH_STOPPED = 2
ETH_CONNECTED = 3
ETH_DISCONNECTED = 4
ETH_GOT_IP = 5
PHY_LAN8710 = 0
PHY_LAN8720 = 1
PHY_IP101 = 2
PHY_RTL8201 = 3
PHY_DP83848 = 4
PHY_KSZ8041 = 5
PHY_KSZ8081 = 6
_HOSTNAME_MAX = 32  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN (extmod/modnetwork.h)
_WIFI_REASON_ASSOC_LEAVE = 8  # after disconnect(): status() says STAT_IDLE
_ADDR = ("10.0.%d.%d", "255.255.0.0", "10.0.0.1", "10.0.0.1")


class Air:
    # The scenario; tests change the attributes as they go (ap, down, dhcp_ms, ...).
    def __init__(self, s=None):
        s = s or {}
        self.ssid = s.get("ssid")  # None: whatever the node asks for
        self.password = s.get("password")
        self.ap = s.get("ap", True)  # the AP (or the cable) is there at all
        self.assoc_ms = int(s.get("assoc_s", 1) * 1000)
        self.dhcp_ms = int(s.get("dhcp_s", 1) * 1000)
        self.scan_ms = int(s.get("scan_s", 3) * 1000)
        self.rssi = s.get("rssi", -61)
        self.down = [(int(a * 1000), int((a + b) * 1000)) for a, b in s.get("down", ())]
        self.connects = 0  # WLAN.connect() calls, with their node ms in `log`
        self.log = []  # type: list

    def there(self, t):
        if not self.ap:
            return False
        for a, b in self.down:
            if a <= t < b:
                return False
        return True

    def lost_at(self, since, t):
        # The first node ms in [since, t] at which the AP was gone, else None.
        if not self.ap:
            return since
        for a, b in self.down:
            if a <= t and b > since:
                return max(a, since)
        return None


air = Air()
_hostname = "mpy-esp32"  # MICROPY_PY_NETWORK_HOSTNAME_DEFAULT on the ESP32 port


def load(text):
    # The scenario from LANTERNA_SIM_NET (JSON text, or the path of a file holding it).
    global air
    import json

    if not text.lstrip().startswith("{"):
        with open(text) as f:
            text = f.read()
    air = Air(json.loads(text))


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    if len(name) > _HOSTNAME_MAX:
        raise ValueError()  # mod_network_hostname raises it with no message
    _hostname = name
    return None


class WLAN:
    def __init__(self, interface_id=STA_IF):
        if interface_id != STA_IF:
            raise ValueError("the sim models the station only")
        self._active = False
        self._start = None  # node ms of the last connect(); None: not requested
        self._ok = False
        self._reason = 0  # wifi_sta_disconn_reason: 0 none yet
        self._reconnects = -1
        self.hostname_at_connect = None

    def active(self, is_active=None):
        if is_active is not None:
            self._active = bool(is_active)
            if not self._active:
                self._start = None
        return self._active

    def config(self, *args, **kw):
        if args:
            if args[0] == "reconnects":
                return self._reconnects
            if args[0] == "hostname":
                return _hostname
            raise ValueError("unknown config param")
        if "reconnects" in kw:
            self._reconnects = kw["reconnects"]
        return None

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("Wifi Not Started")  # esp_exceptions(ESP_ERR_WIFI_NOT_STARTED)
        if self._start is not None and self._state()[0] == STAT_CONNECTING:
            raise OSError("Wifi Internal Error")  # esp_wifi_connect() while connecting
        self._ssid, self._key = ssid, key
        self._start = clock.mono_ms()
        self.hostname_at_connect = _hostname
        air.connects += 1
        air.log.append(self._start)

    def disconnect(self):
        if self._start is not None:
            self._reason = _WIFI_REASON_ASSOC_LEAVE
        self._start = None

    def _state(self):
        # -> (status code, connected) as the driver's event handlers would have left them.
        t0 = self._start
        if t0 is None:
            r = self._reason
            return (STAT_IDLE if r in (0, _WIFI_REASON_ASSOC_LEAVE) else r), False
        t = clock.mono_ms()
        if not air.there(t0) or (air.ssid is not None and air.ssid != self._ssid):
            # The scan finds no AP of that name; one try (reconnects=0), then it stops.
            return (STAT_CONNECTING if t - t0 < air.scan_ms else STAT_NO_AP_FOUND), False
        if air.password is not None and air.password != self._key:
            return (STAT_CONNECTING if t - t0 < air.assoc_ms else STAT_WRONG_PASSWORD), False
        lost = air.lost_at(t0, t)
        if lost is not None:
            return STAT_BEACON_TIMEOUT, False  # the AP went away (or was never reached)
        if t - t0 < air.assoc_ms + air.dhcp_ms:
            return STAT_CONNECTING, False  # associated, DHCP under way: not connected yet
        return STAT_GOT_IP, True

    def status(self, param=None):
        if param is None:
            code, _ = self._state()
            self._fix(code)
            return code
        if param == "rssi":
            if not self._state()[1]:
                raise OSError("Wifi Not Connected")  # esp_wifi_sta_get_ap_info fails
            return air.rssi
        raise ValueError("unknown status param")

    def _fix(self, code):
        # A try that ended stays ended: the driver does not retry (reconnects=0).
        if code not in (STAT_CONNECTING, STAT_GOT_IP) and self._start is not None:
            if self._reconnects == 0:
                self._start = None
                self._reason = code

    def isconnected(self):
        code, ok = self._state()
        self._fix(code)
        return ok

    def ifconfig(self):
        if not self._state()[1]:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        h = sum(_hostname.encode()) & 0xFFFF
        return (_ADDR[0] % (h >> 8, h & 0xFF or 1),) + _ADDR[1:]


class LAN:
    # network_lan.c: one interface (a static object); status() is the last ETH event.
    def __init__(self, id=None, **kw):
        if id not in (None, 0):
            raise ValueError("invalid LAN interface identifier")
        if "phy_addr" not in kw or "phy_type" not in kw:
            raise TypeError("phy_addr and phy_type are required")
        if not 0 <= kw["phy_addr"] <= 0x1F:
            raise ValueError("invalid phy address")
        if kw.get("mdc") is None or kw.get("mdio") is None:
            raise ValueError("mdc and mdio must be specified")
        self.args = kw  # what the board file passed: tests check it
        self._active = False
        self._start = None
        self.hostname_at_start = None

    def active(self, is_active=None):
        if is_active is not None:
            on = bool(is_active)
            if on and not self._active:
                self.hostname_at_start = _hostname
                self._start = clock.mono_ms()
            self._active = on
        return self._active

    def _state(self):
        if not self._active:
            return ETH_STOPPED if self._start is not None else ETH_INITIALIZED, False
        t = clock.mono_ms()
        if not air.there(t):
            return ETH_DISCONNECTED, False
        # Carrier back (or first): DHCP from the moment the cable was last up.
        back = self._start or 0
        for _a, b in air.down:
            if back < b <= t:
                back = b
        if t - back < air.dhcp_ms:
            return ETH_CONNECTED, False
        return ETH_GOT_IP, True

    def status(self):
        return self._state()[0]

    def isconnected(self):
        return self._state()[1]

    def ifconfig(self):
        if not self._state()[1]:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("10.0.1.2",) + _ADDR[1:]

    def config(self, *args, **kw):
        return None
