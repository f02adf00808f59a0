# The node's own configuration (config.json on the node): every key with its default and
# range, checked once at boot; an error names the key. Site values and secrets live in the
# file, never in code. The checker itself (lamp.check) is shared: every section and the
# command arguments use it.
import json

from lamp.check import ConfigError, checked  # noqa: F401 -- ConfigError re-exported

# key: (default, lo, hi) for numbers (an int default wants an int), (default, allowed
# strings) for a choice, (default, str) for free text (None default: optional),
# (default, bool), (default, dict) for a section that its own module checks.
SPEC = {
    "node": ("sim-node", str),
    "site": ("sim", str),
    "failsafe_level": (100, 0, 100),
    "lat": (51.4826, -90, 90),
    "lon": (0.0077, -180, 180),
    "tz": ("GMT0BST,M3.5.0/1,M10.5.0", str),
    "log_level": ("info", ("debug", "info", "warn", "error")),
    "dimmer": (None, dict),
    "energy": (None, dict),
    "faults": (None, dict),
    "sensors": (None, dict),  # lamp.sensors.manager.SPEC
    "evse": (None, dict),  # lamp.evse.SPEC
    "tele_s": (60, 10, 86400),  # telemetry period: sensor windows, energy, EV
    "mqtt": (None, dict),  # lamp.net.link.SPEC; absent: the node runs offline
    "coap_port": (0, 0, 65535),  # the CoAP server's UDP port; 0: no server
    # The per-node command key, 64 hex digits (HMAC-SHA256, docs/commands.md); absent:
    # every command is refused. Set by provisioning; never logged.
    "key": (None, str),
    # NTP servers ("host" or "host:port"); none by default: provisioning sets them.
    "ntp": (None, list),
    # How the pole reaches the network: {"wlan": {"ssid", "password"}} or {"lan": true}
    # (docs/provisioning.md, docs/firmware.md "Network link"); set by provisioning. Absent:
    # the node does not bring a link up (the sim on its host's network). _network checks it.
    "network": (None, dict),
    # An updated slot on trial (docs/ota.md) is confirmed once the node has been healthy
    # this long without a break, and rolled back if it is not within ota_trial_s.
    "ota_health_s": (60, 1, 3600),
    "ota_trial_s": (600, 10, 86400),
    # The fleet's OTA public key: the RSA-3072 modulus as ota-public.json's "n" (768
    # lowercase hex digits); absent: every update is refused (docs/ota.md, "Delivery").
    "ota_key": (None, str),
}
_KEY_HEX = 768


def _network(net, node):
    # {"wlan": {"ssid", "password"}} or {"lan": true}: what the port's driver takes
    # without truncating it (network_wlan.c copies at most 32 and 64 bytes, silently),
    # and a node id that can be the DHCP host name (RFC 1123 label, network.hostname()
    # takes at most 32 characters).
    if len(net) != 1 or not ("wlan" in net or net.get("lan") is True):
        raise ConfigError('config: network: expected {"wlan": {...}} or {"lan": true}')
    w = net.get("wlan")
    if w is not None:
        if not isinstance(w, dict):
            raise ConfigError("config: network: wlan: expected an object")
        for k in w:
            if k not in ("ssid", "password"):
                raise ConfigError("config: network: wlan: %s: unknown key" % k)
        ssid, pw = w.get("ssid"), w.get("password", "")
        if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
            raise ConfigError("config: network: wlan: ssid: expected 1..32 bytes of text")
        if not isinstance(pw, str) or (pw and not 8 <= len(pw) <= 64):
            # Never the value itself: it is a secret.
            raise ConfigError(
                "config: network: wlan: password: expected 8..63 characters or 64 hex digits"
                " (empty: an open network)"
            )
    ok = 0 < len(node) <= 32 and node[0] != "-" and node[-1] != "-"
    if not ok or any(not ("a" <= c.lower() <= "z" or "0" <= c <= "9" or c == "-") for c in node):
        raise ConfigError(
            "config: node: %r cannot be the DHCP host name (network): 1..32 letters,"
            " digits and inner hyphens" % node
        )


def build(values):
    cfg = checked("config", SPEC, values)
    if cfg["network"] is not None:
        _network(cfg["network"], cfg["node"])
    k = cfg["ota_key"]
    if k is not None and (len(k) != _KEY_HEX or any(c not in "0123456789abcdef" for c in k)):
        raise ConfigError(
            "config: ota_key: expected %d lowercase hex digits (ota-public.json's n)" % _KEY_HEX
        )
    return cfg


def load(path=None):
    if path is None:
        return build({})
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError("config %s: cannot read: %s" % (path, e))
    except ValueError as e:
        raise ConfigError("config %s: not valid JSON: %s" % (path, e))
    return build(data)
