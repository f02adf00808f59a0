# What commands do to the node (lamp.cmd.control), with the lamp state on flash.
import asyncio
import os

from fw import fresh, sim_hal
from lamp import app, clock, config
from lamp.cmd.control import Control

T0 = 1795624200  # 2026-11-25T16:30:00Z


def _node(name):
    clock.setup(start=T0, manual=True)
    root = fresh(name) + "-"
    node = app.Node(sim_hal(), config.build({"log_level": "error"}), root=root)
    node.setup_site()
    node.evaluate()  # failsafe 100 %
    return node, root + "lamp.json"


async def test_identify_blinks_without_writing_flash_and_leaves_the_lamp_as_it_was():
    node, path = _node("identify")
    ctl = Control(node)
    assert ctl.apply("identify", {"seconds": 2}) == {"seconds": 2}
    try:
        os.remove(path)
    except OSError:
        pass
    seen = []
    for _ in range(10):
        seen.append((node.dimmer.level, node.hal.led_on))
        await asyncio.sleep_ms(0)
    assert (50, True) in seen and (100, False) in seen, seen  # dips with the LED on
    assert node.dimmer.level == 100 and node.dimmer.reason == "failsafe"
    assert not node.hal.led_on
    try:
        os.stat(path)
        raise AssertionError("identify wrote the lamp state to flash")
    except OSError:
        pass


async def test_dim_override_is_kept_on_flash_and_restored_at_boot():
    node, path = _node("override")
    ctl = Control(node)
    assert ctl.apply("dim", {"level": 30, "fade_s": 0, "until_s": 3600}) == {
        "level": 30,
        "until": "2026-11-25T17:30:00Z",
    }
    node.evaluate()
    assert node.dimmer.level == 30 and node.dimmer.reason == "override"
    # A reboot: a new node on the same flash comes back to the override before anything.
    again = app.Node(sim_hal(), config.build({"log_level": "error"}), root=path[:-9])
    assert again.restore_lamp() == 30
    again.setup_site()
    again.evaluate()
    assert again.dimmer.level == 30 and again.dimmer.reason == "override"
    clock.get().advance_ms(3601 * 1000)
    again.evaluate()
    assert again.dimmer.reason == "failsafe" and again.arbiter.override is None


def test_reboot_with_no_delay_is_answered_as_at_once():
    # delay_s 0 is accepted by the argument table (0..60): it must stay 0, not become 1 s.
    node, _ = _node("reboot-now")
    resets = []
    node.hal.reset = lambda: resets.append(1)
    got = Control(node).apply("reboot", {"delay_s": 0})
    assert got == {"reboot_in_s": 0}, got
