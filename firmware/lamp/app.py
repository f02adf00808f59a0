# Wires the node: board -> hal -> clock -> config -> lamp level. The lamp is driven to
# its failsafe level before anything else runs (a post must light within a second of
# power-on, network or not); then the lighting task follows the schedule as a state,
# waking at each step, and later capabilities join as asyncio tasks.
import asyncio
import gc
import json
import sys

from lamp import clock, log, unload, write_json_atomic
from lamp.arbiter import Arbiter
from lamp.dimmer import Dimmer
from lamp.dimmer import config as dimmer_config
from lamp.energy import Energy
from lamp.faults import Faults

_USAGE = "usage: main.py [--board FILE] [--config FILE] [--schedule FILE] [--warp N] [--start UTC]"
SCHEDULE_FILE = "schedule.json"
LAMP_FILE = "lamp.json"  # the last level and a command's override, for the next boot
_MAX_SLEEP_MS = 60000  # re-evaluate at least once a minute (clock corrections, inputs)
# Watchdog: fed every 5 s (real time) while the lighting loop has beaten within three of
# its longest sleeps (node time); 30 s without a feed resets the node.
_WDT_MS = 30000
_FEED_MS = 5000
_BEAT_MAX_MS = 3 * _MAX_SLEEP_MS


def _ota_state(root):
    # -> ota.json as boot.py left it, or None (no updates on this node yet).
    try:
        with open(root + "ota.json") as f:
            st = json.load(f)
        return st if isinstance(st, dict) else None
    except (OSError, ValueError):
        return None


def parse_tz(text):
    from lamp import tz

    try:
        return tz.parse(text)
    except ValueError as e:
        raise ValueError("config: tz: %s" % e)


