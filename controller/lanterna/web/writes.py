"""What the console changes: commands to nodes, schedules (validated, previewed, pushed),
fault acknowledgements and rollout states. Each takes the operator, checks the role
(lanterna.operators.can), does the work through the same library as the CLI (the
signed-command Commander, the node's own schedule code, the rollout tables) and writes
one audit record (lanterna.audit) with the result.

Commands run as jobs: the request answers at once with the job's id, a thread sends and
settles (as `lanterna dim` does), and the page polls the job for its progress.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lamp import schedule as fwsched
from lamp.cmd.args import ARGS
from lanterna.audit import Audit, outcome_result
from lanterna.context import Ctx
from lanterna.errors import EXIT_FAILED, LanternaError, Unknown, malformed
from lanterna.fleet import schedules as fleet_schedules
from lanterna.operators import can
from lanterna.store import Store

TIMEOUT_S = 10.0
RETRIES = 2
JOBS_KEPT = 200


class Forbidden(LanternaError):
    """The operator's role does not allow the action (HTTP 403)."""

    def __init__(self, role: str, action: str) -> None:
        super().__init__(f"role {role} may not {action}", EXIT_FAILED)


class Conflict(LanternaError):
    """The thing is not in a state that allows the action (HTTP 409)."""


@dataclass
class Operator:
    user: str
    role: str


@dataclass
class Job:
    id: str
    cmd: str
    total: int
    settled: int = 0
    ok: int = 0
    failed: int = 0
    done: bool = False
    error: str | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "cmd": self.cmd,
            "total": self.total,
            "settled": self.settled,
            "ok": self.ok,
            "failed": self.failed,
            "done": self.done,
            "error": self.error,
            "outcomes": list(self.outcomes),
        }


class Jobs:
    """The console's command jobs, newest JOBS_KEPT kept (in memory)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def new(self, cmd: str, total: int) -> Job:
        j = Job(secrets.token_hex(8), cmd, total)
        with self._lock:
            self._jobs[j.id] = j
            while len(self._jobs) > JOBS_KEPT:
                del self._jobs[next(iter(self._jobs))]
        return j

    def get(self, jid: str) -> Job | None:
        with self._lock:
            return self._jobs.get(jid)


def _target(body: dict[str, Any]) -> tuple[str, str]:
    t = body.get("target")
    if not isinstance(t, dict) or len(t) != 1:
        raise malformed('target: one of {"node": ID}, {"group": NAME}, {"site": NAME}')
    (kind, name), = t.items()  # fmt: skip
    if kind not in ("node", "group", "site") or not isinstance(name, str) or not name:
        raise malformed('target: one of {"node": ID}, {"group": NAME}, {"site": NAME}')
    return kind, name


def _select(store: Store, kind: str, name: str) -> list[Any]:
    if kind == "node":
        return [store.node(name)]
    if kind == "site" and store.site(name) is None:
        raise Unknown(f"unknown site {name!r}")
    nodes = store.nodes(site=name) if kind == "site" else store.nodes(group=name)
    if not nodes:
        raise LanternaError(f"{kind} {name}: no nodes to command", EXIT_FAILED)
    return nodes


def _int_arg(args: dict[str, Any], cmd: str, key: str, given: str) -> int | None:
    v = args.get(given)
    if v is None:
        return None
    lo, hi = ARGS[cmd][key][1], ARGS[cmd][key][2]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise malformed(f"args.{given}: an integer from {lo} to {hi}")
    return v


def command_args(cmd: str, args: Any) -> dict[str, Any]:
    """The node's own argument table (lamp.cmd.args) checks what the console sends."""
    if not isinstance(args, dict):
        raise malformed("args: an object")
    if cmd == "dim":
        if "level" not in args:
            raise malformed("args.level: 0-100, or null to go back to the schedule")
        level = _int_arg(args, "dim", "level", "level")
        out: dict[str, Any] = {"level": level, "fade_s": _int_arg(args, "dim", "fade_s", "fade_s")
                               or 0}  # fmt: skip
        until = _int_arg(args, "dim", "until_s", "until_s")
        if until:
            if level is None:
                raise malformed("args.until_s: nothing to hold when going back to the schedule")
            out["until_s"] = until
        return out
    if cmd == "identify":
        seconds = _int_arg(args, "identify", "seconds", "seconds")
        return {"seconds": seconds or 10}
    raise malformed(f"cmd {cmd!r}: one of dim, identify")


