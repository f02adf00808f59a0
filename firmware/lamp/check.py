# The one checker for settings and arguments: defaults overlaid with the given values,
# each checked once against its spec, an error naming the key (lamp.config holds the
# node's own spec; the dimmer, energy, faults, sensors, EV and MQTT sections and the
# command arguments have theirs). Small on purpose: commands load it for each command.
#
# key: (default, lo, hi) for numbers (an int default wants an int), (default, allowed
# strings) for a choice, (default, str) for free text (None default: optional),
# (default, bool), (default, dict) for a section that its own module checks, (default,
# list) for a list of strings.


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
