# Every command's arguments as one table (docs/commands.md): each argument's default and
# range in lamp.check's form. The node checks a command against it (clean()), and the
# controller's CLI reads its option ranges from it (CPython imports lamp modules), so a
# range is written once. Loaded with the handler for one command and dropped after it.
from lamp.check import ConfigError, checked
from lamp.numbers import CONFIG_SET, DIM, IDENTIFY, OTA, REBOOT, SCHEDULE

# One name for the whole table: every name a module defines is interned for good when it
# loads (MicroPython's qstrs are never freed), even in a module dropped after use.
ARGS = {  # type: dict
    # a level (null: back to the schedule, optionally fading) held until_s seconds (0:
    # until the next dim)
    DIM: {"fade_s": (0, 0, 3600), "level": (0, 0, 100), "until_s": (0, 0, 604800)},
    # only its shape here: lamp.schedule_parse validates the schedule itself
    SCHEDULE: {"schedule": (None, dict)},
    # key: one the node lets config_set change (lamp.cmd.control); value: any JSON that
    # lamp.config then checks as at boot
    CONFIG_SET: {"key": ("", str)},
    REBOOT: {"delay_s": (0, 0, 60)},
    IDENTIFY: {"seconds": (10, 1, 600)},
    # the offer of a bundle (docs/ota.md, "Delivery"); lamp.ota checks the bundle
    OTA: {
        "version": ("", str),
        "bundle": ("", str),
        "size": (0, 1, 4000000),  # bytes of the bundle
        "chunk": (1024, 256, 4096),  # bytes per ota/data message
    },
}
# Arguments a command cannot go without, refused before any other (the table's default
# is only a type's); a schedule of null is missing too.
REQUIRED = {
    DIM: ("level",),
    CONFIG_SET: ("value",),
    OTA: ("version", "bundle", "size"),
}
_HEX = "0123456789abcdef"


def clean(cmd, args, config_keys):
    # -> the arguments with their defaults; ConfigError (-> bad_args) names the key;
    # KeyError for a command the table has no row for.
    spec = ARGS[cmd]
    for k in REQUIRED.get(cmd, ()):
        if k not in args:
            raise ConfigError("%s: %s: missing" % (cmd, k))
    a = dict(args)
    if cmd == DIM:
        level = a.pop("level")
        if a.get("until_s", 0) is None:
            del a["until_s"]
        if level is None:  # back to the schedule: a fade, nothing to hold
            spec = {"fade_s": spec["fade_s"]}
        else:
            a["level"] = level
        out = checked(cmd, spec, a)
        out["level"] = level
        return out
    if cmd == CONFIG_SET:
        value = a.pop("value")
        out = checked(cmd, {"key": ("", config_keys)}, a)
        out["value"] = value
        return out
    out = checked(cmd, spec, a)
    if cmd == SCHEDULE and out["schedule"] is None:
        raise ConfigError("schedule: schedule: missing")
    if cmd == OTA:
        v = out["version"].split(".")
        if len(v) != 3 or any(not x.isdigit() or x[0] == "0" and len(x) > 1 for x in v):
            raise ConfigError("ota: version: expected X.Y.Z")
        if len(out["bundle"]) != 64 or any(c not in _HEX for c in out["bundle"]):
            raise ConfigError("ota: bundle: expected 64 lowercase hex digits")
    return out
