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
    # An updated slot on trial (docs/ota.md) is confirmed once the node has been healthy
    # this long without a break, and rolled back if it is not within ota_trial_s.
    # How the pole reaches the network: {"wlan": {"ssid", "password"}} or {"lan": true}
    # (docs/provisioning.md); set by provisioning. Absent on the sim.
    "network": (None, dict),
    "ota_health_s": (60, 1, 3600),
    "ota_trial_s": (600, 10, 86400),
    # The fleet's OTA public key: the RSA-3072 modulus as ota-public.json's "n" (768
    # lowercase hex digits); absent: every update is refused (docs/ota.md, "Delivery").
    "ota_key": (None, str),
}
_KEY_HEX = 768


def build(values):
    cfg = checked("config", SPEC, values)
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
