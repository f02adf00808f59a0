# The node's own configuration (config.json on the node): every key with its default and
# range, checked once at boot; an error names the key. Site values and secrets live in the
# file, never in code.
import json

# key: (kind, default, lo, hi) -- lo/hi bound numbers, or list the allowed strings.
SPEC = {
    "node": ("str", "sim-node", None, None),
    "site": ("str", "sim", None, None),
    "failsafe_level": ("int", 100, 0, 100),
    "lat": ("num", 51.4826, -90, 90),
    "lon": ("num", 0.0077, -180, 180),
    "tz": ("str", "GMT0BST,M3.5.0/1,M10.5.0", None, None),
    "log_level": ("str", "info", ("debug", "info", "warn", "error"), None),
}


class ConfigError(ValueError):
    pass


def _check(key, value):
    kind, _default, lo, hi = SPEC[key]
    if kind == "str":
        ok = isinstance(value, str) and value != ""
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError("config: %s: expected %s, got %r" % (key, kind, value))
    if isinstance(lo, tuple):
        if value not in lo:
            raise ConfigError("config: %s: must be one of %s" % (key, "/".join(lo)))
    elif lo is not None and not lo <= value <= hi:
        raise ConfigError("config: %s: %r outside %r..%r" % (key, value, lo, hi))


def build(values):
    # Defaults overlaid with `values`; unknown keys and bad values are errors.
    if not isinstance(values, dict):
        raise ConfigError("config: not a JSON object")
    for key in values:
        if key not in SPEC:
            raise ConfigError("config: %s: unknown key" % key)
    cfg = {}
    for key in SPEC:
        value = values.get(key, SPEC[key][1])
        _check(key, value)
        cfg[key] = value
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