class Node:
    def __init__(self, hw, cfg, root=""):
        # root: prefix of the node's files (its flash filesystem), so tests keep theirs apart.
        self.hal = hw
        self.cfg = cfg
        self.root = root
        self.energy = Energy(hw, cfg["energy"], root + "energy.json")
        self.dimmer = Dimmer(
            hw, self._level_changed, dimmer_config(cfg["dimmer"]), hours=self.energy.burn_h
        )
        self.energy.output = self.dimmer.output
        self.faults = Faults(hw, self._fault_event, cfg["faults"], self.dimmer.output)
        self.arbiter = Arbiter(cfg["failsafe_level"])
        # Set by anything that may change the decision before the next step: motion, a
        # corrected clock, a command. The lighting loop then re-evaluates at once.
        self.wake = asyncio.Event()
        self.ntp_servers = cfg["ntp"]
        self.zone = None
        self.lux = None  # from a light sensor when one is fitted
        # Sensors and the EV charge point, when the board has them (their code is
        # imported only then). A sensor that is missing or fails never stops the node.
        self.sensors = None
        if hw.board["sensors"]:
            from lamp.sensors.manager import Sensors

            self.sensors = Sensors(hw, self._fault_event, cfg["sensors"])
        self.evse = None
        if hw.board["cp_adc"] is not None:
            from lamp.evse import Evse

            self.evse = Evse(hw, self._told, cfg["evse"])
        self._night = None
        self.evaluations = 0
        self.beat = clock.mono_ms()  # the lighting loop's heartbeat (the watchdog reads it)
        self.net = None  # lamp.net.link.Net once connect() ran
        self.link = None  # lamp.net.netif.Netif when the config names a network
        self.failures = 0  # background task failures since boot (_guard)
        self._saved = None

    def restore_lamp(self):
        # At boot, before the lighting loop and any network: the last level at once, and
        # a command's override if it has not ended. -> the restored level or None.
        try:
            with open(self.root + LAMP_FILE) as f:
                st = json.load(f)
            level, ov = st["level"], st["override"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if isinstance(ov, list) and len(ov) == 3:
            self.arbiter.set_override(ov[0], ov[1], ov[2])
        if isinstance(level, int) and 0 <= level <= 100:
            self.dimmer.set(level, "restored", 0)
            return level
        return None

    def save_lamp(self):
        # On a change of level or override only: a few flash writes a night.
        st = {"level": self.dimmer.level, "override": self.arbiter.override}
        if st == self._saved:
            return
        try:
            write_json_atomic(self.root + LAMP_FILE, st)
            self._saved = st
        except OSError as e:
            log.error("lamp", "cannot save the lamp state: %s", e)

    def connect(self, config_path=None):
        # The network side (MQTT, CoAP, commands) when the config asks for it; nothing
        # here runs until run(), and the lighting never waits for it.
        cfg = self.cfg
        if cfg["network"] is not None:  # the pole's WLAN or LAN, kept up by its own task
            from lamp.net.netif import Netif

            self.link = Netif(self.hal, cfg["network"], cfg["node"], self._link_changed)
        if cfg["mqtt"] is None and not cfg["coap_port"]:
            return
        from lamp.net.link import Net

        self.net = Net(self, cfg, config_path)
        if self.link is not None and self.net.mq is not None:
            self.net.mq.link = self.link.up  # no broker without an address

    def _link_changed(self, payload):
        # The link came up or went down (lamp.net.netif): told, and the MQTT client follows.
        self._told("link", payload)
        mq = self.net.mq if self.net is not None else None
        if mq is not None:
            mq.link_changed()

    def state(self):
        return self.net.payload() if self.net is not None else None

    def _level_changed(self, level, reason):
        # One line per change of lamp level, with its local time: what a pole shows.
        print("%s level %d %s" % (clock.local_iso(), level, reason))
        if reason in ("restored", "identify"):
            return  # not a new state: no flash write, no state message per blink
        self.save_lamp()
        if self.net is not None:
            self.net.state()

    def _event(self, name, payload):
        if self.net is not None:
            self.net.event(name, payload)

    def _fault_event(self, name, active, detail):
        # Reported once when raised and once when cleared (lamp.faults debounces).
        print(
            "%s event %s %s %s"
            % (clock.local_iso(), name, "raised" if active else "cleared", detail)
        )
        self._event(name, {"active": active, "detail": detail})
        if self.net is not None:
            self.net.state()

    def _told(self, name, payload):
        # An event shown on the console as well (EV sessions, boot, updates).
        print("%s event %s %s" % (clock.local_iso(), name, json.dumps(payload)))
        self._event(name, payload)

    def _sensed(self):
        # After each sensor round: the light level for the photocell fallback. A change
        # matters at once only while the clock is not valid (the photocell is in charge).
        lux = self.sensors.latest("lux_x10") if self.sensors is not None else None
        lux = None if lux is None else lux // 10
        if lux != self.lux:
            self.lux = lux
            if not clock.valid():
                self.wake.set()

    async def _report(self):
        # Telemetry every period (lamp.telemetry); one JSON line until the MQTT client
        # publishes it.
        from lamp import telemetry

        # On a fixed cadence: each period is counted from the last one's due time, not
        # from when its message was done, so telemetry does not drift by the time it
        # takes; periods missed in a stall are skipped, not sent in a burst.
        due = clock.mono_ms()
        while True:
            period = self.cfg["tele_s"] * 1000  # config_set may change it
            due += period
            late = clock.mono_ms() - due
            if late > 0:
                due += late // period * period
            await clock.sleep_ms(due - clock.mono_ms())
            snap = telemetry.snapshot(self)
            if self.net is not None:
                self.net.tele(snap)
            if self.cfg["log_level"] == "debug" or self.net is None:
                # Streamed: the whole JSON text never needs one free block of its size.
                sys.stdout.write("%s tele " % clock.local_iso())
                json.dump(snap, sys.stdout)
                sys.stdout.write("\n")
            del snap

    async def _connect(self):
        # The network joins after the lighting loop's first step: the lamp is lit first.
        # Whatever fails here (even MemoryError) leaves the lamp to its loop.
        await asyncio.sleep_ms(0)
        net = self.net
        if net is None:
            return
        try:
            from lamp import VERSION
            from lamp import numbers as N

            # Queued in the outbox: it leaves when the broker is first reached. With it,
            # what boot.py last decided about the slots (a rollback says why here).
            boot = {"reset_cause": self.hal.reset_cause(), "fw": VERSION}
            ota = _ota_state(self.root)
            if ota is not None:
                boot["ota"] = ota
            self._told(N.EV_BOOT, boot)
            net.start(self._guard)
            if ota is not None and ota.get("trial") is True:
                asyncio.create_task(self._trial(VERSION))
        except Exception as e:  # noqa: BLE001 -- the lamp must keep its light
            log.error("net", "%r; running offline", e)

    async def _trial(self, version):
        # This slot is on trial (docs/ota.md): confirmed once the node has been healthy
        # (the broker connected, no task failed, the lighting loop beating) for
        # ota_health_s without a break; not healthy within ota_trial_s, the previous
        # slot runs again at once. Real seconds, as the watchdog's: a warped sim must not
        # confirm in a blink.
        from lamp import numbers as N  # loaded with the network already

        need = self.cfg["ota_health_s"]
        held = 0
        failures = self.failures
        for _ in range(self.cfg["ota_trial_s"]):
            await asyncio.sleep_ms(1000)
            mq = self.net.mq if self.net is not None else None
            ok = mq is not None and mq.connected and self.failures == failures
            ok = ok and clock.mono_ms() - self.beat < _BEAT_MAX_MS
            held = held + 1 if ok else 0
            failures = self.failures
            if held >= need:
                from lamp.ota import slots

                slots.confirm(self.root)
                unload("ota")
                self._told(N.EV_OTA, {"state": N.IDLE, "result": N.R_SUCCESS, "version": version})
                return
        from lamp.ota import slots

        why = "not healthy for %d s within %d s of its first boot" % (need, self.cfg["ota_trial_s"])
        slots.fail(self.root, why)
        self._told(
            N.EV_OTA, {"state": N.IDLE, "result": N.R_FAILED, "version": version, "detail": why}
        )
        log.error("ota", "%s %s; back to the previous slot", version, why)
        await asyncio.sleep_ms(2000)  # the event's chance to leave; the lamp is lit
        self.hal.reset()

    async def _watchdog(self):
        # The hardware watchdog is fed only while the lighting loop beats: a hung loop
        # resets the node, a network outage never does (no task here waits on the
        # network). Real time: the watchdog does not follow the sim's warp.
        self.hal.wdt_start(_WDT_MS)
        while True:
            if clock.mono_ms() - self.beat < _BEAT_MAX_MS:
                self.hal.wdt_feed()
            await asyncio.sleep_ms(_FEED_MS)

    def setup_site(self, zone=None):
        # zone: the config's tz already parsed (boot does it first, while the heap is
        # unfragmented: the parser is loaded for it and dropped again).
        if zone is None:
            zone = parse_tz(self.cfg["tz"])
        self.zone = zone
        clock.set_tz(zone)

    def replace_schedule(self, obj, path=None):
        # Validate first; only a valid schedule is written (temp file + rename, so a power
        # cut leaves the old or the new file, never half of one) and put in force. On any
        # error nothing changes: the lamp keeps its previous schedule.
        from lamp import schedule

        sched = schedule.parse(obj)
        write_json_atomic(path or self.root + SCHEDULE_FILE, obj)
        self.arbiter.set_plan(schedule.Plan(sched, self.zone, self.cfg["lat"], self.cfg["lon"]))
        log.info("schedule", "in force: %s", sched.id)
        return sched

    def load_schedule(self):
        # At boot: the schedule on flash (always a validated one, see replace_schedule).
        path = self.root + SCHEDULE_FILE
        try:
            with open(path) as f:
                obj = json.load(f)
        except OSError:
            return None  # no schedule yet: photocell or failsafe
        except ValueError as e:
            log.error("schedule", "%s unreadable (%s); running without", path, e)
            return None
        try:
            return self.replace_schedule(obj, path)
        except ValueError as e:
            log.error("schedule", "%s", e)
            return None

    def evaluate(self):
        # Decide the level for now and apply it; returns ms until it may change by time.
        now = clock.now()
        mono_s = clock.mono_ms() // 1000
        level, source, fade_s = self.arbiter.decide(now, clock.valid(), mono_s, self.lux)
        self.dimmer.set(level, source, fade_s)
        self.evaluations += 1
        plan = self.arbiter.plan
        if plan is not None and self.cfg["log_level"] == "debug":
            night = plan.day_of(now)
            if night != self._night:
                self._night = night
                gc.collect()
                print(
                    "%s night %d heap alloc %d free %d"
                    % (clock.local_iso(), night, gc.mem_alloc(), gc.mem_free())
                )
        wait = self.arbiter.next_change(now, mono_s)
        if wait is None:
            return _MAX_SLEEP_MS
        return min(_MAX_SLEEP_MS, max(1, wait) * 1000)

    async def _watch_motion(self):
        # PIR sensors hold their output high for a few seconds per detection; polling
        # every 100 ms catches every one without an IRQ (the sim has no pin interrupts).
        was = False
        while True:
            now = self.hal.motion()
            if now and not was:
                self.arbiter.motion(clock.mono_ms() // 1000)
                self.wake.set()
            was = now
            await clock.sleep_ms(100)

    async def _keep_time(self, servers):
        # NTP at start, then hourly; on failure retry after 30 s, doubling up to an hour
        # (one retry shape, STYLE.md). The client is loaded for each sync only.

        retry = 30
        while True:
            from lamp.net import ntp

            try:
                await ntp.sync(servers)
                retry, pause = 30, 3600
            except ntp.NtpError as e:
                log.warn("clock", "ntp: %s", e)
                pause, retry = retry, min(retry * 2, 3600)
            del ntp
            unload("net.ntp")
            await clock.sleep_ms(pause * 1000)

    async def _guard(self, name, fn, *args):
        # A background task that fails is logged and restarted; it never takes the
        # lighting loop down with it.
        while True:
            try:
                await fn(*args)
            except Exception as e:  # noqa: BLE001 -- anything, even MemoryError
                self.failures += 1
                log.error(name, "%r; restarting in 10 s", e)
            await clock.sleep_ms(10000)

    def start(self):
        # Run the node until Ctrl-C; an orderly stop saves the energy counters.
        try:
            asyncio.run(self.run())
        except KeyboardInterrupt:
            # Ctrl-C can land while the collector holds the heap ("heap is locked"): the
            # save is tried again once the interrupt has unwound.
            for _ in range(3):
                try:
                    self.energy.save()
                    break
                except MemoryError:
                    gc.collect()
            print("%s stopped" % clock.local_iso())

    async def run(self):
        # The first evaluation happens at once: the schedule if time is valid, else the
        # photocell, else the failsafe level (no schedule, no lux: light the street).
        asyncio.create_task(self._guard("energy", self.energy.run))
        asyncio.create_task(self._guard("faults", self.faults.run))
        if self.hal.board["pir"] is not None:
            asyncio.create_task(self._guard("motion", self._watch_motion))
        if self.ntp_servers:
            asyncio.create_task(self._guard("clock", self._keep_time, self.ntp_servers))
        if self.sensors is not None:
            asyncio.create_task(self._guard("sensors", self.sensors.run, self._sensed))
        if self.evse is not None and self.evse.present:
            asyncio.create_task(self._guard("evse", self.evse.run))
        asyncio.create_task(self._guard("telemetry", self._report))
        asyncio.create_task(self._watchdog())
        if self.hal.board["status_led"] is not None:
            from lamp import led

            asyncio.create_task(self._guard("led", led.run, self))
        if self.link is not None:
            asyncio.create_task(self._guard("link", self.link.run))
        if self.net is not None:
            asyncio.create_task(self._connect())
        clock.on_set(self.wake.set)
        while True:
            self.wake.clear()
            self.beat = clock.mono_ms()
            try:
                ms = self.evaluate()
            except Exception as e:  # noqa: BLE001 -- the lamp must keep its light
                # Whatever broke (a corrupt schedule, MemoryError), light the street and
                # try again shortly.
                log.error("lighting", "%r; failsafe level", e)
                self.dimmer.set(self.cfg["failsafe_level"], "failsafe")
                ms = 10000
            await clock.wait_ms(self.wake, ms)
