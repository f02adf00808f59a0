# Schedule validation and compilation (docs/schedules.md): every error names the path of
# the offending value. Loaded only while a schedule is being installed (lamp.schedule
# unloads it afterwards), so its code costs no RAM the rest of the time.
from lamp.schedule import ANCHORS, MAX_OFFSET_MIN, VERSION, WEEKDAYS, ScheduleError

_CLOCK = 0


def _fail(path, msg):
    raise ScheduleError("schedule: %s: %s" % (path, msg))


def _int(path, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(path, "expected an integer, got %r" % (v,))
    if not lo <= v <= hi:
        _fail(path, "%d outside %d..%d" % (v, lo, hi))
    return v


def _num(path, v, lo):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo:
        _fail(path, "expected a number >= %d, got %r" % (lo, v))
    return v


def _obj(path, v, allowed, required):
    if not isinstance(v, dict):
        _fail(path, "expected an object, got %r" % (v,))
    for k in v:
        if k not in allowed:
            _fail("%s.%s" % (path, k) if path else k, "unknown key")
    for k in required:
        if k not in v:
            _fail("%s.%s" % (path, k) if path else k, "missing")
    return v


def _hhmm(path, s):
    # "HH:MM" -> minutes after local midnight
    if isinstance(s, str) and len(s) == 5 and s[2] == ":":
        hh, mm = s[:2], s[3:]
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            return int(hh) * 60 + int(mm)
    _fail(path, "expected HH:MM or one of sunset/sunrise/dusk/dawn, got %r" % (s,))


_MDAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(path, s):
    # "YYYY-MM-DD" -> YYYYMMDD; yearless "--MM-DD" (as TALQ, uCIFI and FIWARE write it)
    # -> MMDD. Yearless 29 February is allowed: it matches in leap years only.
    if isinstance(s, str) and len(s) == 7 and s[:2] == "--" and s[4] == "-":
        y, m, d = "0", s[2:4], s[5:]
    elif isinstance(s, str) and len(s) == 10 and s[4] == "-" and s[7] == "-":
        y, m, d = s[:4], s[5:7], s[8:]
    else:
        y = m = d = ""
    if y.isdigit() and m.isdigit() and d.isdigit():
        yi, mi, di = int(y), int(m), int(d)
        if 1 <= mi <= 12 and 1 <= di <= _MDAYS[mi - 1]:
            leap = yi % 4 == 0 and yi % 100 != 0 or yi % 400 == 0
            if yi and mi == 2 and di == 29 and not leap:
                _fail(path, "%s is not a date" % s)
            return yi * 10000 + mi * 100 + di
    _fail(path, "expected YYYY-MM-DD or --MM-DD, got %r" % (s,))


def _steps(path, steps):
    if not isinstance(steps, list) or not steps:
        _fail(path, "a profile needs at least one step")
    out = []
    for i, st in enumerate(steps):
        p = "%s[%d]" % (path, i)
        _obj(p, st, ("at", "offset", "level"), ("at", "level"))
        level = _int(p + ".level", st["level"], 0, 100)
        at = st["at"]
        if at in ANCHORS[1:]:
            kind = ANCHORS.index(at)
            val = _int(p + ".offset", st.get("offset", 0), -MAX_OFFSET_MIN, MAX_OFFSET_MIN)
        else:
            if "offset" in st:
                _fail(p + ".offset", "only sun-relative steps take an offset")
            kind, val = _CLOCK, _hhmm(p + ".at", at)
        out.append((kind, val, level))
    return tuple(out)


def _entry(path, e, profiles):
    _obj(path, e, ("profile", "weekdays", "dates", "from", "to"), ("profile",))
    if e["profile"] not in profiles:
        _fail(path + ".profile", "no profile named %r" % (e["profile"],))
    mask = 0
    if "weekdays" in e:
        wds = e["weekdays"]
        if not isinstance(wds, list) or not wds:
            _fail(path + ".weekdays", 'expected a list like ["sat", "sun"]')
        for i, w in enumerate(wds):
            if w not in WEEKDAYS:
                _fail("%s.weekdays[%d]" % (path, i), "expected one of %s" % "/".join(WEEKDAYS))
            mask |= 1 << WEEKDAYS.index(w)
    dates = None
    if "dates" in e:
        if not isinstance(e["dates"], list) or not e["dates"]:
            _fail(path + ".dates", "expected a non-empty list of dates")
        dates = tuple(_date("%s.dates[%d]" % (path, i), d) for i, d in enumerate(e["dates"]))
    rng = None
    if ("from" in e) != ("to" in e):
        _fail(path, "a date range needs both from and to")
    if "from" in e:
        lo, hi = _date(path + ".from", e["from"]), _date(path + ".to", e["to"])
        if (lo > 9999) != (hi > 9999):
            _fail(path + ".to", "from and to must both have a year or both be yearless")
        if lo > 9999 and lo > hi:
            _fail(path + ".to", "range ends before it starts")
        rng = (lo, hi)  # yearless ranges may wrap the year end (--12-20 .. --01-06)
    return (e["profile"], mask, dates, rng)


def _section(path, v, spec):
    # spec: key -> (lo, hi or None for a number >= lo)
    _obj(path, v, spec, spec)
    return {
        k: _int(path + "." + k, v[k], lo, hi) if hi is not None else _num(path + "." + k, v[k], lo)
        for k, (lo, hi) in spec.items()
    }


def compile_schedule(obj):
    # -> the arguments of lamp.schedule.Schedule
    _obj(
        "",
        obj,
        ("version", "id", "profiles", "calendar", "motion", "photocell"),
        ("version", "id", "profiles", "calendar"),
    )
    if obj["version"] != VERSION:
        _fail("version", "expected %d, got %r" % (VERSION, obj["version"]))
    if not isinstance(obj["id"], str) or not obj["id"]:
        _fail("id", "expected a non-empty string")
    if not isinstance(obj["profiles"], dict) or not obj["profiles"]:
        _fail("profiles", "expected an object with at least one profile")
    profiles = {}
    for name in obj["profiles"]:
        profiles[name] = _steps("profiles.%s" % name, obj["profiles"][name])
    cal = obj["calendar"]
    if not isinstance(cal, list) or not cal:
        _fail("calendar", "expected a non-empty list")
    entries = tuple(_entry("calendar[%d]" % i, e, profiles) for i, e in enumerate(cal))
    last = entries[-1]
    if last[1] or last[2] or last[3]:
        _fail(
            "calendar[%d]" % (len(cal) - 1), "the last entry must be the default (a profile only)"
        )
    motion = None
    if "motion" in obj:
        motion = _section(
            "motion", obj["motion"], {"level": (0, 100), "hold_s": (1, 3600), "fade_s": (0, 600)}
        )
    photo = None
    if "photocell" in obj:
        photo = _section(
            "photocell",
            obj["photocell"],
            {"on_lux": (0, None), "off_lux": (0, None), "level": (0, 100)},
        )
        if photo["off_lux"] <= photo["on_lux"]:
            _fail("photocell.off_lux", "must be above on_lux (hysteresis)")
    return obj["id"], profiles, entries, motion, photo
