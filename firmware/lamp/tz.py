# Local time from POSIX TZ strings ("GMT0BST,M3.5.0/1,M10.5.0"): the node stores one
# string per site instead of a zone database (no room for tzdata on the pole). Format:
# POSIX.1-2017 XBD sec. 8.3 (TZ), with the RFC 8536 sec. 3.3.1 extension that a rule
# time may be negative or above 24 h (-167..167). Integers only: no floats on the node.
# Also the calendar arithmetic (days <-> civil dates) the clock re-exports; it is pure
# so the controller runs the same code in CPython.
_DAY = 86400
_HOUR = 3600
# Rule kinds: Mm.w.d, Jn (1..365, Feb 29 never counted), n (0..365, Feb 29 counted).
_M = 0
_J = 1
_N = 2
_DEFAULT_RULE_TIME = 7200  # POSIX: "the default, if time is not given, is 02:00:00"


def days_from_civil(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date; H. Hinnant, "chrono-Compatible
    # Low-Level Date Algorithms". Floor division keeps it right before 1970 too.
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _ymd(days):
    # The inverse of days_from_civil -> (y, m, d).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, doy - (153 * mp + 2) // 5 + 1


def civil(secs):
    # Epoch seconds (1970-based) -> (y, m, d, hh, mm, ss, weekday 0=Monday, yday 1..366),
    # the shape of time.gmtime() on every port, for any instant.
    days, s = divmod(secs, _DAY)
    y, m, d = _ymd(days)
    # 1970-01-01 was a Thursday (weekday 3 counting from Monday).
    return (
        y,
        m,
        d,
        s // _HOUR,
        s // 60 % 60,
        s % 60,
        (days + 3) % 7,
        days - days_from_civil(y, 1, 1) + 1,
    )


def _rule_day(kind, a, b, c, y):
    # Days since 1970 of the date a rule names in year y.
    if kind == _M:
        # Mm.w.d: day d (0=Sunday) of week w (5 = last) of month m.
        first = days_from_civil(y, a, 1)
        # (first + 4) % 7 is the POSIX weekday (0=Sunday): 1970-01-01 was day 4.
        day = first + (c - (first + 4)) % 7 + 7 * (b - 1)
        nxt = days_from_civil(y + 1, 1, 1) if a == 12 else days_from_civil(y, a + 1, 1)
        if day >= nxt:  # only w = 5 can overshoot, by exactly one week
            day -= 7
        return day
    jan1 = days_from_civil(y, 1, 1)
    if kind == _J:
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        return jan1 + a - 1 + (1 if leap and a >= 60 else 0)
    return jan1 + a


class Zone:
    # Seconds east of UTC throughout. The current year's transitions (in UTC) are cached
    # so offset() allocates nothing on the common path.
    def __init__(self, text, std, soff, dst, doff, start, end):
        self.text = text
        self.std = std
        self.std_offset = soff
        self.dst = dst  # None: no daylight saving time
        self.dst_offset = doff
        self._start = start  # (kind, a, b, c, secs): secs after local midnight
        self._end = end
        self._lo = self._hi = 0  # UTC bounds of the cached year; empty until first use
        self._s = self._e = 0

    def __repr__(self):
        return "Zone(%r)" % self.text

    def transitions(self, year):
        # (dst_start_utc, dst_end_utc) or None. The start rule's time is read on the
        # standard clock, the end rule's on the daylight clock (POSIX XBD 8.3).
        if self.dst is None:
            return None
        k, a, b, c, t = self._start
        s = _rule_day(k, a, b, c, year) * _DAY + t - self.std_offset
        k, a, b, c, t = self._end
        e = _rule_day(k, a, b, c, year) * _DAY + t - self.dst_offset
        return s, e

    def _load(self, utc):
        y = _ymd((utc + self.std_offset) // _DAY)[0]
        self._s, self._e = self.transitions(y)
        self._lo = days_from_civil(y, 1, 1) * _DAY - self.std_offset
        self._hi = days_from_civil(y + 1, 1, 1) * _DAY - self.std_offset

    def is_dst(self, utc):
        if self.dst is None:
            return False
        if not self._lo <= utc < self._hi:
            self._load(utc)
        s, e = self._s, self._e
        if s < e:
            return s <= utc < e
        # Southern hemisphere (or negative DST, Europe/Dublin): DST spans New Year.
        return utc >= s or utc < e

    def offset(self, utc):
        return self.dst_offset if self.is_dst(utc) else self.std_offset

    def local(self, utc):
        return utc + self.offset(utc)

    def abbrev(self, utc):
        return self.dst if self.is_dst(utc) else self.std

    def utc(self, local, later=False):
        # Wall clock -> UTC. Try both offsets; keep those that read back consistently.
        if self.dst is None:
            return local - self.std_offset
        u_std = local - self.std_offset
        u_dst = local - self.dst_offset
        ok_std = not self.is_dst(u_std)
        ok_dst = self.is_dst(u_dst)
        if ok_std and ok_dst:  # autumn overlap: the wall clock reads it twice
            lo, hi = (u_std, u_dst) if u_std < u_dst else (u_dst, u_std)
            return hi if later else lo
        if ok_std:
            return u_std
        if ok_dst:
            return u_dst
        # Spring gap: the time never happens. Read it with the pre-transition (smaller)
        # offset, which moves it forward by the gap, as zoneinfo does with fold=0.
        return u_std if u_std > u_dst else u_dst


def parse(text):
    # POSIX TZ string -> Zone; ValueError quotes the string and names the part. The parser
    # is a module of its own, loaded for the call and unloaded after it (zones are parsed
    # at boot and when the config changes, never in the lighting loop).
    from lamp import tzparse, unload

    try:
        return Zone(text, *tzparse.fields(text))
    finally:
        unload("tzparse")
