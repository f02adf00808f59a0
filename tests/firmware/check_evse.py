# Runs in MicroPython, called by tests/test_evse_ocpp.py (not collected: no test_ prefix).
# Drives the charge point through a scripted day at the pole and prints every event as one
# JSON line, so that CPython can check the StatusNotification payloads against OCPP 1.6.
import json

from fw import sim_hal
from lamp import clock
from lamp.evse import Evse

# (pilot volts, seconds, S0 impulses per second): plug-in, charge, pause, charge with
# ventilation, unplug; a second car left plugged in after charging; then the faults.
SCRIPT = (
    (12.0, 5, 0),
    (9.0, 30, 0),
    (6.0, 600, 2),
    (9.0, 60, 0),
    (6.0, 60, 2),
    (3.0, 60, 2),
    (12.0, 60, 0),
    (9.0, 10, 0),
    (6.0, 120, 2),
    (9.0, 200, 0),
    (12.0, 10, 0),
    (0.0, 10, 0),
    (12.0, 10, 0),
    (-12.0, 10, 0),
    (-6.0, 10, 0),
    (12.0, 10, 0),
)


def _print(name, payload):
    print("EVSE-EVENT %s %s" % (name, json.dumps(payload)))


def scenario():
    clock.setup(start=1795600000, manual=True)
    hal = sim_hal()
    ev = Evse(hal, _print, {"idle_stop_s": 120})
    for volts, seconds, pps in SCRIPT:
        hal.cp_volts = volts
        for i in range(seconds * 10):
            clock.get().advance_ms(100)
            if pps and i % (10 // pps) == 0:
                hal.pulses += 1
            ev.sample()
    print("EVSE-STATUS %s" % json.dumps(ev.status()))