class Writer:
    """The console's writes, on a store per thread (`stores()`), with the broker of `ctx`."""

    def __init__(self, stores: Callable[[], Store], ctx_of: Callable[[], Ctx], prefix: str):
        self.stores = stores
        self.ctx_of = ctx_of
        self.prefix = prefix
        self.jobs = Jobs()

    def _need(self, op: Operator, perm: str, action: str, target: str, nodes: list[str],
              args: dict[str, Any]) -> None:  # fmt: skip
        """Refuse (403) what the role may not do; the refusal is audited too."""
        if not can(op.role, perm):
            self._audit(op, action, target, nodes, args, f"refused: role {op.role}")
            raise Forbidden(op.role, action)

    def _audit(self, op: Operator, action: str, target: str, nodes: list[str],
               args: dict[str, Any], result: str, detail: str | None = None) -> None:  # fmt: skip
        Audit(self.stores()).record(op.user, "web", action, target, nodes, args, result, detail)

    # -- commands ------------------------------------------------------------------------

    def command(self, op: Operator, body: dict[str, Any]) -> Job:
        cmd = body.get("cmd")
        if not isinstance(cmd, str):
            raise malformed("cmd: one of dim, identify")
        args = command_args(cmd, body.get("args", {}))
        kind, name = _target(body)
        self._need(op, cmd, cmd, f"{kind} {name}", [name] if kind == "node" else [], args)
        nodes = _select(self.stores(), kind, name)
        return self._run(op, cmd, args, f"{kind} {name}", nodes, cmd, args)

    def _run(self, op: Operator, cmd: str, args: dict[str, Any], target: str, nodes: list[Any],
             action: str, audit_args: dict[str, Any],
             after: Callable[[Store, list[Any]], None] | None = None) -> Job:  # fmt: skip
        from lanterna.fleet.commander import Commander, SendError

        job = self.jobs.new(cmd, len(nodes))
        broker = self.ctx_of().broker()  # no broker: the request fails now, not the job

        def progress(o: Any) -> None:
            job.settled += 1
            if o.status == "ok":
                job.ok += 1
            else:
                job.failed += 1
            job.outcomes.append(_outcome(o))

        def go() -> None:
            ctx = Ctx(self.ctx_of().db, self.ctx_of().broker_url)
            ids = [n.id for n in nodes]
            try:
                store = ctx.store()
                outs = Commander(store, self.prefix).send_mqtt(
                    broker, nodes, cmd, args, TIMEOUT_S, RETRIES, progress
                )
                job.outcomes = [_outcome(o) for o in outs]
                job.ok = sum(1 for o in outs if o.status == "ok")
                job.failed, job.settled = len(outs) - job.ok, len(outs)
                if after is not None:
                    after(store, outs)
                result = outcome_result(outs)
            except (SendError, LanternaError) as e:
                job.error = result = str(e)
            except Exception as e:  # the job's end is always reported, and audited
                job.error = result = f"{type(e).__name__}: {e}"
            finally:
                job.done = True
            try:
                Audit(ctx.store()).record(op.user, "web", action, target, ids, audit_args, result)
            finally:
                ctx.close()

        threading.Thread(target=go, name=f"job-{job.id}", daemon=True).start()
        return job

    # -- schedules -----------------------------------------------------------------------

    def schedule_push(self, op: Operator, body: dict[str, Any]) -> Job:
        obj, sched = parse_schedule(body)
        kind, name = _target(body)
        self._need(op, "schedule.push", "schedule", f"{kind} {name}",
                   [name] if kind == "node" else [], {"schedule": sched.id})  # fmt: skip
        store = self.stores()
        nodes = _select(store, kind, name)
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        sid = store.add_schedule(str(obj.get("id") or "schedule"), text, digest)

        def pushed(st: Store, outs: list[Any]) -> None:
            for x in outs:
                if x.status == "ok" and x.command:
                    st.schedule_pushed(sid, x.node, x.command)

        audit_args = {"schedule": sched.id, "sha256": digest}
        return self._run(op, "schedule", {"schedule": obj}, f"{kind} {name}", nodes, "schedule",
                         audit_args, pushed)  # fmt: skip

    # -- faults and rollouts -------------------------------------------------------------

    def fault_ack(self, op: Operator, body: dict[str, Any]) -> dict[str, Any]:
        node, fault = body.get("node"), body.get("fault")
        if not isinstance(node, str) or not isinstance(fault, str) or not fault:
            raise malformed("node, fault: the node's id and the fault's name")
        self._need(op, "fault.ack", "fault.ack", f"node {node}", [node], {"fault": fault})
        store = self.stores()
        if fault not in store.status([store.node(node)])[0]["faults"]:
            raise Conflict(f"node {node} has no active fault {fault!r}", EXIT_FAILED)
        now = time.time()
        with store.tx() as db:
            db.execute(
                "INSERT INTO fault_acks (node, fault, by_whom, at) VALUES (?,?,?,?)"
                " ON CONFLICT (node, fault) DO UPDATE SET by_whom=excluded.by_whom,"
                " at=excluded.at",
                (node, fault, op.user, now),
            )
        self._audit(op, "fault.ack", f"node {node}", [node], {"fault": fault}, "ok")
        return {"acknowledged": {"by": op.user, "at": now}}

    def rollout(self, op: Operator, rid: int, verb: str) -> dict[str, Any]:
        from lanterna.ota import rollout_store as ro
        from lanterna.ota.plan import RolloutError

        if verb not in ("pause", "resume", "abort"):
            raise Unknown(f"no rollout action {verb!r}: pause, resume or abort")
        self._need(op, f"rollout.{verb}", f"rollout.{verb}", f"rollout {rid}", [], {})
        rs = ro.Rollouts(self.stores())
        try:
            r = rs.get(rid)
        except RolloutError as e:
            raise Unknown(str(e)) from None
        allowed = {"pause": ("running",), "resume": ("paused",), "abort": ("running", "paused")}
        if r["state"] not in allowed[verb]:
            raise Conflict(f"rollout {rid} is {r['state']}: nothing to {verb}", EXIT_FAILED)
        to = {"pause": "paused", "abort": "aborted", "resume": "running"}[verb]
        rs.set_state(rid, to)
        self._audit(op, f"rollout.{verb}", f"rollout {rid}", [], {}, "ok")
        return {"id": rid, "state": to}


