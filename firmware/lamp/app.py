# Wires the node: board -> hal -> clock -> config -> lamp level. The lamp is driven to
# its failsafe level before anything else runs (a post must light within a second of
# power-on, network or not); then the lighting task follows the schedule as a state,
# waking at each step, and later capabilities join as asyncio tasks.
import asyncio
import gc
import json
import os
import sys

from lamp import VERSION, clock, hal, log, unload
from lamp.arbiter import Arbiter
from lamp.dimmer import Dimmer
from lamp.dimmer import config as dimmer_config
from lamp.energy import Energy
from lamp.faults import Faults

_USAGE = "usage: main.py [--board FILE] [--config FILE] [--schedule FILE] [--warp N] [--start UTC]"
SCHEDULE_FILE = "schedule.json"
_MAX_SLEEP_MS = 60000  # re-evaluate at least once a minute (clock corrections, inputs)


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
        self.zone = None
        self.lux = None  # from a light sensor when one is fitted
        self._night = None
        self.evaluations = 0

    def _level_changed(self, level, reason):
        # One line per change of lamp level, with its local time: what a pole shows.
        print("%s level %d %s" % (clock.local_iso(), level, reason))

    def _fault_event(self, name, active, detail):
        # Reported once when raised and once when cleared (lamp.faults debounces).
        print(
            "%s event %s %s %s"
            % (clock.local_iso(), name, "raised" if active else "cleared", detail)
        )

    def setup_site(self):
        from lamp import tz

        try:
            self.zone = tz.parse(self.cfg["tz"])
        except ValueError as e:
            raise ValueError("config: tz: %s" % e)
        clock.set_tz(self.zone)

    def replace_schedule(self, obj, path=None):
        # Validate first; only a valid schedule is written (temp file + rename, so a power
        # cut leaves the old or the new file, never half of one) and put in force. On any
        # error nothing changes: the lamp keeps its previous schedule.
        from lamp import schedule

        sched = schedule.parse(obj)
        path = path or self.root + SCHEDULE_FILE
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, path)
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

    async def run(self):
        # The first evaluation happens at once: the schedule if time is valid, else the
        # photocell, else the failsafe level (no schedule, no lux: light the street).
        asyncio.create_task(self.energy.run())
        asyncio.create_task(self.faults.run())
        while True:
            await clock.sleep_ms(self.evaluate())


def parse_args(argv):
    # -> dict of the options as strings; raises ValueError with the usage on a bad one
    opts = {"board": "board.json", "config": "", "schedule": "", "warp": "1", "start": ""}
    i = 0
    while i < len(argv):
        key = argv[i][2:] if argv[i].startswith("--") else ""
        if key not in opts or i + 1 >= len(argv):
            raise ValueError("bad argument %r; %s" % (argv[i], _USAGE))
        opts[key] = argv[i + 1]
        i += 2
    for key in ("warp", "start"):
        if opts[key] and not opts[key].isdigit():
            raise ValueError("--%s: not a whole number: %r" % (key, opts[key]))
    if int(opts["warp"]) < 1:
        raise ValueError("--warp: must be >= 1")
    if not opts["config"]:
        try:
            open("config.json").close()
            opts["config"] = "config.json"
        except OSError:
            pass  # no config on this node yet: the defaults
    return opts


def main(argv):
    try:
        opts = parse_args(argv)
        from lamp import board, config

        b = board.load(opts["board"])
        cfg = config.load(opts["config"] or None)
        hw = hal.open(b)
        dimmer_config(cfg["dimmer"])  # refuse a bad section before the lamp is touched
        del board, config  # the checkers ran once: let unload() free them
    except ValueError as e:  # BoardError, ConfigError, HalError
        print("error: %s" % e, file=sys.stderr)
        return 1
    # The board checker runs once; its code need not stay in RAM.
    unload("board")
    unload("config")  # the dimmer, energy and faults keep the checker they imported
    gc.collect()
    start = int(opts["start"]) if opts["start"] else None
    clock.setup(warp=int(opts["warp"]), start=start)
    log.level = ("debug", "info", "warn", "error").index(cfg["log_level"])
    try:
        node = Node(hw, cfg)
        node.setup_site()
    except ValueError as e:  # energy/faults sections, tz
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(
        "lanterna %s node %s site %s board %s heap budget %d reset %s"
        % (VERSION, cfg["node"], cfg["site"], b["name"], b["heap"], hw.reset_cause())
    )
    node.load_schedule()
    if opts["schedule"]:
        try:
            with open(opts["schedule"]) as f:
                node.replace_schedule(json.load(f))
        except (OSError, ValueError, MemoryError) as e:
            # Refused: the node keeps the schedule it had.
            print("error: %s: %s" % (opts["schedule"], e), file=sys.stderr)
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        node.energy.save()  # orderly shutdown: counters to flash
        print("%s stopped" % clock.local_iso())
    return 0
