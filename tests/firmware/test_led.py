# lamp.led: the status LED's stage follows the node's coming up (link, broker, faults),
# and its pattern is the number of blinks the stage names, on the sim HAL's LED.
import asyncio

from fw import fresh, sim_hal
from lamp import app, clock, config, led, unload
from lamp.hal import simnet

_NET = {"wlan": {"ssid": "pole-net", "password": "right-key-1"}}
_KEY = "00" * 32


def _node(name, **extra):
    clock.setup(start=1795624200, manual=True)
    d = {"log_level": "error", "node": "lamp-017", "key": _KEY}
    d.update(extra)
    cfg = config.build(d)
    unload("config")
    simnet.air = simnet.Air({"ssid": "pole-net", "password": "right-key-1"})
    node = app.Node(sim_hal(), cfg, root=fresh(name) + "-")
    node.setup_site()
    node.connect(None)
    return node


def test_the_stage_follows_link_broker_and_faults():
    mqtt = {"host": "127.0.0.1", "port": 1883, "user": "lamp-017", "password": "x"}
    node = _node("led-stages", network=_NET, mqtt=mqtt)
    assert led.stage(node) == led.NO_LINK  # no address yet
    node.link.up.set()  # what lamp.net.netif does once the link has an address
    assert led.stage(node) == led.NO_BROKER
    node.net.mq.connected = True  # what the client does on CONNACK
    assert led.stage(node) == led.OK
    node.faults.active = 1  # lamp_failure (lamp.faults NAMES[0])
    assert led.stage(node) == led.FAULT
    node.link.up.clear()  # the link comes first: a lost link hides the rest
    assert led.stage(node) == led.NO_LINK


def test_an_offline_node_with_no_network_section_is_in_service():
    node = _node("led-offline")
    assert node.link is None and led.stage(node) == led.OK


def test_blinks_per_stage_and_the_heartbeat():
    assert [led.blinks(st, 1) for st in (led.NO_LINK, led.NO_BROKER, led.FAULT)] == [1, 2, 3]
    assert [led.blinks(led.OK, p) for p in range(10)] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0]


def test_the_led_blinks_the_stage():
    mqtt = {"host": "127.0.0.1", "port": 1883, "user": "lamp-017", "password": "x"}
    node = _node("led-run", network=_NET, mqtt=mqtt)
    node.link.up.set()  # NO_BROKER: two blinks in the first period
    seen = []
    node.hal.set_status_led = seen.append

    async def one_period():
        try:
            await asyncio.wait_for_ms(led.run(node), 1000)  # inside the first 2 s period
        except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
            pass

    asyncio.run(one_period())
    assert seen == [True, False, True, False], seen