def _outcome(o: Any) -> dict[str, Any]:
    return {"node": o.node, "status": o.status, "error": o.error, "detail": o.detail, "ms": o.ms}


def parse_schedule(body: dict[str, Any], key: str = "") -> tuple[dict, fwsched.Schedule]:
    """A schedule given as an object (``body``) or JSON text (``text``), checked by the
    node's own parser: errors say where, as `lanterna schedule validate` does."""
    where = f"{key}." if key else ""
    if "body" in body:
        obj = body["body"]
    elif isinstance(body.get("text"), str):
        try:
            obj = json.loads(body["text"])
        except json.JSONDecodeError as e:
            raise Invalid(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                          f"{where}text") from None  # fmt: skip
    else:
        raise Invalid("give the schedule as `body` (an object) or `text` (JSON)", key or "body")
    if not isinstance(obj, dict):
        raise Invalid("a schedule is a JSON object", f"{where}body")
    try:
        return obj, fwsched.parse(obj)
    except fwsched.ScheduleError as e:
        # the node's parser says "schedule: PATH: what" (lamp.schedule_parse)
        msg = str(e)
        parts = msg.split(": ", 2)
        path = parts[1] if len(parts) == 3 and parts[0] == "schedule" else ""
        path = path if path and " " not in path else ""
        raise Invalid(msg, f"{where}body" + (f".{path}" if path else "")) from None


class Invalid(LanternaError):
    """A malformed input with where it is (HTTP 400 with `where`)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message, 4)
        self.where = where


def validate(body: dict[str, Any]) -> dict[str, Any]:
    obj, sched = parse_schedule(body)
    return {
        "ok": True,
        "id": sched.id,
        "summary": {"profiles": len(sched.profiles), "calendar": len(sched.calendar)},
        "body": obj,
    }


def _site(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("site")
    if not isinstance(name, str):
        raise Invalid("site: the name of a site", "site")
    s = store.site(name)
    if s is None:
        raise Unknown(f"unknown site {name!r}")
    return s


def _rated(body: dict[str, Any]) -> int | None:
    r = body.get("rated_w")
    if r is None:
        return None
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= 1000:
        raise Invalid("rated_w: an integer from 1 to 1000 (W)", "rated_w")
    return r


def preview(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    _, sched = parse_schedule(body)
    s = _site(store, body)
    try:
        night = date.fromisoformat(str(body.get("date")))
    except ValueError:
        raise Invalid("date: YYYY-MM-DD", "date") from None
    p = fleet_schedules.preview(sched, night, s["lat"], s["lon"], s["tz"], _rated(body))
    out = p.as_json()
    out["site"] = s["name"]
    out["levels"] = [[t, lvl] for t, lvl in p.levels]
    return out


def year(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    _, sched = parse_schedule(body)
    s = _site(store, body)
    y = body.get("year")
    if isinstance(y, bool) or not isinstance(y, int) or not 1971 <= y <= 2199:
        raise Invalid("year: a year from 1971 to 2199", "year")
    against = None
    if body.get("against") is not None:
        if not isinstance(body["against"], dict):
            raise Invalid('against: {"body": ...} or {"text": ...}', "against")
        _, against = parse_schedule(body["against"], "against")
    y_p = fleet_schedules.year(sched, y, s["lat"], s["lon"], s["tz"], rated_w=_rated(body),
                               against=against)  # fmt: skip
    out = y_p.as_json()
    out["site"] = s["name"]
    return out
