"""TALQ 2.7.1 calendars and control programs to and from Lanterna schedules.

A CMS describes the nights with a Calendar (ordered rules, each a condition and a control
program, and a default program) and ControlProgramOne objects; a node runs a Lanterna
schedule (docs/schedules.md). This module is the one place that translates between them,
in the reading the gateway announces, and refuses, naming the offending value, whatever
one side cannot say in the other's terms. Every schedule it produces is checked by the
node's own parser (``lamp.schedule.parse``) before it is returned.

The gateway's reading:

- Days. The gateway announces ``dayOffset: 12`` (noon to noon), which is Lanterna's
  night: a rule for date D applies to the night whose evening is D, and ccDay weekdays
  are the weekday of that evening. Rules are tried in order, the first that matches wins
  (as Lanterna's calendar entries); ``defaultProgram`` becomes the final default entry.
- Switch points. A ControlProgramOne is a list of switch points: its fixedTimeControls
  and astroClockTimeControls, merged by the instant each falls on the night. At each one
  its command's level takes effect and holds until the next switch point of either kind,
  across midnight and into the next night if need be. That is exactly a Lanterna
  profile's steps (the latest step wins). A FixedTimeControl ``hh:mm:00`` is a clock step
  ``HH:MM``; an AstroClockTimeControl with operation ``Set`` is a ``sunset``/``sunrise``
  step with its offset. Should a fixed and an astro control fall on the very same second,
  the astro control wins (TALQ applies the astro operation over the fixed state): the
  profile lists the fixed steps first.
- Refused, as we announce them unsupported: seconds other than 00
  (programSecondsSupported=false), operations other than Set, ramps, states other than a
  LevelState of 0..100, dynamic controls, active periods other than the whole day,
  program types other than ControlProgramOne, ccDay occurrences (ccDaySupport
  noOccurrences), offsets beyond the node's +/-6 h.
- Dates. startDate/endDate give a Lanterna ``from``/``to`` range (``--01-01`` and
  ``--12-31``, TALQ's defaults, mean no bound); a range open at one end is closed at the
  node parser's earliest (0001-01-01) or latest (9999-12-31) date. A yearless range may
  wrap the year end. ccDate ``--MM-DD`` items become ``dates`` or a range; a gDay
  ``---DD`` (every month) becomes the months that have that day (``---29`` includes
  ``--02-29``, which the node matches in leap years only), a gDay range twelve monthly
  ranges (cut at each month's end). One rule may become several calendar entries.
- Names. The schedule is ``talq-<calendar id>``; each profile is named by its program's
  id, as it is (the parser does not restrict profile names).

The way back (``from_schedule``) writes a schedule from the CLI as a calendar and one
ControlProgramOne per profile (``<schedule id>.<profile>``), splitting an entry into as
many rules as its meaning needs; dusk/dawn steps, motion and photocell have no TALQ form.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from lamp import schedule as fwsched
from lanterna.errors import EXIT_MALFORMED, LanternaError
from lanterna.wire.protocol import canonical

PROGRAM_TYPE = "ControlProgramOne"
SCHEDULE_PREFIX = "talq-"
EARLIEST, LATEST = "0001-01-01", "9999-12-31"  # the node parser's first and last dates
_NO_START, _NO_END = "--01-01", "--12-31"  # CalendarRule defaults: no bound
_OPERATIONS = ("Set", "Max", "Min", "Add", "Sub", "Mul")  # EffectOperation
_SUN = ("sunset", "sunrise")
_MDAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # yearless: 29 February exists
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_MONTHDAY = re.compile(r"--(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")  # gMonthDay
_MDAY = re.compile(r"---(0[1-9]|[12]\d|3[01])")  # gDay
# The schedule id is typed on the CLI, reported in every node's state and stored as a
# name: letters, digits and ._- only, and "talq-" + id within a command id's 64 chars.
_CAL_ID_MAX = 64 - len(SCHEDULE_PREFIX)
_CAL_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{_CAL_ID_MAX}}}")


class Untranslatable(LanternaError):
    """What one format cannot say in the other (or a malformed object), and where."""

    exit_code = EXIT_MALFORMED

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# -- shape checks ------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(o: dict, key: str, where: str, empty: bool = False) -> str:
    v = o.get(key)
    if not isinstance(v, str) or not (v or empty):
        raise Untranslatable(where, f"expected a{'' if empty else ' non-empty'} string")
    return v


def _list(o: dict, key: str, where: str) -> list:
    v = o.get(key, [])
    if not isinstance(v, list):
        raise Untranslatable(where, f"expected a list, got {type(v).__name__}")
    return v


def _dict(v: Any, where: str, what: str) -> dict:
    if not isinstance(v, dict):
        raise Untranslatable(where, f"expected {what} object, got {type(v).__name__}")
    return v


def _date_ok(s: Any) -> bool:
    # YYYY-MM-DD (a real date) or a yearless --MM-DD (29 February allowed)
    if not isinstance(s, str):
        return False
    if _DATE.fullmatch(s):
        try:
            date.fromisoformat(s)
            return True
        except ValueError:
            return False
    m = _MONTHDAY.fullmatch(s)
    return m is not None and int(m[2]) <= _MDAYS[int(m[1]) - 1]


def _ccdate_kind(s: Any) -> str | None:
    # the format of a ccDate item's start or end: every month, or every year
    if isinstance(s, str) and _MDAY.fullmatch(s):
        return "---DD"
    return "--MM-DD" if _MONTHDAY.fullmatch(s or "") and _date_ok(s) else None


def _check_condition(c: Any, w: str) -> None:
    c = _dict(c, w, "a Condition")
    kind = c.get("type")
    if kind == "ccDay":
        days = _list(c, "days", w + ".days")
        if len(days) > 7:
            raise Untranslatable(w + ".days", "at most 7 items")
        for j, d in enumerate(days):
            dw = f"{w}.days[{j}]"
            d = _dict(d, dw, "a day")
            for k in ("start", "end"):
                if (k == "start" or k in d) and not (_is_int(d.get(k)) and 1 <= d[k] <= 7):
                    raise Untranslatable(f"{dw}.{k}", "expected a weekday 1..7 (1 = Monday)")
        occ = _list(c, "occurrences", w + ".occurrences")
        for j, o in enumerate(occ):
            if not (isinstance(o, str) and re.fullmatch(r"[1-5L]", o)):
                raise Untranslatable(f"{w}.occurrences[{j}]", "expected one of 1..5 or L")
    elif kind == "ccDate":
        for j, d in enumerate(_list(c, "dates", w + ".dates")):
            dw = f"{w}.dates[{j}]"
            d = _dict(d, dw, "a date")
            start = _ccdate_kind(d.get("start"))
            if start is None:
                raise Untranslatable(
                    dw + ".start", f"expected ---DD or --MM-DD, got {d.get('start')!r}"
                )
            if "end" in d:
                if _ccdate_kind(d["end"]) != start:
                    raise Untranslatable(
                        dw + ".end", f"expected {start} as the start, got {d['end']!r}"
                    )
                if d["end"] < d["start"]:
                    raise Untranslatable(dw + ".end", "the end must not come before the start")
    else:
        raise Untranslatable(w + ".type", f"expected ccDay or ccDate, got {kind!r}")


def check_calendar(cal: Any) -> dict:
    """The shape of one TALQ Calendar; Untranslatable names the first bad value."""
    cal = _dict(cal, "calendar", "a Calendar")
    _str(cal, "id", "id")
    _str(cal, "ownerCMS", "ownerCMS", empty=True)
    for i, r in enumerate(_list(cal, "rules", "rules")):
        w = f"rules[{i}]"
        r = _dict(r, w, "a CalendarRule")
        _str(r, "program", w + ".program")
        for k in ("startDate", "endDate"):
            if k in r and not _date_ok(r[k]):
                raise Untranslatable(f"{w}.{k}", f"expected YYYY-MM-DD or --MM-DD, got {r[k]!r}")
        if "condition" in r:
            _check_condition(r["condition"], w + ".condition")
    if "defaultProgram" in cal:
        _str(cal, "defaultProgram", "defaultProgram")
    return cal


def _check_command(c: Any, w: str) -> None:
    c = _dict(c, w, "a CommandBase")
    state = _dict(c.get("state"), w + ".state", "a State")
    _str(state, "name", w + ".state.name")
    for k in ("rampToLevelTime", "rampFromLevelTime"):
        if k in c and (not isinstance(c[k], int | float) or isinstance(c[k], bool)):
            raise Untranslatable(f"{w}.{k}", "expected a number of seconds")


def check_program(prog: Any) -> dict:
    """The shape of one control program (a ControlProgramOne's fields when it is one)."""
    prog = _dict(prog, "program", "a ControlProgram")
    _str(prog, "type", "type")
    _str(prog, "id", "id")
    _str(prog, "ownerCMS", "ownerCMS", empty=True)
    if prog["type"] != PROGRAM_TYPE:
        return prog
    seen: dict[str, int] = {}
    for j, f in enumerate(_list(prog, "fixedTimeControls", "fixedTimeControls")):
        w = f"fixedTimeControls[{j}]"
        f = _dict(f, w, "a FixedTimeControl")
        t = f.get("startTime")
        if not (isinstance(t, str) and _TIME.fullmatch(t)):
            raise Untranslatable(w + ".startTime", f"expected hh:mm:ss, got {t!r}")
        if t in seen:  # TALQ: "not allowed to have two entries with exactly the same start time"
            raise Untranslatable(w + ".startTime", f"{t} is fixedTimeControls[{seen[t]}]'s too")
        seen[t] = j
        _check_command(f.get("command"), w + ".command")
    for j, a in enumerate(_list(prog, "astroClockTimeControls", "astroClockTimeControls")):
        w = f"astroClockTimeControls[{j}]"
        a = _dict(a, w, "an AstroClockTimeControl")
        if not _is_int(a.get("offset")):
            raise Untranslatable(w + ".offset", "expected an integer number of minutes")
        if a.get("solarEventType") not in _SUN:
            raise Untranslatable(w + ".solarEventType", "expected sunset or sunrise")
        if a.get("operation") not in _OPERATIONS:
            raise Untranslatable(w + ".operation", f"expected one of {', '.join(_OPERATIONS)}")
        _check_command(a.get("command"), w + ".command")
    for j, p in enumerate(_list(prog, "activePeriods", "activePeriods")):
        _str(_dict(p, f"activePeriods[{j}]", "an ActivePeriod"), "name", f"activePeriods[{j}].name")
    _list(prog, "dynamicControls", "dynamicControls")
    return prog


def program_refs(cal: dict) -> list[str]:
    """The program ids a calendar refers to, in order, each once."""
    refs = [r.get("program") for r in cal.get("rules") or [] if isinstance(r, dict)]
    refs.append(cal.get("defaultProgram"))
    return list(dict.fromkeys(p for p in refs if isinstance(p, str) and p))


# -- TALQ -> Lanterna --------------------------------------------------------------------


def _level(c: dict, w: str) -> int:
    state = c["state"]
    if state["name"] != "LevelState":
        raise Untranslatable(w + ".state.name", f"{state['name']}: a lamp takes a LevelState")
    v = state.get("value")
    if not (_is_int(v) and 0 <= v <= 100):
        raise Untranslatable(w + ".state.value", f"{v!r}: expected a level 0..100")
    for k in ("rampToLevelTime", "rampFromLevelTime"):
        if c.get(k):
            raise Untranslatable(f"{w}.{k}", "ramps are not supported: a schedule step is a step")
    return v


def _switch_points(prog: dict, w: str) -> list[tuple[str, int | None, int]]:
    try:
        check_program(prog)
    except Untranslatable as e:
        raise Untranslatable(f"{w}.{e.where}", e.message) from None
    if prog["type"] != PROGRAM_TYPE:
        raise Untranslatable(w + ".type", f"{prog['type']}: only ControlProgramOne is supported")
    periods = prog.get("activePeriods") or []
    if len(periods) > 1:
        raise Untranslatable(w + ".activePeriods", "a program is active the whole day or not")
    for j, p in enumerate(periods):
        t = p.get("startTime")
        if p["name"] != "AbsoluteActivePeriod" or not isinstance(t, str) or t != p.get("endTime"):
            raise Untranslatable(
                f"{w}.activePeriods[{j}]", "only the whole day (an AbsoluteActivePeriod "
                "with startTime == endTime) can be expressed by a Lanterna schedule"
            )  # fmt: skip
    if prog.get("dynamicControls"):
        raise Untranslatable(w + ".dynamicControls", "dynamic controls are not supported")
    out: list[tuple[str, int | None, int]] = []
    fixed = prog.get("fixedTimeControls") or []
    for j, f in enumerate(fixed):
        fw = f"{w}.fixedTimeControls[{j}]"
        if not f["startTime"].endswith(":00"):
            raise Untranslatable(
                fw + ".startTime", f"{f['startTime']}: seconds are not supported "
                "(programSecondsSupported false)"
            )  # fmt: skip
        out.append((f["startTime"][:5], None, _level(f["command"], fw + ".command")))
    # Fixed steps in the order of the night (from noon), for whoever reads the schedule.
    out.sort(key=lambda s: (int(s[0][:2]) * 60 + int(s[0][3:]) - 720) % 1440)
    for j, a in enumerate(prog.get("astroClockTimeControls") or []):
        aw = f"{w}.astroClockTimeControls[{j}]"
        if a["operation"] != "Set":
            raise Untranslatable(aw + ".operation", f"{a['operation']}: only Set is supported")
        lim = fwsched.MAX_OFFSET_MIN
        if not -lim <= a["offset"] <= lim:
            raise Untranslatable(aw + ".offset", f"{a['offset']} outside -{lim}..{lim} minutes")
        out.append((a["solarEventType"], a["offset"], _level(a["command"], aw + ".command")))
    if not out:
        raise Untranslatable(w + ".fixedTimeControls", "a program needs at least one switch point")
    return out


def switch_points(prog: dict) -> list[tuple[str, int | None, int]]:
    """A program's switch points in our reading, as the profile lists them: fixed controls
    (night order) then astro controls, e.g. [("22:30", None, 50), ("sunset", -30, 100)]."""
    return _switch_points(prog, f"programs[{prog.get('id')}]")


def _steps(points: list[tuple[str, int | None, int]]) -> list[dict[str, Any]]:
    steps = []
    for at, offset, level in points:
        st: dict[str, Any] = {"at": at, "level": level}
        if offset:
            st["offset"] = offset
        steps.append(st)
    return steps


def _rule_range(r: dict, w: str) -> tuple[str, str] | None:
    start = r.get("startDate", _NO_START)
    end = r.get("endDate", _NO_END)
    has_start, has_end = start != _NO_START, end != _NO_END
    if not (has_start or has_end):
        return None
    if has_start and has_end:
        if bool(_DATE.fullmatch(start)) != bool(_DATE.fullmatch(end)):
            raise Untranslatable(
                w + ".endDate", f"{start} to {end}: both dates need a year or neither"
            )
        if _DATE.fullmatch(start) and end < start:
            raise Untranslatable(w + ".endDate", f"{end} comes before startDate {start}")
        return start, end
    if has_start:
        return start, LATEST if _DATE.fullmatch(start) else _NO_END
    return EARLIEST if _DATE.fullmatch(end) else _NO_START, end


def _weekdays(c: dict, w: str) -> list[str]:
    if c.get("occurrences"):
        raise Untranslatable(
            w + ".occurrences", "the nth weekday of a month cannot be expressed by a "
            "Lanterna schedule (ccDaySupport noOccurrences)"
        )  # fmt: skip
    if not c["days"]:
        raise Untranslatable(w + ".days", "an empty list of days matches no night")
    mask = 0
    for j, d in enumerate(c["days"]):
        end = d.get("end", d["start"])
        if end < d["start"]:
            raise Untranslatable(f"{w}.days[{j}].end", f"{end} before start {d['start']}")
        for n in range(d["start"], end + 1):
            mask |= 1 << (n - 1)
    return [wd for i, wd in enumerate(fwsched.WEEKDAYS) if mask & 1 << i]


def _yearly(c: dict, w: str) -> tuple[list[str], list[tuple[str, str]]]:
    # ccDate -> (yearless single dates, yearless ranges)
    if not c["dates"]:
        raise Untranslatable(w + ".dates", "an empty list of dates matches no night")
    singles: list[str] = []
    ranges: list[tuple[str, str]] = []
    for d in c["dates"]:
        start, end = d["start"], d.get("end")
        if _MONTHDAY.fullmatch(start):
            if end is None or end == start:
                singles.append(start)
            else:
                ranges.append((start, end))
            continue
        lo, hi = int(start[3:]), int((end or start)[3:])
        for m, mdays in enumerate(_MDAYS, 1):
            if lo > mdays:
                continue  # ---31 is no day of April
            a, b = f"--{m:02d}-{lo:02d}", f"--{m:02d}-{min(hi, mdays):02d}"
            if a == b:
                singles.append(a)
            else:
                ranges.append((a, b))
    return list(dict.fromkeys(singles)), ranges


def _entries(r: dict, w: str) -> list[dict[str, Any]]:
    # One rule -> its calendar entries (without the profile); [{}] = unconditional.
    rng = _rule_range(r, w)
    base: dict[str, Any] = {} if rng is None else {"from": rng[0], "to": rng[1]}
    c = r.get("condition")
    if c is None:
        return [base]
    if c["type"] == "ccDay":
        return [{"weekdays": _weekdays(c, w + ".condition"), **base}]
    singles, ranges = _yearly(c, w + ".condition")
    if ranges and rng is not None:
        j = next(j for j, d in enumerate(c["dates"]) if d.get("end", d["start"]) != d["start"])
        raise Untranslatable(
            f"{w}.condition.dates[{j}]", "a date range in a rule with startDate/endDate: "
            "a Lanterna calendar entry holds one range"
        )  # fmt: skip
    out = [{"dates": singles, **base}] if singles else []
    return out + [{"from": a, "to": b} for a, b in ranges]


def to_schedule(cal: dict, programs: dict[str, dict]) -> dict:
    """The Lanterna schedule of a calendar and its programs, checked by the node's parser;
    Untranslatable names what the node format cannot express (or a missing program)."""
    cal = check_calendar(cal)
    if not _CAL_ID.fullmatch(cal["id"]):
        raise Untranslatable(
            "id", f"{cal['id']!r}: a calendar id for Lanterna is 1-{_CAL_ID_MAX} "
            "letters, digits, '.', '_' or '-' (it names the schedule on every node)"
        )  # fmt: skip
    rules = cal.get("rules") or []
    wanted = [(f"rules[{i}]", r["program"], r) for i, r in enumerate(rules)]
    if "defaultProgram" in cal:
        wanted.append(("defaultProgram", cal["defaultProgram"], None))
    profiles: dict[str, list[dict[str, Any]]] = {}
    calendar: list[dict[str, Any]] = []
    done = False  # after an unconditional rule nothing else is reached
    for w, pid, r in wanted:
        if pid not in programs:
            where = w + ".program" if r is not None else w
            raise Untranslatable(where, f"no control program {pid!r}")
        entries = _entries(r, w) if r is not None else [{}]
        if pid not in profiles:
            try:  # the profile name travels in a signed command: its canonical form
                canonical({pid: 0})
            except ValueError:
                raise Untranslatable(
                    f"programs[{pid}].id", "a profile name must be printable ASCII "
                    "without '\"' or '\\' (the node's signed command format)"
                ) from None  # fmt: skip
            profiles[pid] = _steps(_switch_points(programs[pid], f"programs[{pid}]"))
        if not done:
            calendar += [{**e, "profile": pid} for e in entries]
            done = {} in entries
    if not done:
        raise Untranslatable(
            "defaultProgram", "every night needs a program: give a defaultProgram or end "
            "the rules with one without condition or dates"
        )  # fmt: skip
    used = {e["profile"] for e in calendar}
    sched = {
        "version": fwsched.VERSION,
        "id": SCHEDULE_PREFIX + cal["id"],
        "profiles": {p: s for p, s in profiles.items() if p in used},
        "calendar": calendar,
    }
    try:
        fwsched.parse(sched)
    except fwsched.ScheduleError as e:  # a case this module missed: say so, ship nothing
        raise Untranslatable("calendar", f"the node would refuse the translation: {e}") from None
    return sched


# -- Lanterna -> TALQ --------------------------------------------------------------------


def _command(level: int) -> dict[str, Any]:
    return {"state": {"name": "LevelState", "value": level}}


def _program(sid: str, name: str, steps: list[dict], owner: str) -> dict[str, Any]:
    fixed: dict[str, int] = {}
    astro: dict[tuple[str, int], int] = {}
    for i, st in enumerate(steps):
        at = st["at"]
        if at in ("dusk", "dawn"):
            raise Untranslatable(
                f"profiles.{name}[{i}].at", f"{at}: TALQ has no civil twilight event "
                "(astroClockTimeControls know sunrise and sunset only)"
            )  # fmt: skip
        if at in _SUN:
            astro.pop((at, st.get("offset", 0)), None)  # the later of equal ones wins
            astro[(at, st.get("offset", 0))] = st["level"]
        else:
            fixed[at] = st["level"]  # the later at the same clock time wins
    return {
        "type": PROGRAM_TYPE,
        "id": f"{sid}.{name}",
        "ownerCMS": owner,
        "activePeriods": [],
        "fixedTimeControls": [
            {"startTime": at + ":00", "command": _command(lvl)} for at, lvl in sorted(fixed.items())
        ],
        "astroClockTimeControls": [
            {"offset": off, "solarEventType": ev, "operation": "Set", "command": _command(lvl)}
            for (ev, off), lvl in astro.items()
        ],
    }


def _runs(weekdays: list[str]) -> list[dict[str, int]]:
    # mon..sun -> ccDay days, consecutive weekdays as one range (1 = Monday)
    nums = sorted({fwsched.WEEKDAYS.index(w) + 1 for w in weekdays})
    runs: list[list[int]] = []
    for n in nums:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return [{"start": a} if a == b else {"start": a, "end": b} for a, b in runs]


def _in_range(d: str, lo: str, hi: str) -> bool:
    # d, lo, hi all dated, or d (its month-day) against a yearless range that may wrap
    if lo.startswith("--"):
        md = "--" + d[5:] if _DATE.fullmatch(d) else d
        return lo <= md <= hi if lo <= hi else md >= lo or md <= hi
    return lo <= d <= hi


def _rules(e: dict, pid: str, w: str) -> list[dict[str, Any]]:
    # One calendar entry (weekdays AND dates AND range) -> rules that say exactly that.
    wds, dates = e.get("weekdays"), e.get("dates")
    lo, hi = e.get("from"), e.get("to", "")
    day = {"type": "ccDay", "days": _runs(wds)} if wds else None
    if dates is None:
        rule: dict[str, Any] = {"program": pid}
        if lo is not None:
            rule |= {"startDate": lo, "endDate": hi}
        return [rule | {"condition": day}] if day else [rule]
    out = []
    for d in (d for d in dates if _DATE.fullmatch(d)):  # a dated single: decided here
        if lo is not None and not _in_range(d, lo, hi):
            continue
        if wds and fwsched.WEEKDAYS[date.fromisoformat(d).weekday()] not in wds:
            continue
        out.append({"program": pid, "startDate": d, "endDate": d})
    yearly = [d for d in dates if not _DATE.fullmatch(d)]
    if lo is not None and lo.startswith("--"):  # yearless single in a yearless range
        yearly = [d for d in yearly if _in_range(d, lo, hi)]
        lo = hi = None
    if yearly and day is not None:
        if lo is not None:
            raise Untranslatable(
                w, "weekdays, yearless dates and a dated range in one entry: a TALQ rule "
                "holds one condition and one range"
            )  # fmt: skip
        # each yearly date as a one-day yearly range, under the weekday condition
        out += [{"program": pid, "startDate": d, "endDate": d, "condition": day} for d in yearly]
    elif yearly:
        rule = {
            "program": pid,
            "condition": {"type": "ccDate", "dates": [{"start": d} for d in yearly]},
        }
        if lo is not None:
            rule |= {"startDate": lo, "endDate": hi}
        out.append(rule)
    return out


def from_schedule(sched: dict, owner: str) -> tuple[dict, list[dict]]:
    """A schedule (as the CLI writes them) as a TALQ Calendar and its ControlProgramOne
    objects; Untranslatable for what TALQ cannot say (dusk/dawn, motion, photocell). The
    nights are the same, but for a clock and a sun step on the very same second (the
    profile's list order decides; in our TALQ reading the sun step wins)."""
    try:
        fwsched.parse(sched)
    except fwsched.ScheduleError as e:
        raise Untranslatable("schedule", str(e)) from None
    for key in ("motion", "photocell"):
        if key in sched:
            raise Untranslatable(key, f"a {key} section has no TALQ control program form")
    sid = sched["id"]
    programs = [_program(sid, n, steps, owner) for n, steps in sched["profiles"].items()]
    *entries, default = sched["calendar"]
    rules = []
    for i, entry in enumerate(entries):
        rules += _rules(entry, f"{sid}.{entry['profile']}", f"calendar[{i}]")
    cal = {
        "id": sid,
        "ownerCMS": owner,
        "rules": rules,
        "defaultProgram": f"{sid}.{default['profile']}",
    }
    return cal, programs
