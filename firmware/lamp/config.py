# The node's own configuration (config.json on the node): every key with its default and
# range, checked once at boot; an error names the key. Site values and secrets live in the
# file, never in code. `checked()` is the one checker: the dimmer, energy and fault
# sections use it for their own keys.
import json

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
    "mqtt": (None, dict),  # lamp.net.SPEC; absent: the node runs offline
    "coap_port": (0, 0, 65535),  # the CoAP server's UDP port; 0: no server
    # The per-node command key, 64 hex digits (HMAC-SHA256, docs/commands.md); absent:
    # every command is refused. Set by provisioning; never logged.
    "key": (None, str),
    # NTP servers ("host" or "host:port"); none by default: provisioning sets them.
    "ntp": (None, list),
}


class ConfigError(ValueError):
    pass


def checked(tag, spec, values):
    # Defaults overlaid with `values`, each checked once; an error names the key.
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError("%s: not a JSON object" % tag)
    for key in values:
        if key not in spec:
            raise ConfigError("%s: %s: unknown key" % (tag, key))
    cfg = {}
    for key, sp in spec.items():
        v = values.get(key, sp[0])
        kind = sp[1]
        if kind is bool:
            if not isinstance(v, bool):
                raise ConfigError("%s: %s: expected true or false, got %r" % (tag, key, v))
        elif kind is str:
            if v is None and sp[0] is None:
                pass  # optional: absent
            elif not isinstance(v, str) or not v:
                raise ConfigError("%s: %s: expected a non-empty string, got %r" % (tag, key, v))
        elif kind is dict:
            if v is not None and not isinstance(v, dict):
                raise ConfigError("%s: %s: expected an object, got %r" % (tag, key, v))
        elif kind is list:
            if v is not None and not (
                isinstance(v, list) and all(isinstance(x, str) and x for x in v)
            ):
                raise ConfigError("%s: %s: expected a list of strings, got %r" % (tag, key, v))
        elif isinstance(kind, tuple):
            if v not in kind:
                raise ConfigError("%s: %s: must be one of %s" % (tag, key, "/".join(kind)))
        elif (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or (isinstance(sp[0], int) and not isinstance(v, int))
            or not kind <= v <= sp[2]
        ):
            raise ConfigError("%s: %s: %r not a number in %r..%r" % (tag, key, v, kind, sp[2]))
        cfg[key] = v
    return cfg


def build(values):
    return checked("config", SPEC, values)


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
