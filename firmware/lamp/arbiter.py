# Which source decides the lamp level now. Priority, highest first (docs/schedules.md):
#   override (a command: level until a time) > motion boost (only while the schedule has
#   the lamp on) > schedule (needs valid time) > photocell (lux with hysteresis, when the
#   time is not valid) > failsafe (neither time nor lux: light the street).
# Pure: inputs are passed in, so the same rules run in tests, the sim and on the pole.
OVERRIDE, MOTION, SCHEDULE, PHOTOCELL, FAILSAFE = (
    "override",
    "motion",
    "schedule",
    "photocell",
    "failsafe",
)


class Arbiter:
    def __init__(self, failsafe_level=100):
        self.failsafe_level = failsafe_level
        self.plan = None  # schedule.Plan
        self.override = None  # [level, until_utc, fade_s or None] (a list: JSON-storable)
        self._motion_at = None  # monotonic seconds of the last motion
        self._dark = None  # photocell state: True = lamp on

    def set_plan(self, plan):
        self.plan = plan

    def set_override(self, level, until_utc, fade_s=None):
        self.override = [level, until_utc, fade_s]

    def clear_override(self):
        self.override = None

    def motion(self, mono_s):
        self._motion_at = mono_s

    def _photocell(self, lux, cfg):
        # Hysteresis: on below on_lux, off above off_lux, in between keep the last state
        # (first reading in between: on, the safe side for a street).
        if lux <= cfg["on_lux"]:
            self._dark = True
        elif lux >= cfg["off_lux"]:
            self._dark = False
        elif self._dark is None:
            self._dark = True
        return cfg["level"] if self._dark else 0

    def decide(self, utc, time_valid, mono_s, lux=None):
        # -> (level, source, fade_s or None for the dimmer's default)
        if self.override is not None:
            level, until, fade_s = self.override
            if not time_valid or utc < until:
                return level, OVERRIDE, fade_s
            self.override = None  # expired
        plan = self.plan
        sched = plan.schedule if plan is not None else None
        if plan is not None and sched is not None and time_valid:
            level = plan.level_at(utc)[0]
            m = sched.motion
            if m is not None and level > 0 and self._motion_at is not None:
                if mono_s - self._motion_at < m["hold_s"] and m["level"] > level:
                    return m["level"], MOTION, None
                # boost over: fade back to the schedule at the motion fade rate
                return level, SCHEDULE, m["fade_s"]
            return level, SCHEDULE, None
        photo = sched.photocell if sched is not None else None
        if lux is not None and photo is not None:
            return self._photocell(lux, photo), PHOTOCELL, None
        return self.failsafe_level, FAILSAFE, None

    def next_change(self, utc, mono_s):
        # Seconds until the decision may change by time alone (a step, an override
        # expiring, a motion boost ending), or None when only new inputs can change it.
        waits = []
        if self.override is not None:
            waits.append(self.override[1] - utc)
        if self.plan is not None:
            t = self.plan.next_change(utc)
            if t is not None:
                waits.append(t - utc)
        sched = self.plan.schedule if self.plan is not None else None
        if self._motion_at is not None and sched is not None and sched.motion is not None:
            left = self._motion_at + sched.motion["hold_s"] - mono_s
            if left > 0:
                waits.append(left)
        return max(0, min(waits)) if waits else None
