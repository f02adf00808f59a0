# Wires the node: board -> hal -> clock -> config -> lamp level. The lamp is driven to
# its failsafe level before anything else runs (a post must light within a second of
# power-on, network or not); later capabilities join as asyncio tasks.
import asyncio
import gc
import sys

from lamp import VERSION, clock, hal
from lamp.dimmer import Dimmer

_USAGE = "usage: main.py [--board FILE] [--config FILE] [--warp N]"


class Node:
    def __init__(self, hw, cfg):
        self.hal = hw
        self.cfg = cfg
        self.dimmer = Dimmer(hw, self._level_changed)

    def _level_changed(self, level, reason):
        # One line per change of lamp level, with its time: what a pole shows.
        print("%s level %d %s" % (clock.iso(), level, reason))

    async def run(self):
        self.dimmer.set(self.cfg["failsafe_level"], "failsafe")
        while True:
            await clock.sleep_ms(1000)


def parse_args(argv):
    # -> (board path, config path or None, warp factor)
    opts = {"board": "board.json", "config": "", "warp": "1"}
    i = 0
    while i < len(argv):
        key = argv[i][2:] if argv[i].startswith("--") else ""
        if key not in opts or i + 1 >= len(argv):
            raise ValueError("bad argument %r; %s" % (argv[i], _USAGE))
        opts[key] = argv[i + 1]
        i += 2
    try:
        warp = int(opts["warp"])
    except ValueError:
        raise ValueError("--warp: not an integer: %r" % opts["warp"])
    if warp < 1:
        raise ValueError("--warp: must be >= 1")
    config = opts["config"] or None
    if config is None:
        try:
            open("config.json").close()
            config = "config.json"
        except OSError:
            pass  # no config on this node yet: the defaults
    return opts["board"], config, warp


def _unload(*names):
    for name in names:
        sys.modules.pop(name, None)
    gc.collect()


def main(argv):
    try:
        board_path, config_path, warp = parse_args(argv)
        from lamp import board, config

        b = board.load(board_path)
        cfg = config.load(config_path)
        hw = hal.open(b)
    except ValueError as e:  # BoardError, ConfigError, HalError
        print("error: %s" % e, file=sys.stderr)
        return 1
    # The board and config checkers run once; their code need not stay in RAM.
    _unload("lamp.board", "lamp.config")
    clock.setup(warp=warp)
    print(
        "lanterna %s node %s site %s board %s heap budget %d reset %s"
        % (VERSION, cfg["node"], cfg["site"], b["name"], b["heap"], hw.reset_cause())
    )
    node = Node(hw, cfg)
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        print("%s stopped" % clock.iso())
    return 0
