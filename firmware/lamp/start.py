# Boot: arguments, board, config, clock, site, schedule: everything that runs once before
# the node's tasks start. main.py unloads this module before starting the node, so none
# of it holds RAM while the lamp runs.
import gc
import json
import sys

from lamp import VERSION, clock, hal, log, unload
from lamp.app import Node, parse_tz
from lamp.dimmer import config as dimmer_config

_USAGE = "usage: main.py [--board FILE] [--config FILE] [--schedule FILE] [--warp N] [--start UTC]"


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


def boot(argv):
    # -> a Node ready to start, or an exit status (1: bad board, config or arguments).
    try:
        opts = parse_args(argv)
        from lamp import board, config

        b = board.load(opts["board"])
        cfg = config.load(opts["config"] or None)
        zone = parse_tz(cfg["tz"])
        hw = hal.open(b, devices=True) if b["chip"] == "sim" else hal.open(b)
        hw.set_status_led(True)  # steady while the node starts (lamp.led)
        dimmer_config(cfg["dimmer"])  # refuse a bad section before the lamp is touched
        del board, config  # the checkers ran once: let unload() free them
    except ValueError as e:  # BoardError, ConfigError, HalError, a bad tz
        print("error: %s" % e, file=sys.stderr)
        return 1
    # The board checker runs once; its code need not stay in RAM.
    unload("board")
    unload("config")
    gc.collect()
    start = int(opts["start"]) if opts["start"] else None
    clock.setup(warp=int(opts["warp"]), start=start)
    # Time before any network: the RTC-memory mark, else the external RTC chip. The chip's
    # driver stays loaded only if the chip answers (NTP writes it back every sync).
    from lamp import rtc

    chip = rtc.open(b, hw.i2c())
    if chip is not None:
        try:
            chip.read()
        except OSError:  # not fitted after all, or the bus is dead: no chip to keep
            chip = None
    if chip is None:
        del rtc
        unload("rtc")
    time_source = clock.boot(hw, chip, trust_port=b["chip"] == "sim")
    log.level = ("debug", "info", "warn", "error").index(cfg["log_level"])
    try:
        node = Node(hw, cfg)
        node.restore_lamp()  # the last level from flash, before anything else
        node.setup_site(zone)
        node.connect(opts["config"] or None)
    except ValueError as e:  # energy/faults/sensors/mqtt sections, the key
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(
        "lanterna %s node %s site %s board %s heap budget %d reset %s clock %s"
        % (
            VERSION,
            cfg["node"],
            cfg["site"],
            b["name"],
            b["heap"],
            hw.reset_cause(),
            time_source or "invalid",
        )
    )
    node.load_schedule()
    if opts["schedule"]:
        try:
            with open(opts["schedule"]) as f:
                node.replace_schedule(json.load(f))
        except (OSError, ValueError, MemoryError) as e:
            # Refused: the node keeps the schedule it had.
            print("error: %s: %s" % (opts["schedule"], e), file=sys.stderr)
    unload("config")  # every section is checked: the checkers go until they are needed
    unload("check")
    return node
