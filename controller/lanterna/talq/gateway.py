"""The Gateway API's operations over the store and the signed-command library, apart from
HTTP (lanterna.talq.app maps them to routes). Each raises ``TalqError`` with the TALQ
error key and a description that says what and where; a refused request changes nothing.

Writes that reach the poles (a calendar assigned, an override) are accepted (202) and
delivered in the background by lanterna.fleet.commander, exactly as `lanterna schedule
push` and `lanterna dim` deliver them: signed, counted, retried, recorded in `commands`
and in the audit log (who: ``cms:<its address>``, via ``talq``). When the gateway has a
CMS (--cms-url), the devices affected are then reported to it with a PATCH /devices
(lanterna.talq.cms), as the Gateway API's 202 answers promise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lanterna.audit import Audit, outcome_result
from lanterna.bridge import source
from lanterna.context import Ctx
from lanterna.errors import LanternaError
from lanterna.store import Store
from lanterna.talq import calendars, devices
from lanterna.talq.model import (
    TalqError,
    device_address,
    level_state,
    not_found,
    parse_time,
    payload_error,
)
from lanterna.talq.state import State

log = logging.getLogger("lanterna.talq")

TIMEOUT_S = 10.0
RETRIES = 2
MAX_GROUP_MEMBERS = 250_000
CONTROL = {
    "name": "ControlService",
    "supportedTypes": ["AbsoluteActivePeriod", "AstroClockTimeControl", "ccDate", "ccDay"],
    "dayOffset": 12,
    "ccDateSupport": "full",
    "ccDaySupport": "noOccurrences",
    "programSecondsSupported": False,
    "events": [{"type": "invalidCalendar"}, {"type": "invalidProgram"}],
}
SERVICES = [
    {
        "name": "ConfigurationService",
        "commissioningSupported": False,
        "devicesPaginationSupported": True,
        "supportedProfiles": ["lighting"],
    },
    CONTROL,
    {
        "name": "DataCollectService",
        "supportedModes": [
            "EventRecordingMode",
            "PeriodicRecordingMode",
            "VendorRecordingMode",
            "ImmediateReportingMode",
            "ScheduledReportingMode",
        ],
        "samplingPeriodSupported": True,
        "attributeScopeSupported": False,
        "recordingActivePeriodsSupported": False,
        "events": [{"type": "invalidLoggerConfig"}],
    },
    {"name": "GroupManagementService", "maximumGroupSize": MAX_GROUP_MEMBERS},
]
RESOURCES = ("devices", "groups")


class Gateway:
    def __init__(
        self,
        target: Path | str,
        broker_url: str | None,
        prefix: str,
        *,
        on_devices: Callable[[list[str], str | None], None] | None = None,
    ) -> None:
        self.target, self.broker_url, self.prefix = target, broker_url, prefix
        self._local = threading.local()
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}  # device address -> node id
        self._boards: dict[str, dict[str, Any] | None] = {}
        self.on_devices = on_devices  # nodes changed by a request (its talqRequestId)
        self.jobs: list[threading.Thread] = []

    # -- per thread ----------------------------------------------------------------------

    def ctx(self) -> Ctx:
        c = getattr(self._local, "ctx", None)
        if c is None:
            c = self._local.ctx = Ctx(self.target, self.broker_url)
        return c

    def store(self) -> Store:
        return self.ctx().store()

    def state(self) -> State:
        return State(self.store())

    # -- identity ------------------------------------------------------------------------

    def node_of(self, address: str) -> str:
        n = self._addresses.get(address)
        if n is None:
            with self._lock:
                ids = [r[0] for r in self.store().tuples("SELECT id FROM nodes")]
                self._addresses = {device_address(i): i for i in ids}
            n = self._addresses.get(address)
        if n is None:
            raise not_found("devices", address)
        return n

    def board(self, name: str) -> dict[str, Any] | None:
        if name not in self._boards:
            from lanterna.boards import load_board

            try:
                self._boards[name] = load_board(name)
            except (LanternaError, OSError):
                self._boards[name] = None  # the node's telemetry still shows what it has
        return self._boards[name]

    # -- devices -------------------------------------------------------------------------

    def _pages(self, ids: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        store = self.store()
        st = State(store)
        for page in source.nodes(store, ids=ids):
            names = [n.node for n in page]
            nodes = {n.id: n for n in store.nodes(ids=names)}
            status = {s["node"]: s for s in store.status(list(nodes.values()))}
            assigned = st.assigned(names)
            overrides = st.overrides(names)
            out = []
            for n in page:
                node = nodes[n.node]
                o = overrides.get(n.node) or {}
                x = devices.Extra(
                    calendar=assigned.get(n.node),
                    target=o.get("command"),
                    target_at=o.get("at"),
                    feedback=o.get("feedback"),
                    feedback_at=o.get("at") if o.get("feedback") else None,
                    board=node.board,
                    firmware=status.get(n.node, {}).get("firmware"),
                    network=(self.board(node.board) or {}).get("network"),
                )
                out.append(devices.device(n, self.board(node.board), x))
            yield out

    def devices(
        self, classes: Sequence[str] | None, offset: int | None, limit: int | None
    ) -> list[dict[str, Any]]:
        if offset is not None and offset < 0:
            raise TalqError(400, "parameterValueNotValid", f"offset {offset}: at least 0")
        if limit is not None and limit < 0:
            raise TalqError(400, "parameterValueNotValid", f"limit {limit}: at least 0")
        ids = self._ids_of_classes(classes)
        if offset is not None or limit is not None:
            ids = ids[offset or 0 :][: limit if limit is not None else None]
        return [d for page in self._pages(ids) for d in page]

    def _ids_of_classes(self, classes: Sequence[str] | None) -> list[str]:
        rows = self.store().tuples("SELECT id, board FROM nodes ORDER BY id")
        if not classes:
            return [r[0] for r in rows]
        want = set(classes)
        return [r[0] for r in rows if devices.class_name(r[1]) in want]

    def count(self, classes: Sequence[str] | None) -> int:
        return len(self._ids_of_classes(classes))

    def device(self, address: str) -> dict[str, Any]:
        node = self.node_of(address)
        return next(self._pages([node]))[0]

    def function(self, address: str, fid: str) -> dict[str, Any]:
        d = self.device(address)
        for f in d["functions"]:
            if f["id"] == fid:
                return f
        raise not_found("devices", f"{address}/{fid}", f"device {address} has no function {fid!r}")

    def attribute(self, address: str, fid: str, name: str) -> dict[str, Any]:
        f = self.function(address, fid)
        a = f.get(name) if name not in ("id", "type") else None
        if not isinstance(a, dict):
            known = name in devices.attribute_names(fid)
            raise not_found(
                "devices",
                f"{address}/{fid}/{name}",
                f"{fid}.{name} of device {address}: no value known yet"
                if known
                else f"function {fid!r} of device {address} has no attribute {name!r}",
            )
        return a

    def boards(self) -> list[tuple[str, dict[str, Any] | None]]:
        names = [r[0] for r in self.store().tuples("SELECT DISTINCT board FROM nodes")]
        return [(b, self.board(b)) for b in names]

    def device_classes(self) -> list[dict[str, Any]]:
        return devices.classes(self.boards())

    def device_class(self, name: str) -> dict[str, Any]:
        for c in self.device_classes():
            if c["name"] == name:
                return c
        raise not_found("device-classes", name)

    # -- device writes -------------------------------------------------------------------

    def patch_devices(
        self, body: Any, who: str, request: str | None, *, address: str | None = None
    ) -> int:
        """PATCH /devices (a list) or /devices/{address} (one): only the lamp actuator's
        calendarID and targetLightCommand are written; read-only attributes are accepted
        and left alone, as the spec says; anything else is a conflict with the class."""
        items = [body] if address is not None else body
        if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
            raise payload_error("expected a list of Device objects")
        plan: list[tuple[str, str, Any, str]] = []  # (node, what, value, where)
        for i, d in enumerate(items):
            where = "device" if address is not None else f"[{i}]"
            addr = address if address is not None else d.get("address")
            if address is not None and d.get("address") not in (None, address):
                raise payload_error(f"address {d.get('address')!r}: not the path's {address}")
            if not isinstance(addr, str):
                raise payload_error(f"{where}.address: missing")
            node = self.node_of(addr)
            fs = d.get("functions", [])
            if not isinstance(fs, list):
                raise payload_error(f"{where}.functions: expected a list")
            for j, f in enumerate(fs):
                plan += self._plan_function(node, f, f"{where}.functions[{j}]")
        return self._apply(plan, who, request)

    def patch_function(
        self, address: str, fid: str, body: Any, who: str, request: str | None
    ) -> int:
        node = self.node_of(address)
        if not isinstance(body, dict):
            raise payload_error("expected a Function object")
        if body.get("id") not in (None, fid):
            raise payload_error(f"id {body.get('id')!r}: not the path's {fid!r}")
        return self._apply(self._plan_function(node, {**body, "id": fid}, "function"), who, request)

    def patch_attribute(
        self, address: str, fid: str, name: str, body: Any, who: str, request: str | None
    ) -> int:
        node = self.node_of(address)
        ftype = devices.function_type(fid) if fid in devices._DESC else None
        return self._apply(
            self._plan_function(node, {"id": fid, "type": ftype, name: body}, "attribute"),
            who,
            request,
        )

    def _plan_function(self, node: str, f: Any, where: str) -> list[tuple[str, str, Any, str]]:
        if not isinstance(f, dict) or not isinstance(f.get("id"), str):
            raise payload_error(f"{where}: expected a Function with an id")
        fid = f["id"]
        have = devices.functions_of(self.board(self.store().node(node).board))
        if fid not in have:
            raise TalqError(
                422,
                "resourceConflict",
                f"{where}: device of node {node} has no function {fid!r} (its class has "
                f"{', '.join(have)})",
            )
        ftype = devices.function_type(fid)
        if f.get("type") not in (None, ftype):
            raise TalqError(
                422,
                "resourceConflict",
                f"{where}.type: {f.get('type')!r}, the function {fid!r} is {ftype}",
            )
        plan = []
        for k, v in f.items():
            if k in ("id", "type"):
                continue
            if k not in devices.attribute_names(fid):
                raise TalqError(
                    422,
                    "resourceConflict",
                    f"{where}.{k}: {ftype} {fid!r} has no attribute {k!r} here",
                )
            if (fid, k) not in devices.WRITABLE:
                continue  # read-only: accepted, left alone (AttributeDesc.readOnly)
            if not isinstance(v, dict) or "value" not in v:
                raise payload_error(f"{where}.{k}: expected an attribute with a value")
            plan.append((node, k, v["value"], f"{where}.{k}.value"))
        return plan

    def _apply(self, plan: list[tuple[str, str, Any, str]], who: str, request: str | None) -> int:
        """Check the whole plan, then run it; -> 200 (nothing to send) or 202."""
        cals: dict[str, list[str]] = {}
        overrides: list[tuple[str, dict[str, Any] | None, str]] = []
        for node, what, value, where in plan:
            if what == "calendarID":
                if not isinstance(value, str):
                    raise payload_error(f"{where}: expected a calendar id")
                cals.setdefault(value, []).append(node)
            else:
                overrides.append((node, self.check_command(value, where), where))
        schedules = {c: self.translate(c, "calendarID") for c in cals}
        if cals or overrides:
            self.ctx().broker()  # no broker: refused now, before anything is written
        for c, nodes in cals.items():
            self._push_calendar(c, schedules[c], nodes, who, request)
        if overrides:
            by: dict[str, list[str]] = {}
            cmds: dict[str, dict[str, Any] | None] = {}
            for node, cmd, _ in overrides:
                key = json.dumps(cmd, sort_keys=True)
                by.setdefault(key, []).append(node)
                cmds[key] = cmd
            for key, nodes in by.items():
                self._send_override(nodes, cmds[key], who, request)
        return 202 if cals or overrides else 200

    # -- groups --------------------------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        return [self._group(g["group"]) for g in self.store().groups()]

    def group(self, address: str) -> dict[str, Any]:
        if not any(g["group"] == address for g in self.store().groups()):
            raise not_found("groups", address)
        return self._group(address)

    def _group(self, name: str) -> dict[str, Any]:
        extra = self.state().get("group", name) or {}
        members = [
            {"resource": "devices", "address": device_address(n.id)}
            for n in self.store().nodes(group=name)
        ]
        g: dict[str, Any] = {
            "address": name,
            "ownerCMS": extra.get("ownerCMS", ""),
            "members": members,
        }
        if "purpose" in extra:
            g["purpose"] = extra["purpose"]
        return g

    def _members(self, members: Any, where: str) -> list[str]:
        if not isinstance(members, list):
            raise payload_error(f"{where}: expected a list of ResourceReference")
        if len(members) > MAX_GROUP_MEMBERS:
            raise TalqError(
                422,
                "serviceConstraintExceeded",
                f"{where}: {len(members)} members, at most {MAX_GROUP_MEMBERS}",
            )
        out = []
        for i, m in enumerate(members):
            w = f"{where}[{i}]"
            if not isinstance(m, dict) or not isinstance(m.get("address"), str):
                raise payload_error(f"{w}: expected a ResourceReference")
            res = str(m.get("resource", "")).strip("/")
            if res == "groups":
                raise TalqError(
                    422,
                    "resourceConflict",
                    f"{w}: a group inside a group is not supported (Lanterna groups hold "
                    "poles); list the devices",
                )
            if res != "devices":
                raise payload_error(f"{w}.resource {m.get('resource')!r}: expected devices")
            addr = m["address"].split("/", 1)[0]
            try:
                out.append(self.node_of(addr))
            except TalqError:
                raise TalqError(
                    422, "relatedResourceNotFound", f"{w}: no device {addr}", [("devices", addr)]
                ) from None
        return out

    def _check_group(self, g: Any, where: str) -> tuple[str, list[str], dict[str, Any]]:
        from lanterna.fleet.registry import check_name

        if not isinstance(g, dict):
            raise payload_error(f"{where}: expected a Group object")
        for k in ("address", "members", "ownerCMS"):
            if k not in g:
                raise payload_error(f"{where}.{k}: missing")
        addr = g["address"]
        if not isinstance(addr, str):
            raise payload_error(f"{where}.address: expected a string")
        try:
            check_name("group", addr)
        except LanternaError as e:
            raise TalqError(422, "payloadError", f"{where}.address: {e}") from None
        if not isinstance(g["ownerCMS"], str):
            raise payload_error(f"{where}.ownerCMS: expected a string")
        nodes = self._members(g["members"], f"{where}.members")
        extra = {"ownerCMS": g["ownerCMS"]}
        if "purpose" in g:
            extra["purpose"] = g["purpose"]
        return addr, nodes, extra

    def put_groups(self, body: Any, create: bool) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise payload_error("expected a list of Group objects")
        checked = [self._check_group(g, f"[{i}]") for i, g in enumerate(body)]
        have = {g["group"] for g in self.store().groups()}
        for addr, _, _ in checked:
            if create and addr in have:
                raise TalqError(
                    409, "resourceConflict", f"group {addr!r} exists", [("groups", addr)]
                )
            if not create and addr not in have:
                raise not_found("groups", addr)
        for addr, nodes, extra in checked:
            self._write_group(addr, nodes, extra)
        return [self._group(a) for a, _, _ in checked]

    def put_group(self, address: str, body: Any) -> dict[str, Any]:
        if isinstance(body, dict) and body.get("address") not in (None, address):
            raise payload_error(f"address {body.get('address')!r}: not the path's {address!r}")
        addr, nodes, extra = self._check_group(
            {**(body or {}), "address": address} if isinstance(body, dict) else body, "group"
        )
        self.group(address)
        self._write_group(addr, nodes, extra)
        return self._group(addr)

    def _write_group(self, name: str, nodes: list[str], extra: dict[str, Any]) -> None:
        store = self.store()
        if not any(g["group"] == name for g in store.groups()):
            store.put_group(name, "from the TALQ CMS")
        now = {n.id for n in store.nodes(group=name)}
        store.group_remove(name, sorted(now - set(nodes)))
        store.group_add(name, sorted(set(nodes) - now))
        self.state().put("group", [(name, extra)])

    def delete_group(self, address: str) -> dict[str, Any]:
        g = self.group(address)
        self.store().remove_group(address)
        self.state().delete("group", address)
        return g

    def put_members(self, address: str, body: Any) -> list[dict[str, Any]]:
        self.group(address)
        nodes = self._members(body, "members")
        extra = self.state().get("group", address) or {"ownerCMS": ""}
        self._write_group(address, nodes, extra)
        return self._group(address)["members"]

    def member_count(self, address: str) -> int:
        return len(self.group(address)["members"])

    def delete_member(self, address: str, resource: str, member: str) -> dict[str, Any]:
        self.group(address)
        if resource != "devices":
            raise not_found("groups", f"{address}/members/{resource}/{member}")
        node = self.node_of(member)
        if node not in {n.id for n in self.store().nodes(group=address)}:
            raise not_found(
                "groups",
                f"{address}/members/devices/{member}",
                f"device {member} is not a member of group {address!r}",
            )
        self.store().group_remove(address, [node])
        return {"resource": "devices", "address": member}

    # -- calendars and control programs --------------------------------------------------

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return self.state().all(kind)

    def object(self, kind: str, oid: str) -> dict[str, Any]:
        o = self.state().get(kind, oid)
        if o is None:
            raise not_found(_RES[kind], oid)
        return o

    def _checked(self, kind: str, o: Any, where: str) -> dict[str, Any]:
        try:
            c = calendars.check_calendar(o) if kind == "calendar" else calendars.check_program(o)
        except calendars.Untranslatable as e:
            raise payload_error(f"{where}.{e.where}: {e.message}".replace("..", ".")) from None
        if kind == "program":
            try:  # what the node format cannot say is refused now, not at assignment
                calendars.to_schedule(
                    {"id": "check", "ownerCMS": "", "rules": [], "defaultProgram": c["id"]},
                    {c["id"]: c},
                )
            except calendars.Untranslatable as e:
                raise TalqError(422, "payloadError", f"{where}.{e.where}: {e.message}") from None
        return c

    def put_objects(
        self, kind: str, body: Any, create: bool, who: str, request: str | None
    ) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise payload_error(f"expected a list of {_TYPE[kind]} objects")
        checked = [self._checked(kind, o, f"[{i}]") for i, o in enumerate(body)]
        ids = [c["id"] for c in checked]
        if len(set(ids)) != len(ids):
            raise payload_error("the same id twice in one request")
        st = self.state()
        have = set(st.ids(kind))
        for oid in ids:
            if create and oid in have:
                raise TalqError(
                    409, "resourceConflict", f"{_TYPE[kind]} {oid!r} exists", [(_RES[kind], oid)]
                )
            if not create and oid not in have:
                raise not_found(_RES[kind], oid)
        self._refresh(kind, {c["id"]: c for c in checked}, who, request)
        return checked

    def put_object(
        self, kind: str, oid: str, body: Any, who: str, request: str | None
    ) -> dict[str, Any]:
        if isinstance(body, dict) and body.get("id") not in (None, oid):
            raise payload_error(f"id {body.get('id')!r}: not the path's {oid!r}")
        c = self._checked(kind, {**body, "id": oid} if isinstance(body, dict) else body, kind)
        self.object(kind, oid)
        self._refresh(kind, {oid: c}, who, request)
        return c

    def _refresh(
        self, kind: str, new: dict[str, dict[str, Any]], who: str, request: str | None
    ) -> None:
        """Store calendars or programs; the calendars assigned to nodes that they change
        are translated again (all must translate, else nothing is stored) and pushed."""
        st = self.state()
        cal_ids = (
            list(new)
            if kind == "calendar"
            else [c["id"] for c in st.all("calendar") if set(calendars.program_refs(c)) & set(new)]
        )
        used = {c: st.users_of(c) for c in cal_ids}
        pushes = {}
        for c, nodes in used.items():
            if nodes:
                pushes[c] = self.translate(c, "calendar", **{kind: new})
        if pushes:
            self.ctx().broker()
        st.put(kind, list(new.items()))
        for c, sched in pushes.items():
            self._push_calendar(c, sched, used[c], who, request)

    def delete_object(self, kind: str, oid: str) -> dict[str, Any]:
        o = self.object(kind, oid)
        st = self.state()
        if kind == "calendar" and st.users_of(oid):
            raise TalqError(
                422,
                "deletingResourceIsReferred",
                f"calendar {oid!r} is the calendarID of {len(st.users_of(oid))} lamp actuators",
                [("calendars", oid)],
            )
        if kind == "program":
            users = [c["id"] for c in st.all("calendar") if oid in calendars.program_refs(c)]
            if users:
                raise TalqError(
                    422,
                    "deletingResourceIsReferred",
                    f"control program {oid!r} is used by calendar(s) {', '.join(users)}",
                    [("calendars", u) for u in users],
                )
        st.delete(kind, oid)
        return o

    def translate(
        self, calendar: str, where: str, **over: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The Lanterna schedule of a stored calendar (with `over` objects in place of the
        stored ones); TalqError 422 naming what the node format cannot say."""
        st = self.state()
        cal = (over.get("calendar") or {}).get(calendar) or st.get("calendar", calendar)
        if cal is None:
            raise TalqError(
                422,
                "relatedResourceNotFound",
                f"{where}: no calendar {calendar!r}",
                [("calendars", calendar)],
            )
        progs = {}
        for p in calendars.program_refs(cal):
            o = (over.get("program") or {}).get(p) or st.get("program", p)
            if o is not None:
                progs[p] = o
        try:
            return calendars.to_schedule(cal, progs)
        except calendars.Untranslatable as e:
            key = (
                "relatedResourceNotFound"
                if e.message.startswith("no control program")
                else "payloadError"
            )
            raise TalqError(
                422,
                key,
                f"calendar {calendar!r}: {e.where}: {e.message}",
                [("calendars", calendar)],
            ) from None

    def lanterna_calendars(self) -> list[dict[str, Any]]:
        """Schedules written with the CLI or the console, as TALQ calendars: the newest of
        each name that TALQ can express (lanterna.talq.calendars.from_schedule)."""
        rows = self.store().tuples("SELECT name, body FROM schedules ORDER BY id")
        newest = {r[0]: r[1] for r in rows}
        out = []
        for name, body in sorted(newest.items()):
            if name.startswith("talq-"):
                continue
            try:
                cal, _ = calendars.from_schedule(json.loads(body), "")
            except (calendars.Untranslatable, ValueError):
                continue
            out.append(cal)
        return out

    # -- assignments ---------------------------------------------------------------------

    def targets(self, refs: Any, where: str, key: str) -> list[str]:
        """Nodes of a list of ResourceReference (devices, their functions, groups)."""
        if not isinstance(refs, list) or not refs:
            raise payload_error(f"{where}: expected a non-empty list of ResourceReference")
        out: list[str] = []
        for i, r in enumerate(refs):
            w = f"{where}[{i}]"
            if not isinstance(r, dict) or not isinstance(r.get("address"), str):
                raise payload_error(f"{w}: expected a ResourceReference")
            res = str(r.get("resource", "")).strip("/")
            addr = r["address"].strip("/")
            if res == "devices":
                parts = addr.split("/")
                try:
                    node = self.node_of(parts[0])
                except TalqError:
                    raise TalqError(
                        422, key, f"{w}: no device {parts[0]}", [("devices", parts[0])]
                    ) from None
                if len(parts) > 1 and parts[1] != devices.ACTUATOR:
                    raise TalqError(
                        422,
                        key,
                        f"{w}: function {parts[1]!r} is not a lamp "
                        f"actuator (use {devices.ACTUATOR})",
                    )
                out.append(node)
            elif res == "groups":
                if not any(g["group"] == addr for g in self.store().groups()):
                    raise TalqError(422, key, f"{w}: no group {addr!r}", [("groups", addr)])
                out += [n.id for n in self.store().nodes(group=addr)]
            else:
                raise TalqError(422, key, f"{w}.resource {r.get('resource')!r}: devices or groups")
        return sorted(set(out))

    def assign(self, body: Any, who: str, request: str | None) -> int:
        if not isinstance(body, dict):
            raise payload_error("expected an AssignCommand object")
        for k in ("addresses", "entity"):
            if k not in body:
                raise payload_error(f"{k}: missing")
        ent = body["entity"]
        if ent is not None and (
            not isinstance(ent, dict) or not isinstance(ent.get("address"), str)
        ):
            raise payload_error("entity: expected a ResourceReference or null")
        if ent is not None and str(ent.get("resource", "")).strip("/") != "calendars":
            raise TalqError(
                422,
                "assignmentEntityNotValid",
                f"entity.resource {ent.get('resource')!r}: only calendars can be "
                "assigned here (no lamp, luminaire or driver types)",
            )
        nodes = self.targets(body["addresses"], "addresses", "assignmentAddressNotValid")
        st = self.state()
        if ent is not None:
            self.translate(ent["address"], "entity.address")
            self.ctx().broker()
        n = len(st.ids("assign"))
        st.put("assign", [(f"{n + 1:08d}", body)])
        if ent is None:  # unassigned: the nodes keep the schedule they run
            with st.store.tx() as db:
                for node in nodes:
                    db.execute("DELETE FROM talq_assign WHERE node=?", (node,))
            return 201
        cal = ent["address"]
        sched = self.translate(cal, "entity.address")
        self._push_calendar(cal, sched, nodes, who, request)
        return 202

    def _push_calendar(
        self, calendar: str, sched: dict[str, Any], nodes: list[str], who: str, request: str | None
    ) -> None:
        if not nodes:
            return
        store = self.store()
        text = json.dumps(sched, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        sid = store.add_schedule(sched["id"], text, digest)
        State(store).assign(nodes, calendar, sid, {})

        def after(st: Store, outs: list[Any]) -> None:
            res = {}
            for x in outs:
                res[x.node] = "ok" if x.status == "ok" else f"{x.status}: {x.error or ''}"
                if x.status == "ok" and x.command:
                    st.schedule_pushed(sid, x.node, x.command)
            State(st).assign(nodes, calendar, sid, res)

        self._job(
            "schedule",
            {"schedule": sched},
            nodes,
            who,
            f"calendar {calendar}",
            {"schedule": sched["id"], "sha256": digest, "calendar": calendar},
            after,
            request,
        )

    # -- overrides -----------------------------------------------------------------------

    def check_command(self, c: Any, where: str) -> dict[str, Any] | None:
        """A TALQ Command for a lamp actuator, checked; None: back to normal operation."""
        if c is None:
            return None
        if not isinstance(c, dict):
            raise payload_error(f"{where}: expected a Command object")
        state = c.get("state")
        if not isinstance(state, dict) or "name" not in state:
            raise payload_error(f"{where}.state: missing (a Command needs a state)")
        if state["name"] != "LevelState":
            raise TalqError(
                422,
                "overrideCommandNotValid",
                f"{where}.state.name {state['name']!r}: a lamp actuator takes a LevelState",
            )
        v = state.get("value")
        if type(v) is not int or not 0 <= v <= 100:
            raise TalqError(
                422,
                "overrideCommandNotValid",
                f"{where}.state.value {v!r}: an integer level 0..100",
            )
        for k in ("rampToLevelTime", "rampFromLevelTime"):
            r = c.get(k)
            if r is not None and (
                type(r) not in (int, float) or not 0 <= r <= 3600 or float(r) != int(r)
            ):
                raise TalqError(
                    422,
                    "overrideCommandNotValid",
                    f"{where}.{k} {r!r}: whole seconds 0..3600 (the node fades in whole seconds)",
                )
        if c.get("rampFromLevelTime"):
            raise TalqError(
                422,
                "overrideCommandNotValid",
                f"{where}.rampFromLevelTime: the node returns to its schedule at "
                "once when an override expires; a fade back is not supported",
            )
        reason = c.get("reason", "override")
        if reason not in ("default", "override", "sensor", "program"):
            raise payload_error(f"{where}.reason {reason!r}: default, override, sensor, program")
        now = time.time()
        if "start" in c:
            start = parse_time(c["start"], f"{where}.start")
            if start > now + 5:
                raise TalqError(
                    422,
                    "overrideCommandNotValid",
                    f"{where}.start {c['start']}: a delayed start is not supported; "
                    "send the override when it should start",
                )
        if "expiration" in c:
            end = parse_time(c["expiration"], f"{where}.expiration")
            if end <= now:
                raise TalqError(
                    422,
                    "overrideCommandNotValid",
                    f"{where}.expiration {c['expiration']}: already past",
                )
            if end - now > 604800:
                raise TalqError(
                    422,
                    "overrideCommandNotValid",
                    f"{where}.expiration {c['expiration']}: at most 7 days ahead",
                )
        for k in ("cmsRefId", "refAddress"):
            if k in c and not isinstance(c[k], str):
                raise payload_error(f"{where}.{k}: expected a string")
        return c

    def override(self, body: Any, who: str, request: str | None) -> int:
        if not isinstance(body, dict):
            raise payload_error("expected an OverrideCommand object")
        if "addresses" not in body:
            raise TalqError(
                422,
                "overrideAddressNotValid",
                "addresses: missing (external sensor notifications, an override "
                "with no addresses, are not supported: no dynamic controls)",
            )
        cmd = self.check_command(body.get("targetCommand"), "targetCommand")
        nodes = self.targets(body["addresses"], "addresses", "overrideAddressNotValid")
        if not nodes:
            raise TalqError(422, "overrideAddressNotValid", "addresses: no device in them")
        self.ctx().broker()
        self._send_override(nodes, cmd, who, request)
        return 202

    def clock_offsets(self, nodes: Sequence[str]) -> dict[str, float]:
        """Each node's clock minus the controller's (its newest telemetry: node time when
        sent, controller time when received), 0 when unknown."""
        out: dict[str, float] = {}
        for i in range(0, len(nodes), 500):
            part = list(nodes[i : i + 500])
            rows = self.store().tuples(
                "SELECT ns.node, t.ts - t.received FROM node_status ns JOIN telemetry t"
                " ON t.node=ns.node AND t.ts=ns.tele_at"
                f" WHERE ns.node IN ({','.join('?' * len(part))})",
                part,
            )
            out.update({r[0]: float(r[1]) for r in rows if r[1] is not None})
        return out

    def _send_override(
        self, nodes: list[str], cmd: dict[str, Any] | None, who: str, request: str | None
    ) -> None:
        now = time.time()
        st = self.state()
        shown = dict(cmd) if cmd is not None else {"state": level_state(0), "reason": "default"}
        if cmd is not None:
            shown.setdefault("reason", "override")
        for n in nodes:
            st.set_override(n, shown, now)
        if cmd is None:
            self._dim_job(nodes, {"level": None}, shown, now, who, request)
            return
        args: dict[str, Any] = {"level": cmd["state"]["value"]}
        if cmd.get("rampToLevelTime"):
            args["fade_s"] = int(cmd["rampToLevelTime"])
        if "expiration" not in cmd:
            self._dim_job(nodes, args, shown, now, who, request)
            return
        end = parse_time(cmd["expiration"], "expiration")
        offsets = self.clock_offsets(nodes)
        by: dict[int, list[str]] = {}
        for n in nodes:  # the node counts until_s on its own clock from when it takes it
            until_s = max(1, round(end - (now + offsets.get(n, 0.0))))
            by.setdefault(until_s, []).append(n)
        for until_s, part in by.items():
            self._dim_job(part, {**args, "until_s": until_s}, shown, now, who, request)

    def _dim_job(
        self,
        nodes: list[str],
        args: dict[str, Any],
        shown: dict[str, Any],
        at: float,
        who: str,
        request: str | None,
    ) -> None:
        def after(st: Store, outs: list[Any]) -> None:
            s = State(st)
            for x in outs:
                if x.status == "ok":
                    fb = dict(shown)
                    until = (x.result or {}).get("until")
                    if until:
                        fb["expiration"] = until
                    else:
                        fb.pop("expiration", None)
                    s.override_done(x.node, at, x.command, fb, "ok")
                else:
                    s.override_done(x.node, at, x.command, None, f"{x.status}: {x.error or ''}")

        self._job(
            "dim",
            args,
            nodes,
            who,
            "override",
            {**args, "talq": shown.get("cmsRefId")},
            after,
            request,
        )

    # -- jobs ----------------------------------------------------------------------------

    def _job(
        self,
        cmd: str,
        args: dict[str, Any],
        ids: list[str],
        who: str,
        target: str,
        audit_args: dict[str, Any],
        after: Callable[[Store, list[Any]], None],
        request: str | None,
    ) -> None:
        from lanterna.fleet.commander import Commander, SendError

        broker = self.ctx().broker()  # no broker: the request fails now (503), not the job

        def go() -> None:
            ctx = Ctx(self.target, self.broker_url)
            result = "failed"
            try:
                store = ctx.store()
                nodes = store.nodes(ids=ids)
                outs = Commander(store, self.prefix).send_mqtt(
                    broker, nodes, cmd, args, TIMEOUT_S, RETRIES
                )
                after(store, outs)
                result = outcome_result(outs)
            except (SendError, LanternaError) as e:
                result = str(e)
            except Exception as e:  # the job's end is always logged and audited
                log.exception("talq %s job", cmd)
                result = f"{type(e).__name__}: {e}"
            try:
                Audit(ctx.store()).record(
                    who,
                    "talq",
                    cmd if cmd != "dim" else "override",
                    target,
                    ids,
                    audit_args,
                    result,
                )
            except Exception:
                log.exception("talq %s job: the audit", cmd)
            try:
                if self.on_devices is not None:
                    self.on_devices(ids, request)
            except Exception:
                log.exception("talq %s job: telling the CMS", cmd)
            finally:
                ctx.close()

        t = threading.Thread(target=go, name=f"talq-{cmd}", daemon=True)
        self.jobs = [j for j in self.jobs if j.is_alive()] + [t]
        t.start()

    def wait_jobs(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        for j in list(self.jobs):
            j.join(max(0.0, end - time.monotonic()))
        return not any(j.is_alive() for j in self.jobs)

    # -- services ------------------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        return [dict(s) for s in SERVICES]

    def service(self, name: str) -> dict[str, Any]:
        for s in SERVICES:
            if s["name"] == name:
                return dict(s)
        raise not_found("services", name)


_RES = {
    "calendar": "calendars",
    "program": "control-programs",
    "logger": "logger-configs",
    "group": "groups",
}
_TYPE = {"calendar": "Calendar", "program": "ControlProgram", "logger": "LoggerConfig"}


def new_request_id() -> str:
    return str(uuid.uuid4())
