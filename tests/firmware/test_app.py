# The node boots to its failsafe level before anything else.
import asyncio

from fw import RUN, board_path, raises, sim_hal
from lamp import app, clock, config, start


async def test_node_drives_failsafe_level_at_start():
    clock.setup(start=1795600000, manual=True)
    hal = sim_hal()
    node = app.Node(
        hal, config.build({"failsafe_level": 80}), root="/tmp/lanterna-test-%d-app-" % RUN
    )
    task = asyncio.create_task(node.run())
    await asyncio.sleep_ms(0)
    assert node.dimmer.level == 80 and node.dimmer.reason == "failsafe"
    assert hal.relay_on and hal.duty > 0
    task.cancel()


def test_arguments_are_checked():
    opts = start.parse_args(["--board", board_path("sim"), "--warp", "60", "--start", "1000"])
    assert opts["board"] == board_path("sim") and opts["warp"] == "60"
    assert opts["start"] == "1000" and opts["schedule"] == ""
    raises(ValueError, start.parse_args, ["--warp", "fast"])
    raises(ValueError, start.parse_args, ["--warp", "0"])
    raises(ValueError, start.parse_args, ["--colour", "red"])
    raises(ValueError, start.parse_args, ["--board"])
    raises(ValueError, start.parse_args, ["--start", "yesterday"])


def test_bad_board_exits_non_zero():
    assert start.boot(["--board", "/nonexistent/board.json"]) == 1
