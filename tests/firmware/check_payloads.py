# Run by tests/test_payload_schemas.py: a node with every sim sensor (chips on the
# CPython side's device bus, lanterna.sim.simbus), its charge point,
# commands and the network layer's publishing captured at the topic level, driven
# through a night's events (a sensor fault and its recovery, an EV session, commands);
# every payload it would publish is printed as "PUB <leaf> <json>" for the CPython side
# to validate against the project's JSON schemas.
import os

from fw import sim_hal
from lamp import app, clock, unload

T0 = 1795624200  # 2026-11-25T16:30:00Z


async def publish_everything():
    from lamp import config

    key = "%064x" % int.from_bytes(bytes(range(32)), "big")  # the CPython side signs with it
    cfg = config.build({"log_level": "error", "node": "gw-001", "site": "greenwich", "key": key})
    del config
    unload("config")
    clock.setup(start=T0, manual=True)
    root = os.getenv("PAYLOAD_ROOT") + "/"
    node = app.Node(sim_hal(devices=True), cfg, root=root)
    node.setup_site()
    from lamp.net.link import Net

    net = Net(node, cfg)
    out = []

    def capture(leaf, payload, retain=False):
        print("PUB %s %s" % (leaf, payload.decode() if isinstance(payload, bytes) else payload))
        out.append(leaf)

    net._pub = capture
    net.base = "lanterna/v1/greenwich/gw-001/"
    node.net = net
    node.replace_schedule(
        {
            "version": 1,
            "id": "t",
            "profiles": {"p": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}]},
            "calendar": [{"profile": "p"}],
        }
    )
    net._on_connect()  # status online + state
    node._event("boot", {"reset_cause": node.hal.reset_cause(), "fw": "0.1.0"})
    node.evaluate()
    m = node.sensors
    hal = node.hal

    async def rounds(n):
        for _ in range(n):
            for s in m.sensors:
                await m.poll(s)
            node.evse.sample()
            clock.get().advance_ms(5000)
            node.evaluate()

    await rounds(3)
    hal.i2c().nack.add(0x76)  # the BME280 stops answering
    await rounds(5)
    hal.i2c().nack.clear()
    await rounds(5)
    # An EV plugs in, charges 2 kWh through the S0 meter, and leaves.
    hal.cp_volts = 9.0  # each state holds for more than the debounce (3 samples)
    await rounds(4)
    hal.cp_volts = 6.0
    await rounds(4)
    hal.pulses += 2000
    await rounds(2)
    hal.cp_volts = 12.0
    await rounds(4)
    from lamp import telemetry

    net.tele(telemetry.snapshot(node))
    with open(os.getenv("PAYLOAD_CMDS")) as f:
        for line in f:
            net._on_message(net.base + "cmd", line.strip().encode())
    node.evaluate()
    net.state()
    print("PUBLISHED %d" % len(out))
