# The node's telemetry snapshot: what it reports every period (docs/protocol.md,
# "Telemetry"). Sensor values are the window's aggregates [min, mean, max, count], in
# integer units named by the field (`_x10` = tenths) and given once in "units"; energy in
# kWh and W; EV charger status as OCPP names it; the network link's status by the port's
# name for it, and the WLAN's RSSI.
import gc

from lamp import clock

SCHEMA = 1


def snapshot(node, reset=True):
    # -> dict; `reset` starts a new sensor window (once per telemetry period).
    gc.collect()
    sensors = node.sensors.window(reset) if node.sensors is not None else {}
    units = node.sensors.units() if node.sensors is not None else {}
    evse = node.evse.status() if node.evse is not None else None
    d = {
        "v": SCHEMA,
        "ts": clock.iso(),
        "level": node.dimmer.level,
        "source": node.dimmer.reason,
        "energy": node.energy.status(),
        "faults": node.faults.status(),
        "sensors": sensors,  # field: [min, mean, max, count] over the period
        "units": units,
        "evse": evse,
        "heap_free": gc.mem_free(),
        "uptime_s": clock.mono_ms() // 1000,
    }
    link = node.link
    if link is not None:  # the pole's WLAN or LAN (lamp.net.netif); RSSI in dBm on WLAN
        d["link"] = link.report()
        d["rssi"] = link.rssi()
    return d
