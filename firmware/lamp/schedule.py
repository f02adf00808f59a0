# Dimming schedules: profiles of steps anchored to local clock time or to sun events, and
# a calendar that picks the profile for each night. Evaluated as a state for "now", never
# as edges: after a reboot, a time jump or an NTP correction the node computes the level
# it should have at that moment (ESPHome's sun triggers fire only on a crossing, so a node
# rebooted after dusk stays dark until the next day). Pure logic: the controller imports
# this module under CPython to preview exactly what the poles will do. Format:
# docs/schedules.md.
from lamp import clock, unload

VERSION = 1
ANCHORS = ("clock", "sunset", "sunrise", "dusk", "dawn")  # index = step kind
_CLOCK, _SUNSET, _SUNRISE, _DUSK, _DAWN = 0, 1, 2, 3, 4
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_OFFSET_MIN = 360  # +/- 6 h
_DAY = 86400
_NOON = 43200  # a lighting night runs from local noon to the next local noon
_CIVIL = -6.0
_HORIZON = -0.833  # upper limb with standard refraction, as NOAA and astral use


class ScheduleError(ValueError):
    pass


def parse(obj):
    # Validate a schedule (parsed JSON) and compile it; ScheduleError names the path. The
    # validator is a module of its own, loaded for the call and unloaded after it: a node
    # needs it only when a schedule arrives.
    from lamp import schedule_parse, unload

    try:
        return Schedule(*schedule_parse.compile_schedule(obj))
    finally:
        unload("schedule_parse")


class Schedule:
    def __init__(self, sid, profiles, calendar, motion, photocell):
        self.id = sid
        self.profiles = profiles
        self.calendar = calendar
        self.motion = motion
        self.photocell = photocell

    def profile_for(self, day):
        # The profile for the night starting on local date `day` (days since 1970-01-01).
        y, m, d = clock.civil(day * _DAY)[:3]
        wd = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        md, ymd = m * 100 + d, y * 10000 + m * 100 + d
        for name, mask, dates, rng in self.calendar:
            if mask and not mask & (1 << wd):
                continue
            if dates is not None and ymd not in dates and md not in dates:
                continue
            if rng is not None:
                lo, hi = rng
                if lo > 9999:
                    if not lo <= ymd <= hi:
                        continue
                elif not (lo <= md <= hi if lo <= hi else md >= lo or md <= hi):
                    continue
            return name
        return self.calendar[-1][0]


class Plan:
    # A schedule bound to a site: turns nights into UTC instants and answers "which level
    # now" and "when is the next change". Caches the last few nights (sun maths is the
    # costly part), so evaluating every few seconds costs a lookup.
    def __init__(self, sched, zone, lat, lon):
        self.schedule = sched
        self.zone = zone
        self.lat = lat
        self.lon = lon
        self._nights = {}

    def day_of(self, utc):
        # The local date whose night contains `utc` (nights run noon to noon).
        local = self.zone.local(utc)
        return (local - _NOON) // _DAY

    def _sun(self, day, kind):
        from lamp import astro  # once a night: night() drops it again

        y, m, d = clock.civil(day * _DAY)[:3]
        elev = _CIVIL if kind in (_DUSK, _DAWN) else _HORIZON
        status, rise, sset = astro.sun(y, m, d, self.lat, self.lon, elev)
        if status == astro.NORMAL:
            mins = sset if kind in (_SUNSET, _DUSK) else rise
            return day * _DAY + int(mins * 60)
        # Polar night: dark all day, the evening anchor falls at local noon of the night's
        # first day and the morning anchor at noon of the next. Polar day: the night has
        # no length, both anchors fall at local midnight.
        night_start = day if kind in (_SUNSET, _DUSK) else day - 1
        if status == astro.POLAR_NIGHT:
            local = night_start * _DAY + _NOON + (0 if kind in (_SUNSET, _DUSK) else _DAY)
        else:
            local = (night_start + 1) * _DAY
        return self.zone.utc(local)

    def _instant(self, day, kind, val):
        if kind == _CLOCK:
            # Morning clock steps (before noon) belong to the next calendar date.
            local_day = day if val * 60 >= _NOON else day + 1
            return self.zone.utc(local_day * _DAY + val * 60)
        sun_day = day if kind in (_SUNSET, _DUSK) else day + 1
        return self._sun(sun_day, kind) + val * 60

    def night(self, day):
        # -> (profile name, ((utc, step index, level), ...) sorted by time, then list order)
        got = self._nights.get(day)
        if got is None:
            name = self.schedule.profile_for(day)
            steps = self.schedule.profiles[name]
            out = [(self._instant(day, k, v), i, lvl) for i, (k, v, lvl) in enumerate(steps)]
            unload("astro")  # the sun maths run a few times a night: not resident
            out.sort()
            got = (name, tuple(out))
            if len(self._nights) >= 4:
                del self._nights[min(self._nights)]
            self._nights[day] = got
        return got

    def level_at(self, utc):
        # -> (level, profile, step index, utc of that step): the latest step at or before
        # `utc`, looking back over the previous night so early hours and long offsets work.
        day = self.day_of(utc)
        best = None
        for d in (day - 2, day - 1, day):
            name, steps = self.night(d)
            for t, i, lvl in steps:
                if t <= utc and (best is None or t >= best[3]):
                    best = (lvl, name, i, t)
        return best

    def next_change(self, utc):
        # UTC instant of the next step after `utc` (any level), or None.
        day = self.day_of(utc)
        nxt = None
        for d in (day - 1, day, day + 1):
            for t, _i, _lvl in self.night(d)[1]:
                if t > utc and (nxt is None or t < nxt):
                    nxt = t
        return nxt

    def transitions(self, day):
        # The changes of level during the night of `day` (local noon to noon): the level at
        # noon, then [(utc, level)] wherever it changes. Used by the preview and tests.
        start = self.zone.utc(day * _DAY + _NOON)
        end = self.zone.utc((day + 1) * _DAY + _NOON)
        first = level = self.level_at(start)[0]
        out = []
        t = self.next_change(start)
        while t is not None and t < end:
            new = self.level_at(t)[0]
            if new != level:
                out.append((t, new))
                level = new
            t = self.next_change(t)
        return first, out
