"""Data loggers (TALQ DataCollectService): what a CMS asks to be recorded, recorded, and
reported when it asks.

Recording modes:
- **EventRecordingMode**: the nodes' events as the store received them (``events``,
  read by id, so none is skipped or taken twice), those of `sourceEvents`: the lamp
  faults are TALQ LampMonitor events already (lampFailure, relayFailure,
  cyclingFailure, supplyLoss, lampUnexpectedOn, each a start and an end: ``startEndFlag``);
  a ``boot`` is a BasicFunction ``deviceReset``. Each is an ``EventLogData`` entry.
- **PeriodicRecordingMode**: at each sampling instant (`samplingStartTime` +
  k x `samplingPeriod`, an ISO 8601 duration, until `samplingEndTime`) the attributes of
  `content` of every source device, as the device shows them then, each an
  ``AttributeLogData`` entry with its own measurement time; `onChangeThreshold` leaves out
  a value that moved by less than that percentage since the last one logged.
- **VendorRecordingMode** (ours): the attributes of `content` (all of a function's when
  it names none) each time a node sends a newer value of them.

Reporting modes: **ImmediateReportingMode** reports `delay` seconds after the first entry
waiting (0: at once); **ScheduledReportingMode** at each of `times` (local time of the
gateway, or with their own offset). A report goes to the CMS through the outbox in the
same transaction that takes its entries from the log: nothing is lost or sent twice. A
CMS may also GET a logger's report (/log-reports/{address}): it gets what waits (and a
periodic logger samples first, as the spec asks).

Not supported (refused with 422, docs/talq.md): active periods in a recording mode,
``attributeScope``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from lanterna.talq import devices
from lanterna.talq.model import TalqError, device_address, iso, parse_time, payload_error

RECORDING = ("EventRecordingMode", "PeriodicRecordingMode", "VendorRecordingMode")
REPORTING = ("ImmediateReportingMode", "ScheduledReportingMode")
MAX_LOGGERS = 100
MIN_PERIOD_S = 10
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
# the store's event names that are TALQ events: name -> (eventType, function, a period)
EVENTS = {e: (e, devices.MONITOR, True) for e in devices.LAMP_EVENTS}
EVENTS["boot"] = ("deviceReset", devices.BASIC, False)


def duration_s(text: Any, where: str) -> int:
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None or text in ("P", "PT"):
        raise payload_error(f"{where}: {text!r} is not an ISO 8601 duration like PT15M")
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def _refs(v: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(v, list):
        raise payload_error(f"{where}: expected a list of ResourceReference")
    out = []
    for i, r in enumerate(v):
        if not isinstance(r, dict) or not isinstance(r.get("address"), str):
            raise payload_error(f"{where}[{i}]: expected a ResourceReference")
        res = str(r.get("resource", "")).strip("/")
        if res not in ("devices", "groups"):
            raise payload_error(f"{where}[{i}].resource {r.get('resource')!r}: devices or groups")
        out.append((res, r["address"].strip("/").split("/")[0]))
    return out


def _content(v: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(v, list):
        raise payload_error(f"{where}: expected a list")
    for i, c in enumerate(v):
        w = f"{where}[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("function"), dict):
            raise payload_error(f"{w}.function: missing")
        if "attributeScope" in c:
            raise TalqError(
                422,
                "payloadError",
                f"{w}.attributeScope: not supported (attributeScopeSupported false)",
            )
        f = c["function"]
        if not isinstance(f.get("functionId", ""), str) or not isinstance(
            f.get("functionType", ""), str
        ):
            raise payload_error(f"{w}.function: functionId and functionType are strings")
        if "functionId" not in f and "functionType" not in f:
            raise payload_error(f"{w}.function: a functionId or a functionType")
        for j, a in enumerate(f.get("attributes", [])):
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                raise payload_error(f"{w}.function.attributes[{j}].name: missing")
            t = a.get("onChangeThreshold")
            if t is not None and (type(t) is not int or not 0 <= t <= 100):
                raise payload_error(f"{w}.function.attributes[{j}].onChangeThreshold: 0..100")
    return v


def check(cfg: Any, where: str = "") -> dict[str, Any]:
    """A LoggerConfig, checked; TalqError 400 for a bad shape, 422 for what is not done."""
    p = (where + ".") if where else ""
    if not isinstance(cfg, dict):
        raise payload_error(f"{where or 'body'}: expected a LoggerConfig object")
    for k in ("address", "ownerCMS"):
        if not isinstance(cfg.get(k), str) or (k == "address" and not cfg[k]):
            raise payload_error(
                f"{p}{k}: expected a non-empty string"
                if k == "address"
                else f"{p}{k}: expected a string"
            )
    src = cfg.get("sourceAddresses", {})
    if not isinstance(src, dict):
        raise payload_error(f"{p}sourceAddresses: expected an object")
    for k in ("whiteList", "blackList"):
        if k in src:
            _refs(src[k], f"{p}sourceAddresses.{k}")
    rec = cfg.get("recordingMode")
    if not isinstance(rec, dict) or rec.get("type") not in RECORDING:
        raise payload_error(f"{p}recordingMode.type: one of {', '.join(RECORDING)}")
    if rec.get("activePeriods"):
        raise TalqError(
            422,
            "payloadError",
            f"{p}recordingMode.activePeriods: not supported "
            "(recordingActivePeriodsSupported false)",
        )
    if rec["type"] == "EventRecordingMode":
        se = rec.get("sourceEvents")
        if not isinstance(se, dict):
            raise payload_error(f"{p}recordingMode.sourceEvents: missing")
        for k in ("whiteList", "blackList"):
            if k in se and (
                not isinstance(se[k], list) or not all(isinstance(x, str) for x in se[k])
            ):
                raise payload_error(f"{p}recordingMode.sourceEvents.{k}: a list of event types")
    else:
        if rec["type"] == "PeriodicRecordingMode" or "content" in rec:
            _content(rec.get("content"), f"{p}recordingMode.content")
        if rec["type"] == "PeriodicRecordingMode":
            profs = rec.get("samplingProfiles")
            if not isinstance(profs, list) or not profs:
                raise payload_error(f"{p}recordingMode.samplingProfiles: a non-empty list")
            for i, s in enumerate(profs):
                w = f"{p}recordingMode.samplingProfiles[{i}]"
                if not isinstance(s, dict):
                    raise payload_error(f"{w}: expected an object")
                parse_time(s.get("samplingStartTime"), f"{w}.samplingStartTime")
                if "samplingEndTime" in s:
                    parse_time(s["samplingEndTime"], f"{w}.samplingEndTime")
                if "samplingPeriod" in s:
                    per = duration_s(s["samplingPeriod"], f"{w}.samplingPeriod")
                    if per < MIN_PERIOD_S:
                        raise TalqError(
                            422,
                            "payloadError",
                            f"{w}.samplingPeriod {s['samplingPeriod']}: at least {MIN_PERIOD_S} s",
                        )
    rep = cfg.get("reportingMode")
    if not isinstance(rep, dict) or rep.get("type") not in REPORTING:
        raise payload_error(f"{p}reportingMode.type: one of {', '.join(REPORTING)}")
    if rep["type"] == "ImmediateReportingMode":
        d = rep.get("delay")
        if type(d) is not int or d < 0:
            raise payload_error(f"{p}reportingMode.delay: whole seconds, 0 or more")
    else:
        ts = rep.get("times")
        if not isinstance(ts, list) or not ts:
            raise payload_error(f"{p}reportingMode.times: a non-empty list of hh:mm:ss")
        for i, t in enumerate(ts):
            if not isinstance(t, str) or not _TIME.match(t):
                raise payload_error(f"{p}reportingMode.times[{i}]: {t!r} is not hh:mm:ss")
    return cfg


def sources(
    cfg: dict[str, Any],
    group_nodes: Callable[[str], list[str]],
    node_of: Callable[[str], str | None],
    all_nodes: Callable[[], list[str]],
) -> set[str]:
    """The nodes a logger applies to: the white list less the black list; a black list
    alone is every node less it; neither is none (the spec's table)."""
    src = cfg.get("sourceAddresses") or {}

    def expand(refs: Iterable[dict[str, Any]]) -> set[str]:
        out: set[str] = set()
        for res, addr in _refs(list(refs), "sourceAddresses"):
            if res == "groups":
                out.update(group_nodes(addr))
            else:
                n = node_of(addr)
                if n is not None:
                    out.add(n)
        return out

    if "whiteList" in src:
        base = expand(src["whiteList"])
    elif "blackList" in src:
        base = set(all_nodes())
    else:
        return set()
    return base - expand(src.get("blackList", []))


def wants_event(cfg: dict[str, Any], event_type: str) -> bool:
    se = cfg["recordingMode"].get("sourceEvents") or {}
    if "whiteList" in se:
        ok = event_type in se["whiteList"]
    elif "blackList" in se:
        ok = True
    else:
        return False
    return ok and event_type not in se.get("blackList", [])


def event_entry(node: str, event: str, ts: float, payload: dict[str, Any]) -> dict[str, Any] | None:
    m = EVENTS.get(event)
    if m is None:
        return None
    etype, fid, period = m
    data: dict[str, Any] = {
        "type": "EventLogData",
        "srcAddress": f"{device_address(node)}/{fid}",
        "timestamp": iso(ts),
        "eventType": etype,
    }
    if period:
        data["startEndFlag"] = payload.get("active") is not False
    detail = payload.get("detail")
    if isinstance(detail, str) and detail:
        data["info"] = [{"description": detail[:200], "lang": "en"}]
    return {"data": data}


def sample_instant(cfg: dict[str, Any], after: float | None, now: float) -> float | None:
    """The latest sampling instant in (after, now] of a periodic logger, if any."""
    best = None
    for s in cfg["recordingMode"]["samplingProfiles"]:
        start = parse_time(s["samplingStartTime"], "samplingStartTime")
        end = (
            parse_time(s["samplingEndTime"], "samplingEndTime") if "samplingEndTime" in s else None
        )
        if "samplingPeriod" not in s:  # one sample, at the start (at once if it is past)
            cand = start if start <= now and (after is None or after < start) else None
        else:
            per = duration_s(s["samplingPeriod"], "samplingPeriod")
            if start > now:
                continue
            cand = start + int((now - start) // per) * per
            if after is not None and cand <= after:
                cand = None
        if cand is not None and end is not None and cand > end:
            cand = None
        if cand is not None and (best is None or cand > best):
            best = cand
    return best


def attribute_entries(
    cfg: dict[str, Any],
    dev: dict[str, Any],
    at: float,
    seen: dict[tuple[str, str, str], Any] | None = None,
) -> list[dict[str, Any]]:
    """AttributeLogData entries of a device's `content` attributes (vendor mode: only
    those newer than `seen`, which is updated)."""
    content = cfg["recordingMode"].get("content")
    out = []
    for f in dev["functions"]:
        picks: dict[str, int | None] | None = None
        if content is None:
            picks = {}
        else:
            for c in content:
                fn = c["function"]
                if fn.get("functionId") in (None, f["id"]) and fn.get("functionType") in (
                    None,
                    f["type"],
                ):
                    names = fn.get("attributes")
                    if not names:
                        picks = {}
                        break
                    picks = picks or {}
                    for a in names:
                        picks[a["name"]] = a.get("onChangeThreshold")
        if picks is None:
            continue
        for name, a in f.items():
            if name in ("id", "type") or (picks and name not in picks):
                continue
            key = (dev["address"], f["id"], name)
            if seen is not None:
                mark = (a.get("timestamp"), json.dumps(a.get("value"), sort_keys=True))
                old = seen.get(key)
                if old == mark:
                    continue
                thr = picks.get(name) if picks else None
                if thr and old is not None and _moved_less(old[1], a.get("value"), thr):
                    continue
                seen[key] = mark
            out.append(
                {
                    "data": {
                        "type": "AttributeLogData",
                        "srcAddress": f"{dev['address']}/{f['id']}",
                        "timestamp": a.get("timestamp") or iso(at),
                        "attributeName": name,
                        "attributeValue": a,
                    }
                }
            )
    return out


def _moved_less(old_json: str, new: Any, pct: int) -> bool:
    try:
        old = json.loads(old_json)
    except ValueError:
        return False
    if type(old) not in (int, float) or type(new) not in (int, float) or old == 0:
        return False
    return abs(new - old) / abs(old) * 100 < pct


def report_due(
    cfg: dict[str, Any], oldest_at: float | None, reported: float | None, now: float
) -> bool:
    rep = cfg["reportingMode"]
    if oldest_at is None:
        return False
    if rep["type"] == "ImmediateReportingMode":
        return now - oldest_at >= rep["delay"]
    last = reported if reported is not None else oldest_at
    return any(last < t <= now for t in _times_between(rep["times"], last, now))


def _times_between(times: list[str], lo: float, hi: float) -> list[float]:
    """The instants of the daily report times in (lo, hi] (at most two days looked at)."""
    out = []
    day0 = time.localtime(lo)
    for d in range(0, 3):
        base = time.mktime((day0.tm_year, day0.tm_mon, day0.tm_mday + d, 0, 0, 0, 0, 0, -1))
        for t in times:
            m = _TIME.match(t)
            assert m is not None
            hh, mm, ss, _, tz = m.groups()
            secs = int(hh) * 3600 + int(mm) * 60 + int(ss)
            if tz:
                day = time.strftime("%Y-%m-%d", time.localtime(base))
                inst = parse_time(f"{day}T{hh}:{mm}:{ss}{tz}", "times")
            else:
                inst = base + secs
            if lo < inst <= hi:
                out.append(inst)
    return out


def now() -> float:
    return time.time()
